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
from .import_videos import ImportVideoBatch, ImportVideos
from .jobs import ImportStatus
from .lab import ImportJudgments, MarkRelevant
from .moments import DensifyMoments, OpenMoments, ShowMomentsView
from .screen_text import BuildIndexes, ReadScreenText
from .similarity import IndexFrameBatch, IndexFrames, SearchFrames, SyncFrameIndex
from .store import MilvusStoreStatus
from .transcripts import IndexTranscripts, SearchTranscript

OPERATORS = [
    MilvusStoreStatus,
    ImportVideos,
    ImportVideoBatch,
    ImportStatus,
    IndexFrames,
    IndexFrameBatch,
    SyncFrameIndex,
    SearchFrames,
    IndexTranscripts,
    SearchTranscript,
    AskQuestion,
    OpenMoments,
    DensifyMoments,
    ShowMomentsView,
    ComputeFrameMap,
    FindDuplicateFrames,
    RepresentativeFrames,
    SelectShownFrames,
    ReadScreenText,
    BuildIndexes,
    MarkRelevant,
    ImportJudgments,
]
