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
from .import_videos import ImportStatus, ImportVideoBatch, ImportVideos
from .moments import DensifyMoments, OpenMoments
from .similarity import IndexFrames, SearchFrames, SyncFrameIndex
from .store import MilvusStoreStatus
from .transcripts import IndexTranscripts, SearchTranscript

OPERATORS = [
    MilvusStoreStatus,
    ImportVideos,
    ImportVideoBatch,
    ImportStatus,
    IndexFrames,
    SyncFrameIndex,
    SearchFrames,
    IndexTranscripts,
    SearchTranscript,
    AskQuestion,
    OpenMoments,
    DensifyMoments,
    ComputeFrameMap,
    FindDuplicateFrames,
    RepresentativeFrames,
    SelectShownFrames,
]
