"""Panels: App UI over the core in ``plugin/``. List them here to register."""

from .ask import AskPanel, AskStream
from .lab import LabPanel

PANELS = [
    AskPanel,
    AskStream,
    LabPanel,
]
