"""Operators: thin App adapters over the core in ``plugin/``.

Each module defines operators; list them here to register them.
"""

from .import_videos import ImportVideos
from .similarity import IndexFrames, SearchFrames, SyncFrameIndex
from .store import MilvusStoreStatus

OPERATORS = [
    MilvusStoreStatus,
    ImportVideos,
    IndexFrames,
    SyncFrameIndex,
    SearchFrames,
]
