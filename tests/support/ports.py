"""Ports for servers that tests stop and start again on the same port."""

import random

from plugin import process

# Linux hands out 32768-60999 as the local ends of outgoing connections: an
# ephemeral port freed by a stopped server can be taken by any process's
# connection before the restart (seen on a busy machine: the restarted
# server never answered there). Below that range only listeners bind.
_LOW, _HIGH = 20000, 32000


def stable_free_port():
    """A free port outside the ephemeral range."""
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(_LOW, _HIGH)
        if process.port_is_free(port) and not process.accepts_connections(port):
            return port
    raise AssertionError(f"no free port in {_LOW}-{_HIGH}")
