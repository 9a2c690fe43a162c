"""``python -m plugin.milvus {status,start,stop,logs}``: the local store;
``doctor`` and ``migrate``: see :mod:`plugin.milvus.doctor`, :mod:`plugin.milvus.migrate`."""

import argparse
import json
import sys

from plugin.milvus.local_server import LocalMilvusServer


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] in (["doctor"], ["migrate"]):  # plugin/milvus/{doctor,migrate}.py
        import importlib

        return importlib.import_module(f"plugin.milvus.{argv[0]}").main(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m plugin.milvus")
    parser.add_argument("command", choices=["status", "start", "stop", "logs"])
    parser.add_argument("--lines", type=int, default=50, help="for logs")
    args = parser.parse_args(argv)
    server = LocalMilvusServer()
    if args.command == "start":
        print(server.ensure_running())
    elif args.command == "stop":
        print("stopped" if server.stop() else "not running")
    elif args.command == "logs":
        print(server.logs(args.lines))
    else:
        print(json.dumps(server.status(), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
