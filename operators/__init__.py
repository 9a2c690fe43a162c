"""Operators: thin App adapters over the core in ``plugin/``.

Each module defines operators; list them here to register them.
"""

from .import_videos import ImportVideos
from .store import MilvusStoreStatus

OPERATORS = [
    MilvusStoreStatus,
    ImportVideos,
]
