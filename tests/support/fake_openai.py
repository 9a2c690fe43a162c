"""Fake OpenAI-compatible HTTP endpoints, run in a thread of the test process.

A test writes a :class:`JSONHandler` subclass that speaks the part of the
protocol it needs (``/v1/models``, ``/v1/chat/completions``,
``/v1/embeddings``...), misbehaving where it wants, and serves it with
:func:`serving`::

    class Handler(JSONHandler):
        def do_POST(self):
            self.send_json(200, {"echo": self.read_json()})

    with serving(Handler, requests=[]) as (server, base_url):
        ...  # base_url: "http://127.0.0.1:<port>/v1"
"""

import contextlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class JSONHandler(BaseHTTPRequestHandler):
    """A quiet request handler that reads and writes JSON bodies."""

    def log_message(self, *args):  # quiet
        pass

    def read_json(self):
        """The request's JSON body."""
        return json.loads(self.rfile.read(int(self.headers["Content-Length"])))

    def send_json(self, status, payload):
        """A complete JSON response (with its length: keep-alive works)."""
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@contextlib.contextmanager
def serving(handler, **state):
    """Serves ``handler`` on a free local port; yields ``(server, base_url)``.

    ``state``: attributes set on the server, which the handler reads (and
    may change) as ``self.server.<name>``.
    """
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    for name, value in state.items():
        setattr(server, name, value)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server, f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()
