"""Runs a real Milvus standalone server (PyPI package ``milvus==2.3.5``).

Run with the milvus-server venv's python (see scripts/setup_test_services.sh):
``python run_milvus_standalone.py BASE_DIR``. Writes ``BASE_DIR/port`` once the
server answers, then serves until SIGTERM/SIGINT, and stops the server.

SIGHUP restarts the server in place (same data, same ports), as an operator
restarting Milvus would: the fault tests use it (tests/test_faults_store.py).
``BASE_DIR/port`` is removed while it restarts and written again once the
server answers.
"""

import signal
import socket
import sys
import time
from pathlib import Path

from milvus import default_server


def _bind_reusable(port):
    """The package's port probe, with SO_REUSEADDR: after a restart the old
    connections' TIME_WAIT sockets must not move the server to other ports
    (the Milvus binary itself binds with SO_REUSEADDR)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
        sock.listen()
        return sock
    except (OSError, OverflowError, ValueError):
        sock.close()
        return None


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _own_etcd_ports(config):
    """Gives the embedded etcd its own client AND peer ports. The package
    resolves the client port but leaves etcd's peer port at its default
    (2380), so a second server on the machine failed ("bind: address already
    in use"); Milvus reads the embedded etcd's settings from the file named
    by ``etcd.config.path``."""
    write_config = config.write_config

    def write_with_etcd_ports():
        write_config()
        configs = Path(config.base_data_dir) / "configs"
        etcd_file = configs / "embed_etcd.yaml"
        client = f"http://127.0.0.1:{config.get('etcd_port')}"
        peer = f"http://127.0.0.1:{_free_port()}"
        etcd_file.write_text(
            f"listen-client-urls: {client}\nadvertise-client-urls: {client}\n"
            f"listen-peer-urls: {peer}\ninitial-advertise-peer-urls: {peer}\n"
            f"initial-cluster: default={peer}\n"
        )
        milvus_yaml = configs / "milvus.yaml"
        text = milvus_yaml.read_text()
        embed = "  use:\n    embed: true"
        assert embed in text, "milvus.yaml template changed: re-check"
        text = text.replace(embed, f"  config:\n    path: {etcd_file}\n{embed}", 1)
        milvus_yaml.write_text(text)

    config.write_config = write_with_etcd_ports


def main(base_dir):
    base = Path(base_dir)
    base.mkdir(parents=True, exist_ok=True)
    port_file = base / "port"
    stopping, restarting = [], []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    signal.signal(signal.SIGINT, lambda *_: stopping.append(True))
    signal.signal(signal.SIGHUP, lambda *_: restarting.append(True))
    default_server.config.try_bind_port = _bind_reusable
    _own_etcd_ports(default_server.config)
    default_server.set_base_dir(str(base / "data"))
    default_server.start()
    port_file.write_text(str(default_server.listen_port))
    try:
        while not stopping:
            if restarting:
                restarting.clear()
                port_file.unlink(missing_ok=True)
                default_server.stop()
                default_server.start()
                port_file.write_text(str(default_server.listen_port))
            elif default_server.server_proc.poll() is not None:
                break
            time.sleep(0.2)
    finally:
        default_server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
