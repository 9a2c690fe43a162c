"""A REAL Milvus standalone server for tests, started once per session.

The server comes from the PyPI package ``milvus==2.3.5`` (it ships the Milvus
binary), installed in its own venv by scripts/setup_test_services.sh because
its extra pins an old pymilvus. If it cannot start, tests that use it FAIL with
the reason: they never skip.
"""

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
PID_FILE = CACHE_DIR / "milvus-server-test.pid"


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


def _kill_leftover():
    """Stops a server a crashed earlier test session left running."""
    try:
        pid = int(PID_FILE.read_text())
    except (OSError, ValueError):
        return
    _kill_group(pid)
    PID_FILE.unlink(missing_ok=True)


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
        _kill_leftover()
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
        PID_FILE.write_text(str(self.proc.pid))
        port_file = self.base_dir / "port"
        deadline = time.monotonic() + self.start_timeout
        while not port_file.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise MilvusServerError(
                    "The real Milvus server did not start. Runner log:\n"
                    + (self.base_dir / "runner.log").read_text(errors="replace")[-3000:]
                )
            time.sleep(0.2)
        self.uri = f"http://127.0.0.1:{port_file.read_text().strip()}"
        return self.uri

    def stop(self):
        if self.proc is not None:
            _kill_group(self.proc.pid)
            self.proc = None
        PID_FILE.unlink(missing_ok=True)
        shutil.rmtree(self.base_dir, ignore_errors=True)
