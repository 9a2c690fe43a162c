"""Milvus calls that fail fast, survive a store restart, and show no secrets.

A process that holds indexes (the FiftyOne App server above all) lives
longer than the store: Milvus gets restarted, the managed local store is
stopped and started again. Left to itself, pymilvus then retries a call 75
times (~211 s) against a dead address, and after a restart every search of
a collection loaded before fails with "collection ... is in state
'released'". Every call of the workbench into Milvus goes through
:func:`call`, which:

1. resolves the store anew (the managed local store is restarted if it
   died) and checks it accepts connections: a dead store fails within
   seconds as :class:`~plugin.errors.StoreUnreachableError`;
2. runs the operation; on the failures a restart causes ("released",
   connection lost), runs the caller's ``recover`` (drop cached clients and
   loaded indexes, so they reconnect and load the collection) and tries
   ONCE more;
3. turns anything pymilvus or brain raise into a workbench error whose
   message never carries credentials (:func:`describe`).

pymilvus' own waits are bounded by passing ``timeout=`` to each call (the
``milvus_timeout`` setting, ``VRAG_MILVUS_TIMEOUT``): :class:`Timed` does it
for the shared clients and for the collections fiftyone-brain holds.
"""

import logging
import threading

from plugin.errors import (
    IndexNotFoundError,
    StoreError,
    StoreUnreachableError,
    remember_secrets,
    scrub,
)
from plugin.milvus.resolver import check_reachable

logger = logging.getLogger(__name__)

#: Words of the errors a restarted or lost store gives (lower case)
_RECOVERABLE = (
    "released",
    "not loaded",
    "unavailable",
    "retry run out",
    "retry timeout",
    "failed to connect",
    "fail connecting",
    "connection refused",
    "connection reset",
    "connect to all addresses",
    "channel",
    "socket closed",
    "should create connection first",
    "connectionnotexist",
    "deadline exceeded",
    "goaway",
)
_MISSING = ("does not exist", "not found", "not exist", "can't find")
_TIMEOUT = ("deadline exceeded", "retry timeout")
_NO_HANDSHAKE = ("failed to connect to milvus backend", "fail connecting to server")

#: Loggers whose records may quote a URI or an exception with credentials
_LOGGERS = ("pymilvus", "fiftyone.brain", "fiftyone.core.runs", "plugin")
_SCRUB_LOCK = threading.Lock()


def is_store_error(error):
    """True for an exception raised by pymilvus, gRPC, or brain's Milvus
    backend when it cannot connect."""
    try:
        import grpc
        from pymilvus.exceptions import MilvusException
    except ImportError:  # pragma: no cover - both come with pymilvus
        return False
    if isinstance(error, MilvusException | grpc.RpcError):
        return True
    # brain's MilvusSimilarityIndex wraps a failed connect in a ValueError
    return isinstance(error, ValueError) and "Milvus backend" in str(error)


def is_recoverable(error):
    """True for the failures that a reconnect and a reload may fix."""
    text = f"{type(error).__name__} {error}".lower()
    return any(word in text for word in _RECOVERABLE)


def reachable(settings):
    """The :class:`~plugin.milvus.MilvusConnection` of ``settings``, checked
    to accept connections (the managed local store is started if needed)."""
    connection = settings.milvus()
    protect(connection)
    check_reachable(connection)
    return connection


def call(settings, doing, operation, recover=None):
    """``operation(connection)``, bounded and recovered (see the module doc).

    Args:
        settings: a :class:`~plugin.settings.Settings` (the store)
        doing: what is being done, for messages ("searching frame index 'x'")
        operation: called with the connection; returns the result
        recover (None): called with the connection after a restart-type
            failure, before the one retry (drop caches, reconnect)

    Raises:
        StoreUnreachableError: the store is down or stopped answering
        IndexNotFoundError: the collection is gone
        StoreError: Milvus refused the operation
    """
    connection = reachable(settings)
    try:
        return operation(connection)
    except Exception as e:
        if not is_store_error(e):
            raise
        if recover is None or not is_recoverable(e):
            raise describe(e, connection, doing) from None
        logger.info(
            "Milvus at %s: reconnecting after a failure while %s",
            connection.display_uri,
            doing,
        )
    recover(connection)
    connection = reachable(settings)  # a restarted local store may move
    try:
        return operation(connection)
    except Exception as e:
        if not is_store_error(e):
            raise
        raise describe(e, connection, doing) from None


