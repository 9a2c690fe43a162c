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
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from plugin.errors import StoreUnreachableError
from plugin.settings import Settings

logger = logging.getLogger(__name__)

_SERVER_SCRIPT = Path(__file__).with_name("milvus_lite_server.py")
HOST = "127.0.0.1"


class LocalStoreError(StoreUnreachableError):
    """The managed local Milvus store could not be started or reached."""


def _port_is_free(port):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def _accepts_connections(port, timeout=0.5):
    try:
        with socket.create_connection((HOST, port), timeout=timeout):
            return True
    except OSError:
        return False


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

    @property
    def data_dir(self):
        return self.root / "data"

    @property
    def state_path(self):
        return self.root / "server.json"

    @property
    def log_path(self):
        return self.root / "server.log"

    @property
    def lock_path(self):
        return self.root / "start.lock"

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
        if _is_our_server(pid) and _accepts_connections(port):
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
            _terminate(pid)
        self.state_path.unlink(missing_ok=True)

    def _choose_port(self):
        if _port_is_free(self.preferred_port):
            return self.preferred_port
        port = _free_port()
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
        cmd = [sys.executable, str(_SERVER_SCRIPT)]
        cmd += ["--data-dir", str(self.data_dir), "--host", HOST, "--port", str(port)]
        with open(self.log_path, "ab") as log:
            log.write(f"\n=== starting: {' '.join(cmd)}\n".encode())
            # A new session: the server outlives the process that started it
            # (e.g. a notebook kernel) and is shared by the App and others.
            proc = subprocess.Popen(
                cmd,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self._wait_until_up(proc, port, timeout)
        state = {"pid": proc.pid, "port": port, "started_at": time.time()}
        self.state_path.write_text(json.dumps(state))
        return state

    def _wait_until_up(self, proc, port, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise LocalStoreError(
                    f"The local Milvus store exited with code {proc.returncode} "
                    f"while starting. Last log lines ({self.log_path}):\n"
                    + self.logs(20)
                )
            if _accepts_connections(port):
                return
            time.sleep(0.2)
        _terminate(proc.pid)
        raise LocalStoreError(
            f"The local Milvus store did not start within {timeout:.0f} s. "
            f"Last log lines ({self.log_path}):\n" + self.logs(20)
        )

    def stop(self):
        """Stops the server if it runs. Returns True if one was stopped."""
        with self._start_lock():
            state = self._read_state()
            self.state_path.unlink(missing_ok=True)
            if state and _is_our_server(state.get("pid")):
                _terminate(state["pid"])
                return True
        return False

    def logs(self, lines=50):
        """The last ``lines`` lines of the server's log."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def _terminate(pid, grace=10.0):
    """SIGTERM the server's process group, then SIGKILL after ``grace`` s."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        except PermissionError:
            os.kill(pid, sig)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            if not _pid_alive(pid):
                return
            time.sleep(0.1)


def _pid_alive(pid):
    try:
        os.waitpid(pid, os.WNOHANG)  # reap if it is our child
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and ") Z " in stat.read_text())
