"""``make demo``: set up the services and run the main job on embedded defaults.

Steps, each printed as it runs: services (MongoDB, the local Milvus store),
then the main job (import the sample video, index, search, ask).
"""

import importlib.metadata
import sys
import time

PACKAGES = ["fiftyone", "fiftyone-brain", "pymilvus", "milvus-lite", "torch"]


def _step(title):
    print(f"\n==> {title}", flush=True)


def check_services():
    """Starts/contacts MongoDB and the local Milvus store; prints versions."""
    import fiftyone as fo

    from plugin.milvus import resolve_milvus

    _step("Services")
    for name in PACKAGES:
        print(f"  {name:<16} {importlib.metadata.version(name)}")
    start = time.monotonic()
    fo.list_datasets()  # starts the embedded MongoDB if needed
    print(f"  MongoDB          up ({fo.config.database_uri or 'embedded'})")
    connection = resolve_milvus()
    names = connection.client().list_collections()
    print(f"  Milvus           up: {connection.kind} store at {connection.display_uri}")
    print(f"                   {len(names)} collection(s)")
    print(f"  ready in {time.monotonic() - start:.1f} s")
    return connection


def main():
    check_services()
    print("\nDemo finished.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