def describe(error, connection, doing):
    """A workbench error for a pymilvus/brain ``error`` raised while ``doing``."""
    where = f"Milvus at {connection.display_uri}"
    reason = scrub(f"{type(error).__name__}: {error}", connection.secrets())
    text = reason.lower()
    if not _accepts(connection):
        return StoreUnreachableError(
            f"{where} stopped answering while {doing}. Is the server running? "
            "Nothing was lost: try again once it is back."
        )
    if any(word in text for word in _TIMEOUT + _NO_HANDSHAKE):
        # it accepts connections, yet does not answer: busy or frozen
        return StoreUnreachableError(
            f"{where} did not answer within {connection.call_timeout:g} s while "
            f"{doing} (the milvus_timeout setting, VRAG_MILVUS_TIMEOUT). The "
            "server may be overloaded or frozen; nothing was lost: try again."
        )
    if "collection" in text and any(word in text for word in _MISSING):
        return IndexNotFoundError(
            f"{where} has no such collection ({doing}). It was deleted, or the "
            "index was built on another store: rebuild it or point the "
            f"workbench at that store. ({_short(reason)})"
        )
    if is_recoverable(error):
        return StoreUnreachableError(
            f"{where} lost the connection while {doing} and did not recover "
            f"after a reconnect: {_short(reason)}"
        )
    return StoreError(f"{where} failed while {doing}: {_short(reason)}")


def _accepts(connection):
    try:
        check_reachable(connection, timeout=2.0)
    except StoreUnreachableError:
        return False
    return True


def _short(text, limit=300):
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


class Timed:
    """A pymilvus object (a ``MilvusClient``, an ORM ``Collection``) whose
    calls give up after ``timeout`` s.

    Without ``timeout=``, pymilvus retries a dead channel 75 times (~211 s)
    and waits forever on a server that accepts connections but never
    answers; fiftyone-brain passes none. This proxy adds ``timeout`` to every
    method that takes one (unless the caller gave it) and passes everything
    else through.
    """

    _KWARGS_ONLY = frozenset(("list_indexes", "list_collections"))

    def __init__(self, target, timeout):
        object.__setattr__(self, "_vrag_target", target)
        object.__setattr__(self, "_vrag_timeout", timeout)

    @property
    def wrapped(self):
        return self._vrag_target

    def __getattr__(self, name):
        attr = getattr(self._vrag_target, name)
        position = _timeout_position(type(self._vrag_target), name)
        if position is None and name not in self._KWARGS_ONLY:
            return attr

        def timed(*args, **kwargs):
            given = position is not None and len(args) > position
            if not given and kwargs.get("timeout") is None:
                kwargs["timeout"] = self._vrag_timeout
            return attr(*args, **kwargs)

        return timed

    def __setattr__(self, name, value):
        setattr(self._vrag_target, name, value)

    def __repr__(self):
        return f"Timed({self._vrag_target!r})"


_POSITIONS = {}


def _timeout_position(cls, name):
    """The index of ``timeout`` among the positional parameters of method
    ``cls.name`` (without ``self``), or None if it takes no timeout."""
    key = (cls, name)
    if key not in _POSITIONS:
        import inspect

        position = None
        method = getattr(cls, name, None)
        if callable(method) and not isinstance(method, type):
            try:
                params = list(inspect.signature(method).parameters)
            except (TypeError, ValueError):
                params = []
            if "timeout" in params:
                position = params.index("timeout") - 1  # without self
        _POSITIONS[key] = position
    return _POSITIONS[key]


def bound(target, timeout):
    """``target`` wrapped in :class:`Timed` (once; None stays None)."""
    if target is None or isinstance(target, Timed):
        return target
    return Timed(target, timeout)


# -- credentials out of logs --------------------------------------------------


class _ScrubFilter(logging.Filter):
    """Rewrites a record's message without credentials (URIs with
    ``user:pw@``, bearer tokens, the known secrets)."""

    def filter(self, record):
        try:
            message = record.getMessage()
        except Exception:  # a broken record: leave it to logging's own handling
            return True
        clean = scrub(message)  # with every secret a client was given
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            if scrub(str(exc)) != str(exc):
                record.exc_info, record.exc_text = None, None  # drop the raw trace
        return True


_FILTER = _ScrubFilter()


def protect(connection):
    """Keeps ``connection``'s credentials out of the logs of pymilvus,
    fiftyone-brain and the workbench in this process (idempotent)."""
    remember_secrets(*connection.secrets())  # scrub() removes them everywhere
    with _SCRUB_LOCK:
        manager = logging.root.manager
        names = [
            name
            for name in list(manager.loggerDict)
            if name.split(".")[0] in ("pymilvus", "plugin") or name.startswith(_LOGGERS)
        ]
        for name in {*names, *_LOGGERS}:
            log = logging.getLogger(name)
            if _FILTER not in log.filters:
                log.addFilter(_FILTER)
            for handler in log.handlers:  # pymilvus logs to its own handler
                if _FILTER not in handler.filters:
                    handler.addFilter(_FILTER)
