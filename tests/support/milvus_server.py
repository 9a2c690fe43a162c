"""A REAL Milvus standalone server for tests, started once per session.

The server comes from the PyPI package ``milvus==2.3.5`` (it ships the Milvus
binary), installed in its own venv by scripts/setup_test_services.sh because
its extra pins an old pymilvus. If it cannot start, tests that use it FAIL with
the reason: they never skip.
"""

import json
import os
import shutil
import tempfile
from pathlib import Path

from plugin import process

HERE = Path(__file__).resolve().parent
CACHE_DIR = Path(
    os.environ.get("VRAG_CACHE_DIR", Path.home() / ".cache" / "fiftyone-video-rag")
)
VENV_PYTHON = CACHE_DIR / "milvus-server-venv" / "bin" / "python"
PIDS_DIR = CACHE_DIR / "milvus-server-test-pids"


class MilvusServerError(RuntimeError):
    pass


def _kill_leftovers():
    """Stops servers whose test session died without stopping them (a crash
    leaves ``milvus run standalone`` and its etcd running). Servers of other
    live sessions are left alone."""
    for pid_file in PIDS_DIR.glob("*.json"):
        try:
            owner = json.loads(pid_file.read_text())
        except (OSError, ValueError):
            continue
        if not process.pid_alive(owner.get("session", 0)):
            process.stop_group(owner["server"])
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
        log_path = self.base_dir / "runner.log"
        self.proc = process.start_process(
            [VENV_PYTHON, HERE / "run_milvus_standalone.py", self.base_dir], log_path
        )
        PIDS_DIR.mkdir(parents=True, exist_ok=True)
        self._pid_file = PIDS_DIR / f"{self.proc.pid}.json"
        self._pid_file.write_text(
            json.dumps({"server": self.proc.pid, "session": os.getpid()})
        )
        port_file = self.base_dir / "port"  # written once the server answers
        try:
            process.wait_until_up(
                self.proc,
                port_file.exists,
                self.start_timeout,
                log=log_path,
                tail=lambda: log_path.read_text(errors="replace")[-3000:],
                name="The real Milvus server",
                error=MilvusServerError,
            )
        except MilvusServerError:
            self.stop()
            raise
        self.uri = f"http://127.0.0.1:{port_file.read_text().strip()}"
        return self.uri

    def stop(self):
        if self.proc is not None:
            process.stop_group(self.proc.pid)
            self.proc = None
        if getattr(self, "_pid_file", None) is not None:
            self._pid_file.unlink(missing_ok=True)
        shutil.rmtree(self.base_dir, ignore_errors=True)
