"""The one resolver from settings to a Milvus connection.

Accepted forms of a Milvus URI:

- empty / ``"local"``: the managed local store (a Milvus Lite server started
  on demand, shared by the App, notebooks and the CLI)
- a path ending in ``.db``: a Milvus Lite file (ONE process only)
- ``http(s)://host:port``: Milvus standalone or distributed
- ``https://...zillizcloud.com...`` plus a token: Zilliz Cloud

Precedence: explicit arguments, then plugin secrets / environment
(``VRAG_MILVUS_*``), then fiftyone-brain's own Milvus settings
(``FIFTYONE_BRAIN_SIMILARITY_MILVUS_*``), then the managed local store.
"""

import dataclasses
import os
import socket
from urllib.parse import urlsplit, urlunsplit

from plugin import settings

LOCAL = "local"
LITE_FILE = "lite-file"
SERVER = "server"
ZILLIZ = "zilliz"

_BRAIN_ENV = "FIFTYONE_BRAIN_SIMILARITY_MILVUS_%s"


class MilvusUnreachableError(ConnectionError):
    """Milvus could not be reached at the resolved URI."""


@dataclasses.dataclass(frozen=True)
class MilvusConnection:
    """Where and how to connect to Milvus. ``repr`` never shows secrets."""

    uri: str
    kind: str
    token: str | None = dataclasses.field(default=None, repr=False)
    user: str | None = None
    password: str | None = dataclasses.field(default=None, repr=False)

    @property
    def display_uri(self):
        """The URI with any credentials in it removed, safe to show and log."""
        return redact_uri(self.uri)

    def credentials(self):
        """The keyword arguments pymilvus and fiftyone-brain take."""
        kwargs = {"uri": self.uri}
        for key in ("token", "user", "password"):
            value = getattr(self, key)
            if value:
                kwargs[key] = value
        return kwargs

    def client(self, timeout=5.0, connect_timeout=60.0):
        """A ``pymilvus.MilvusClient``, checked reachable within ``timeout``.

        A dead address fails within ``timeout`` (a TCP check); a live but busy
        server gets ``connect_timeout`` for the gRPC handshake.
        """
        check_reachable(self, timeout=timeout)
        from pymilvus import MilvusClient

        try:
            return MilvusClient(timeout=connect_timeout, **self.credentials())
        except Exception as e:
            raise MilvusUnreachableError(
                f"Could not connect to Milvus at {self.display_uri}: {e}"
            ) from e


def is_milvus_lite(uri):
    """True for a Milvus Lite store: a ``.db`` file or the managed local
    server (whose URI is only known from its state file)."""
    from plugin.milvus.local_server import LocalMilvusServer

    uri = uri or ""
    return uri.endswith(".db") or uri == LocalMilvusServer().uri()


def redact_uri(uri):
    """Removes ``user:password@`` from a URI."""
    parts = urlsplit(uri)
    if parts.username or parts.password:
        host = parts.hostname or ""
        netloc = f"{host}:{parts.port}" if parts.port else host
        return urlunsplit(parts._replace(netloc=netloc))
    return uri


def _first(*values):
    return next((v for v in values if v), None)


def resolve_milvus(
    uri=None, token=None, user=None, password=None, secrets=None, start_local=True
):
    """Resolves settings into a :class:`MilvusConnection`.

    Args:
        uri (None): a Milvus URI in one of the forms above, or a
            :class:`MilvusConnection` (returned as it is)
        token, user, password (None): credentials
        secrets (None): plugin secrets, e.g. ``ctx.secrets``
        start_local (True): start the managed local store if it is the target
    """

    def lookup(name, explicit):
        own = settings.get_setting(f"VRAG_MILVUS_{name}", secrets)
        return _first(explicit, own, os.environ.get(_BRAIN_ENV % name))

    if isinstance(uri, MilvusConnection):  # already resolved
        return uri
    uri = (lookup("URI", uri) or "").strip()
    token, user = lookup("TOKEN", token), lookup("USER", user)
    password = lookup("PASSWORD", password)

    if uri in ("", LOCAL):
        from plugin.milvus.local_server import LocalMilvusServer

        server = LocalMilvusServer()
        local_uri = server.ensure_running() if start_local else server.uri()
        return MilvusConnection(uri=local_uri or "", kind=LOCAL)
    if uri.endswith(".db"):
        path = os.path.abspath(os.path.expanduser(uri))
        return MilvusConnection(uri=path, kind=LITE_FILE)
    if uri.startswith(("http://", "https://", "tcp://", "grpc://")):
        kind = ZILLIZ if "zillizcloud.com" in uri else SERVER
        return MilvusConnection(uri, kind, token=token, user=user, password=password)
    raise ValueError(
        f"Unsupported Milvus URI {redact_uri(uri)!r}. Use 'local' (the managed "
        "local store), a path ending in '.db' (Milvus Lite, one process only), "
        "http(s)://host:port (Milvus server) or a Zilliz Cloud URI with a token."
    )


def check_reachable(connection, timeout=5.0):
    """Raises :class:`MilvusUnreachableError` unless the server accepts TCP.

    pymilvus can wait far longer than a user wants on a dead address; a plain
    socket connect answers within ``timeout`` seconds.
    """
    if connection.kind == LITE_FILE:
        return
    if not connection.uri:
        raise MilvusUnreachableError("The local Milvus store is not running")
    parts = urlsplit(connection.uri)
    default_port = 443 if parts.scheme == "https" else 19530
    address = (parts.hostname or "localhost", parts.port or default_port)
    try:
        with socket.create_connection(address, timeout=timeout):
            pass
    except OSError as e:
        raise MilvusUnreachableError(
            f"Milvus is unreachable at {connection.display_uri} "
            f"({type(e).__name__}: {e}). Is the server running, and is the "
            "URI right? Set it with the VRAG_MILVUS_URI secret or variable."
        ) from e


def use_for_brain(connection):
    """Makes ``connection`` fiftyone-brain's Milvus default in this process.

    fiftyone-brain does not store credentials with an index; when an index is
    loaded later (e.g. by the App's search bar) it reads them from its config.
    Setting them here, in memory only, lets every load in this process reach
    the same store without writing secrets anywhere.
    """
    import fiftyone.brain as fob

    backends = fob.brain_config.similarity_backends
    params = backends.setdefault("milvus", {})
    params.update(connection.credentials())
