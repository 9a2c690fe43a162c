"""A REAL Milvus standalone server for tests, started once per session.

The server comes from the PyPI package ``milvus==2.3.5`` (it ships the Milvus
binary), installed in its own venv by scripts/setup_test_services.sh because
its extra pins an old pymilvus. If it cannot start, tests that use it FAIL with
the reason: they never skip.
"""

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CACHE_DIR = Path(
    os.environ.get("VRAG_CACHE_DIR", Path.home() / ".cache" / "fiftyone-video-rag")
)
VENV_PYTHON = CACHE_DIR / "milvus-server-venv" / "bin" / "python"
PIDS_DIR = CACHE_DIR / "milvus-server-test-pids"


class MilvusServerError(RuntimeError):
    pass


def _kill_group(pid):
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except (ProcessLookupError, PermissionError):
            return
        for _ in range(100):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)


def _alive(pid):
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, ValueError):
        return False
    return True


def _kill_leftovers():
    """Stops servers whose test session died without stopping them (a crash
    leaves ``milvus run standalone`` and its etcd running). Servers of other
    live sessions are left alone."""
    for pid_file in PIDS_DIR.glob("*.json"):
        try:
            owner = json.loads(pid_file.read_text())
        except (OSError, ValueError):
            continue
        if not _alive(owner.get("session", 0)):
            _kill_group(owner["server"])
            pid_file.unlink(missing_ok=True)


class RealMilvusServer:
    """Starts ``milvus run standalone`` in a temp dir; ``uri`` once started."""

    def __init__(self, start_timeout=180):
        self.start_timeout = start_timeout
        self.base_dir = Path(tempfile.mkdtemp(prefix="vrag-milvus-"))
        self.proc = None
        self.uri = None

    def start(self):
        if not VENV_PYTHON.exists():
            raise MilvusServerError(
                f"The Milvus server venv is missing ({VENV_PYTHON}). "
                "Run `make setup-test` (scripts/setup_test_services.sh)."
            )
        _kill_leftovers()
        log = open(self.base_dir / "runner.log", "wb")
        self.proc = subprocess.Popen(
            [
                str(VENV_PYTHON),
                str(HERE / "run_milvus_standalone.py"),
                str(self.base_dir),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        PIDS_DIR.mkdir(parents=True, exist_ok=True)
        self._pid_file = PIDS_DIR / f"{self.proc.pid}.json"
        self._pid_file.write_text(
            json.dumps({"server": self.proc.pid, "session": os.getpid()})
        )
        port_file = self.base_dir / "port"
        deadline = time.monotonic() + self.start_timeout
        while not port_file.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                log = (self.base_dir / "runner.log").read_text(errors="replace")
                self.stop()
                raise MilvusServerError(
                    "The real Milvus server did not start. Runner log:\n" + log[-3000:]
                )
            time.sleep(0.2)
        self.uri = f"http://127.0.0.1:{port_file.read_text().strip()}"
        return self.uri

    def stop(self):
        if self.proc is not None:
            _kill_group(self.proc.pid)
            self.proc = None
        if getattr(self, "_pid_file", None) is not None:
            self._pid_file.unlink(missing_ok=True)
        shutil.rmtree(self.base_dir, ignore_errors=True)
