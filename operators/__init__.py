"""Operators: thin App adapters over the core in ``plugin/``.

Each module defines operators; list them here to register them.
"""

from .ask import AskQuestion
from .curation import (
    ComputeFrameMap,
    FindDuplicateFrames,
    RepresentativeFrames,
    SelectShownFrames,
)
from .import_videos import ImportVideos
from .similarity import IndexFrames, SearchFrames, SyncFrameIndex
from .store import MilvusStoreStatus
from .transcripts import IndexTranscripts, SearchTranscript

OPERATORS = [
    MilvusStoreStatus,
    ImportVideos,
    IndexFrames,
    SyncFrameIndex,
    SearchFrames,
    IndexTranscripts,
    SearchTranscript,
    AskQuestion,
    ComputeFrameMap,
    FindDuplicateFrames,
    RepresentativeFrames,
    SelectShownFrames,
]
