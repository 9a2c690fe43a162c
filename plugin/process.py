"""Local server processes: a free port, start, liveness, wait, stop.

One helper for every server we run on 127.0.0.1: the managed Milvus Lite
store (:mod:`plugin.milvus.local_server`) and the test fixtures' real Milvus
and vLLM servers. A server runs in its own session (so its own process
group): it outlives the process that started it, and stopping it stops its
children too (Milvus' etcd, vLLM's engine workers).

Standard library only; POSIX (process groups, ``/proc`` on Linux).
"""

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

HOST = "127.0.0.1"


class ProcessStartError(RuntimeError):
    """A server process exited or did not answer while starting."""


def port_is_free(port, host=HOST):
    """True if a server could listen on ``port`` now.

    Binds with ``SO_REUSEADDR``, as servers do: the TIME_WAIT sockets a
    stopped server leaves for a minute must not count as "in use", or every
    restart would move to a new port.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host=HOST):
    """A port nothing listens on (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def accepts_connections(port, host=HOST, timeout=0.5):
    """True if something accepts TCP connections on ``port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def pid_alive(pid):
    """True if process ``pid`` runs (a zombie does not; ours is reaped)."""
    if not pid or pid <= 0:
        return False
    _reap(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return _state(pid) not in ("Z", "X")


def is_up(pid, port, host=HOST):
    """Liveness of a server: its process runs and its port accepts."""
    return pid_alive(pid) and accepts_connections(port, host)


def group_alive(pgid):
    """True if any process of group ``pgid`` runs (zombies do not count:
    in a container, orphans may never be reaped)."""
    _reap(pgid)
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    if not Path("/proc").is_dir():
        return True
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat_fields(entry.name)
            if fields and fields[1] == str(pgid) and fields[0] not in ("Z", "X"):
                return True
    return False


def start_process(cmd, log_path, env=None, cwd=None, append=False):
    """Starts ``cmd`` in its own session, output to ``log_path``; the Popen.

    Args:
        cmd: the command, a list
        log_path: the log file (stdout and stderr)
        env (None): the environment (default: this process's)
        cwd (None): the working directory
        append (False): append to the log (with a header line) instead of
            starting it afresh
    """
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab" if append else "wb") as log:
        if append:
            log.write(f"\n=== starting: {' '.join(map(str, cmd))}\n".encode())
            log.flush()
        return subprocess.Popen(
            [str(part) for part in cmd],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=cwd,
            start_new_session=True,  # own process group: stop_group() ends all
        )


def wait_until_up(
    proc,
    ready,
    timeout,
    log=None,
    tail=None,
    name="The server",
    error=ProcessStartError,
    interval=0.2,
    log_lines=20,
):
    """Waits until ``ready``; on failure stops the group and raises ``error``.

    Args:
        proc: the server's ``subprocess.Popen``
        ready: a port (up once it accepts connections) or a callable
            returning True once the server is up
        timeout: seconds
        log (None): the log's path; its last lines are quoted in the error
        tail (None): a callable returning the log's last lines, when the
            plain last lines are not what to show
        name ("The server"): how the error names the server
        error (ProcessStartError): the exception class raised
        interval (0.2): seconds between checks
        log_lines (20): how many log lines the error quotes
    """
    check = ready if callable(ready) else (lambda: accepts_connections(ready))
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            problem = f"{name} exited with code {proc.returncode} while starting."
            break
        if check():
            return
        if time.monotonic() > deadline:
            problem = f"{name} did not start within {timeout:.0f} s."
            break
        time.sleep(interval)
    stop_group(proc.pid)
    raise error(f"{problem} {_describe_log(log, tail, log_lines)}")


def stop_group(pid, grace=10.0, kill_wait=5.0):
    """Stops the process group led by ``pid``: SIGTERM, then SIGKILL what is
    left after ``grace`` s. Returns True once no process of it runs."""
    alive = group_alive
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, kill_wait)):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return True
        except PermissionError:  # not a group we may signal: the process alone
            alive = pid_alive
            try:
                os.kill(pid, sig)
            except (ProcessLookupError, PermissionError):
                return not alive(pid)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not alive(pid):
                return True
            time.sleep(0.1)
    return not alive(pid)


def log_tail(path, lines=20):
    """The last ``lines`` lines of the file at ``path`` ("" if unreadable)."""
    try:
        text = Path(path).read_text(errors="replace")
    except (OSError, TypeError):
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _describe_log(log, tail, lines):
    if log is None and tail is None:
        return ""
    where = f" ({log})" if log is not None else ""
    text = tail() if tail is not None else log_tail(log, lines)
    return f"Last log lines{where}:\n{text}"


def _reap(pid):
    """Collects ``pid``'s exit status if it is our child, so it does not
    linger as a zombie."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except (ChildProcessError, OSError):
        pass


def _stat_fields(pid):
    """``[state, pgrp]`` of ``pid`` from ``/proc/<pid>/stat`` ([] if gone)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return []
    fields = text.rsplit(")", 1)[-1].split()  # the name may hold spaces
    return [fields[0], fields[2]] if len(fields) > 2 else []


def _state(pid):
    fields = _stat_fields(pid)
    return fields[0] if fields else None
