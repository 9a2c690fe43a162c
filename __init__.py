"""FiftyOne plugin entry point: registers the workbench's operators and panels.

The core lives in ``plugin/`` and is imported absolutely (``import plugin``)
by the adapters, by notebooks and by FiftyOne's model zoo (our zoo models name
their classes as ``plugin.models...``). FiftyOne loads this file under a
synthetic module name without putting the plugin dir on ``sys.path``, so we
add it here.
"""

import logging
import os
import sys

_PLUGIN_DIR = os.path.dirname(os.path.abspath(__file__))
if _PLUGIN_DIR not in sys.path:
    sys.path.insert(0, _PLUGIN_DIR)

import plugin.retrieval  # noqa: E402,F401  (applies fixes to brain's Milvus backend)

from .operators import OPERATORS  # noqa: E402
from .panels import PANELS  # noqa: E402

logger = logging.getLogger(__name__)


def _prepare_process():
    """What every process running the plugin (the App server above all)
    needs: our zoo models loadable by name, and fiftyone-brain pointed at
    the workbench's Milvus store, so the App's search bar can load indexes."""
    from plugin.milvus import resolve_milvus, use_for_brain
    from plugin.models.zoo import register_zoo_models

    register_zoo_models()
    try:
        use_for_brain(resolve_milvus())
    except Exception as e:  # never block the App from loading the plugin
        logger.warning("Video RAG: Milvus store not available: %s", e)


def register(p):
    """Called by FiftyOne when it loads the plugin."""
    _prepare_process()
    for cls in OPERATORS + PANELS:
        p.register(cls)
