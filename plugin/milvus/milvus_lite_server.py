"""Runs Milvus Lite's gRPC server with keepalive settings pymilvus needs.

``python milvus_lite_server.py --data-dir DIR --host H --port P``

Why not ``python -m milvus_lite server``: its gRPC server keeps gRPC's
default ping policy, while pymilvus pings every 10 s even when idle; after a
few idle pings the server answers GOAWAY "too many pings" and the client's
connection is dead (seen in the App and in long test sessions). We start the
same server with a policy that accepts those pings. Runs by file path, with
no import of the workbench (the child needs nothing but milvus_lite).
"""

import argparse

import grpc
from milvus_lite.adapter.grpc import server as lite_server

KEEPALIVE_OPTIONS = [
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", 5000),
    ("grpc.http2.max_ping_strikes", 0),  # 0: never GOAWAY for pings
]

_grpc_server = grpc.server


def _server_with_keepalive(executor, options=None, **kwargs):
    options = list(options or []) + KEEPALIVE_OPTIONS
    return _grpc_server(executor, options=options, **kwargs)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    grpc.server = _server_with_keepalive  # this process is only the server
    lite_server.run_server(data_dir=args.data_dir, host=args.host, port=args.port)


if __name__ == "__main__":
    main()
