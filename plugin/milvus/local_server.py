"""The managed local Milvus store: a Milvus Lite server on 127.0.0.1.

Why a server and not a ``.db`` file: Milvus Lite lets ONE process open a data
dir (it holds an flock), and the FiftyOne App server is a different process
from a notebook or the CLI. ``milvus-lite server`` serves the same store over
gRPC to any number of processes, so it is the default store.

Files, all under ``<workbench home>/milvus-lite/`` (see ``settings``):

- ``data/``: the store itself
- ``server.json``: pid, port and start time of the running server
- ``server.log``: the server's output
- ``start.lock``: held while a process checks/starts the server, so two
  processes asking at once start one server, not two
"""

import contextlib
import fcntl
import json
import logging
import sys
import time
from pathlib import Path

from plugin import process
from plugin.errors import StoreUnreachableError
from plugin.process import HOST
from plugin.settings import Settings

logger = logging.getLogger(__name__)

_SERVER_SCRIPT = Path(__file__).with_name("milvus_lite_server.py")
PORT_WAIT = 3.0  # s a closing listener on the preferred port gets to go away


class LocalStoreError(StoreUnreachableError):
    """The managed local Milvus store could not be started or reached."""


def _is_our_server(pid):
    """True if ``pid`` is alive and runs a Milvus Lite server."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"milvus_lite_server.py" in cmdline


class LocalMilvusServer:
    """Start, inspect and stop the managed Milvus Lite server.

    Args:
        root (None): the folder for the store's files; default
            ``<workbench home>/milvus-lite``
        port (None): the preferred port; default the ``milvus_lite_port``
            setting (``VRAG_MILVUS_LITE_PORT``, 19541). If it is taken by
            another program, a free port is used and recorded in ``server.json``.
        settings (None): a :class:`~plugin.settings.Settings` (default: loaded)
    """

    def __init__(self, root=None, port=None, settings=None):
        settings = Settings.coerce(settings)
        self.root = Path(root or settings.home_path / "milvus-lite")
        self.preferred_port = int(port or settings.milvus_lite_port)
        self.data_dir = self.root / "data"
        self.state_path = self.root / "server.json"  # the running server's pid, port
        self.log_path = self.root / "server.log"
        self.lock_path = self.root / "start.lock"  # one start at a time

    def _read_state(self):
        try:
            return json.loads(self.state_path.read_text())
        except (OSError, ValueError):
            return None

    def _healthy_state(self):
        state = self._read_state()
        if state is None:
            return None
        pid, port = state.get("pid"), state.get("port")
        if _is_our_server(pid) and process.is_up(pid, port):
            return state
        return None

    @contextlib.contextmanager
    def _start_lock(self):
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.lock_path, "w") as lock_file:
            fcntl.flock(lock_file, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock_file, fcntl.LOCK_UN)

    def uri(self):
        """The running server's URI, or None."""
        state = self._healthy_state()
        return f"http://{HOST}:{state['port']}" if state else None

    def status(self):
        """A dict describing the server: running, pid, port, uri, paths."""
        state = self._read_state() or {}
        healthy = self._healthy_state() is not None
        return {
            "running": healthy,
            "stale": bool(state) and not healthy,
            "pid": state.get("pid"),
            "port": state.get("port"),
            "uri": f"http://{HOST}:{state['port']}" if healthy else None,
            "data_dir": str(self.data_dir),
            "log": str(self.log_path),
            "started_at": state.get("started_at"),
        }

    def ensure_running(self, timeout=60.0):
        """Returns the URI of the server, starting it if needed.

        Race-free across processes: the check and the start happen under an
        exclusive file lock, so concurrent callers share one server.
        """
        state = self._healthy_state()
        if state is not None:
            return f"http://{HOST}:{state['port']}"
        with self._start_lock():
            state = self._healthy_state()
            if state is None:
                self._stop_stale()
                state = self._start(timeout)
        return f"http://{HOST}:{state['port']}"

    def _stop_stale(self):
        state = self._read_state()
        if not state:
            return
        pid = state.get("pid")
        if _is_our_server(pid):
            logger.warning(
                "Milvus Lite server pid %s is not answering; restarting", pid
            )
            process.stop_group(pid)
        self.state_path.unlink(missing_ok=True)

    def _choose_port(self, wait=PORT_WAIT):
        """The preferred port unless another program listens on it.

        A port that only the stopped server's closing connections hold is
        taken: the server binds with ``SO_REUSEADDR``/``SO_REUSEPORT`` even
        where our bind test fails (the server listens on ``::ffff:127.0.0.1``,
        and a TIME_WAIT socket of that family fails an IPv4 bind test). A
        listener that is still closing gets ``wait`` s to go away.
        """
        port = self.preferred_port
        deadline = time.monotonic() + wait
        while True:
            if process.port_is_free(port) or not process.accepts_connections(port):
                return port
            if time.monotonic() > deadline:
                return self._other_port()
            time.sleep(0.2)

    def _other_port(self):
        port = process.free_port()
        logger.warning(
            "Port %d is in use by another program; the local Milvus store "
            "uses port %d instead",
            self.preferred_port,
            port,
        )
        return port

    def _start(self, timeout):
        self.data_dir.mkdir(parents=True, exist_ok=True)
        port = self._choose_port()
        try:
            return self._start_on(port, timeout)
        except LocalStoreError:
            if port != self.preferred_port:
                raise
        # It could not bind the preferred port after all: any free one
        return self._start_on(self._other_port(), timeout)

    def _start_on(self, port, timeout):
        cmd = [sys.executable, str(_SERVER_SCRIPT)]
        cmd += ["--data-dir", str(self.data_dir), "--host", HOST, "--port", str(port)]
        # Its own session: the server outlives the process that started it
        # (e.g. a notebook kernel) and is shared by the App and others.
        proc = process.start_process(cmd, self.log_path, append=True)
        process.wait_until_up(
            proc,
            port,
            timeout,
            log=self.log_path,
            name="The local Milvus store",
            error=LocalStoreError,
        )
        state = {"pid": proc.pid, "port": port, "started_at": time.time()}
        self.state_path.write_text(json.dumps(state))
        return state

    def stop(self):
        """Stops the server if it runs. Returns True if one was stopped."""
        with self._start_lock():
            state = self._read_state()
            self.state_path.unlink(missing_ok=True)
            if state and _is_our_server(state.get("pid")):
                process.stop_group(state["pid"])
                return True
        return False

    def logs(self, lines=50):
        """The last ``lines`` lines of the server's log."""
        return process.log_tail(self.log_path, lines)
