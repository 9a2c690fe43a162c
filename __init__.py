"""FiftyOne plugin entry point: registers the workbench's operators and panels.

The core lives in ``plugin/`` and is imported absolutely (``import plugin``)
by the adapters, by notebooks and by FiftyOne's model zoo (our zoo models name
their classes as ``plugin.models...``). FiftyOne loads this file under a
synthetic module name without putting the plugin dir on ``sys.path``, so we
add it here.
"""

import os
import sys

_PLUGIN_DIR = os.path.dirname(os.path.abspath(__file__))
if _PLUGIN_DIR not in sys.path:
    sys.path.insert(0, _PLUGIN_DIR)

import plugin.retrieval  # noqa: E402,F401  (applies fixes to brain's Milvus backend)

from .operators import OPERATORS  # noqa: E402
from .panels import PANELS  # noqa: E402


def register(p):
    """Called by FiftyOne when it loads the plugin."""
    for cls in OPERATORS + PANELS:
        p.register(cls)
