"""Milvus: the URI resolver and the managed local store."""

from plugin.milvus.local_server import LocalMilvusServer, LocalStoreError
from plugin.milvus.resolver import (
    LITE_FILE,
    LOCAL,
    SERVER,
    ZILLIZ,
    MilvusConnection,
    MilvusUnreachableError,
    check_reachable,
    is_milvus_lite,
    redact_uri,
    resolve_milvus,
    use_for_brain,
)

__all__ = [
    "LITE_FILE",
    "LOCAL",
    "SERVER",
    "ZILLIZ",
    "LocalMilvusServer",
    "LocalStoreError",
    "MilvusConnection",
    "MilvusUnreachableError",
    "check_reachable",
    "is_milvus_lite",
    "redact_uri",
    "resolve_milvus",
    "use_for_brain",
]
