"""The one resolver from settings to a Milvus connection.

Accepted forms of a Milvus URI:

- empty / ``"local"``: the managed local store (a Milvus Lite server started
  on demand, shared by the App, notebooks and the CLI)
- a path ending in ``.db``: a Milvus Lite file (ONE process only)
- ``http(s)://host:port``: Milvus standalone or distributed
- ``https://...zillizcloud.com...`` plus a token: Zilliz Cloud

Where the URI and credentials come from is :mod:`plugin.settings`'s business
(:class:`~plugin.settings.Settings`); this module turns them into a
:class:`MilvusConnection`, and :mod:`plugin.clients` into a shared client.
"""

import dataclasses
import os
import socket
from urllib.parse import urlsplit, urlunsplit

from plugin.errors import InvalidInputError, StoreUnreachableError
from plugin.settings import Settings

LOCAL = "local"
LITE_FILE = "lite-file"
SERVER = "server"
ZILLIZ = "zilliz"

#: Kept name: the workbench's error for an unreachable store
MilvusUnreachableError = StoreUnreachableError


@dataclasses.dataclass(frozen=True, repr=False)
class MilvusConnection:
    """Where and how to connect to Milvus. ``repr`` never shows secrets."""

    uri: str
    kind: str
    token: str | None = dataclasses.field(default=None, repr=False)
    user: str | None = None
    password: str | None = dataclasses.field(default=None, repr=False)
    #: seconds one Milvus call may take, retries included (``milvus_timeout``)
    call_timeout: float = dataclasses.field(default=30.0, compare=False)

    def __repr__(self):
        return (
            f"MilvusConnection(uri={self.display_uri!r}, kind={self.kind!r}, "
            f"user={self.user!r})"
        )

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

    def secrets(self):
        """The credentials of this connection, to scrub from any text shown:
        token, password, and a password written into the URI."""
        values = [self.token, self.password]
        try:
            values.append(urlsplit(self.uri).password)
        except ValueError:
            pass
        return [v for v in values if v and len(v) >= 4]

    def cache_key(self):
        """What identifies this connection's shared client."""
        return (self.uri, self.token, self.user, self.password, self.call_timeout)

    def client(self, timeout=5.0, connect_timeout=None):
        """The shared ``pymilvus.MilvusClient`` (see :mod:`plugin.clients`),
        checked reachable within ``timeout`` s first; the handshake gets
        ``connect_timeout`` s (default: :attr:`call_timeout`)."""
        from plugin.clients import milvus_client

        return milvus_client(self, timeout, connect_timeout)


def is_lite_connection(connection):
    """True when a resolved connection is a Milvus Lite store (the managed
    local server or a ``.db`` file): indexed by size, serving one machine."""
    return connection.kind in (LOCAL, LITE_FILE) or is_milvus_lite(connection.uri)


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


def resolve_milvus(
    uri=None, token=None, user=None, password=None, secrets=None, start_local=True
):
    """A :class:`MilvusConnection` from explicit values, else the settings.

    Args:
        uri (None): a Milvus URI in one of the forms above, a
            :class:`MilvusConnection` (returned as it is) or a
            :class:`~plugin.settings.Settings`
        token, user, password (None): credentials
        secrets (None): plugin secrets, e.g. ``ctx.secrets``
        start_local (True): start the managed local store if it is the target
    """
    if isinstance(uri, MilvusConnection):  # already resolved
        return uri
    if isinstance(uri, Settings):
        return connection_for(uri, start_local)
    settings = Settings.load(
        secrets,
        milvus_uri=uri,
        milvus_token=token,
        milvus_user=user,
        milvus_password=password,
    )
    return connection_for(settings, start_local)


def connection_for(settings, start_local=True):
    """The :class:`MilvusConnection` that ``settings`` name."""
    uri = settings.milvus_uri or ""
    if not isinstance(uri, str):
        raise InvalidInputError(
            f"The Milvus URI must be text, got {type(uri).__name__}"
        )
    uri = uri.strip()
    timeout = float(settings.milvus_timeout)
    if uri in ("", LOCAL):
        from plugin.milvus.local_server import LocalMilvusServer

        server = LocalMilvusServer(settings=settings)
        local_uri = server.ensure_running() if start_local else server.uri()
        return MilvusConnection(uri=local_uri or "", kind=LOCAL, call_timeout=timeout)
    if uri.endswith(".db"):
        path = os.path.abspath(os.path.expanduser(uri))
        return MilvusConnection(uri=path, kind=LITE_FILE, call_timeout=timeout)
    if uri.startswith(("http://", "https://", "tcp://", "grpc://")):
        _check_address(uri)
        kind = ZILLIZ if "zillizcloud.com" in uri else SERVER
        return MilvusConnection(
            uri,
            kind,
            token=settings.milvus_token,
            user=settings.milvus_user,
            password=settings.milvus_password,
            call_timeout=timeout,
        )
    raise InvalidInputError(
        f"Unsupported Milvus URI {redact_uri_safely(uri)!r}. Use 'local' (the managed "
        "local store), a path ending in '.db' (Milvus Lite, one process only), "
        "http(s)://host:port (Milvus server) or a Zilliz Cloud URI with a token."
    )


def _check_address(uri):
    """Refuses a server URI without a host or with a bad port, before anything
    tries to connect (``http://host:99999``, ``http://:19530``)."""
    try:
        parts = urlsplit(uri)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as e:
        raise InvalidInputError(
            f"The Milvus URI {redact_uri_safely(uri)!r} is malformed ({e}). "
            "Write it as http(s)://host:port."
        ) from None
    if not parts.hostname:
        raise InvalidInputError(
            f"The Milvus URI {redact_uri_safely(uri)!r} names no host. Write it "
            "as http(s)://host:port."
        )


def redact_uri_safely(uri):
    """:func:`redact_uri`, also for a URI too malformed to parse."""
    try:
        return redact_uri(uri)
    except ValueError:
        from plugin.errors import scrub

        return scrub(uri)


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
        ) from None


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
