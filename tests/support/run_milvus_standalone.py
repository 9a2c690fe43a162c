"""Runs a real Milvus standalone server (PyPI package ``milvus==2.3.5``).

Run with the milvus-server venv's python (see scripts/setup_test_services.sh):
``python run_milvus_standalone.py BASE_DIR``. Writes ``BASE_DIR/port`` once the
server answers, then serves until SIGTERM/SIGINT, and stops the server.
"""

import signal
import sys
import time
from pathlib import Path

from milvus import default_server


def main(base_dir):
    base = Path(base_dir)
    base.mkdir(parents=True, exist_ok=True)
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    signal.signal(signal.SIGINT, lambda *_: stopping.append(True))
    default_server.set_base_dir(str(base / "data"))
    default_server.start()
    (base / "port").write_text(str(default_server.listen_port))
    try:
        while not stopping and default_server.server_proc.poll() is None:
            time.sleep(0.2)
    finally:
        default_server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
