"""plugin.process: free port, start in its own group, liveness, wait, stop.

Real processes: a small HTTP server (Python's ``http.server``) that starts a
child of its own, as Milvus starts etcd and vLLM its workers.
"""

import socket
import sys
import textwrap
import time

import pytest
from support.ports import stable_free_port

from plugin import process

SERVER = textwrap.dedent(
    """
    import http.server, pathlib, subprocess, sys

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    pathlib.Path(sys.argv[2]).write_text(str(child.pid))
    print("serving on", sys.argv[1], flush=True)
    http.server.ThreadingHTTPServer(
        ("127.0.0.1", int(sys.argv[1])), http.server.SimpleHTTPRequestHandler
    ).serve_forever()
    """
)


@pytest.fixture
def start_server(tmp_path):
    """Starts the test server on a port; stops every group it started."""
    script = tmp_path / "server.py"
    script.write_text(SERVER)
    started = []

    def start(port):
        child_file = tmp_path / f"child-{len(started)}.pid"
        log = tmp_path / f"server-{len(started)}.log"
        cmd = [sys.executable, script, port, child_file]
        proc = process.start_process(cmd, log, cwd=tmp_path)
        started.append(proc)
        process.wait_until_up(proc, port, timeout=60, log=log)
        return proc, int(child_file.read_text()), log

    yield start
    for proc in started:
        process.stop_group(proc.pid, grace=2)


def test_free_port_and_port_checks():
    port = process.free_port()
    assert process.port_is_free(port)
    assert not process.accepts_connections(port)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", port))
        listener.listen()
        assert not process.port_is_free(port)
        assert process.accepts_connections(port)
    assert process.port_is_free(port)


def test_start_liveness_and_stop_the_whole_group(start_server):
    port = process.free_port()
    proc, child, log = start_server(port)
    assert process.is_up(proc.pid, port)
    assert process.pid_alive(child)
    assert process.group_alive(proc.pid)
    assert "serving on" in log.read_text()

    assert process.stop_group(proc.pid, grace=5) is True

    assert not process.pid_alive(proc.pid)
    assert not process.pid_alive(child), "the server's child outlived the stop"
    assert not process.group_alive(proc.pid)
    assert not process.is_up(proc.pid, port)
    assert process.stop_group(proc.pid) is True  # stopping again is harmless


def test_port_reused_after_stop(start_server):
    """A stopped server leaves TIME_WAIT sockets on its port; the port must
    still count as free, so a restart keeps its port."""
    port = stable_free_port()  # a restart on an ephemeral port can race
    proc, _, _ = start_server(port)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
        client.sendall(b"GET / HTTP/1.0\r\n\r\n")
        reply = b""
        while chunk := client.recv(65536):  # until the server closes first:
            reply += chunk  # its side of the connection waits in TIME_WAIT
    assert reply.startswith(b"HTTP/1.0 200")
    process.stop_group(proc.pid, grace=5)

    with socket.socket() as plain, pytest.raises(OSError):
        plain.bind(("127.0.0.1", port))  # the fault: a bind without SO_REUSEADDR
    assert process.port_is_free(port)
    again, _, _ = start_server(port)
    assert process.is_up(again.pid, port)


def test_exit_while_starting_reports_code_and_log(tmp_path):
    log = tmp_path / "crash.log"
    cmd = [sys.executable, "-c", "print('boom: no config'); raise SystemExit(3)"]
    proc = process.start_process(cmd, log)
    with pytest.raises(process.ProcessStartError) as raised:
        process.wait_until_up(proc, process.free_port(), timeout=30, log=log)
    message = str(raised.value)
    assert "exited with code 3" in message
    assert "boom: no config" in message and str(log) in message


def test_timeout_stops_the_group_and_raises_the_callers_error(tmp_path):
    log = tmp_path / "slow.log"
    proc = process.start_process(
        [sys.executable, "-c", "import time; time.sleep(600)"], log
    )
    start = time.monotonic()
    with pytest.raises(LookupError, match="The slow server did not start within 1 s"):
        process.wait_until_up(
            proc, lambda: False, timeout=1, name="The slow server", error=LookupError
        )
    assert time.monotonic() - start < 15
    assert not process.group_alive(proc.pid)


def test_append_keeps_earlier_log_lines(tmp_path):
    log = tmp_path / "server.log"
    log.write_text("earlier run\n")
    proc = process.start_process(
        [sys.executable, "-c", "print('second run')"], log, append=True
    )
    proc.wait(timeout=30)
    text = log.read_text()
    assert text.startswith("earlier run\n") and "=== starting:" in text
    assert process.log_tail(log, 1) == "second run"
    assert not process.pid_alive(proc.pid)
