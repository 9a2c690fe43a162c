"""What every process running the workbench prepares, in one explicit call.

:func:`prepare_process` is called by the plugin's ``register()`` (so the App
server, which runs brain's search bar outside our code, is prepared too) and
by the Python entry points (``build_frame_index``, ``load_frame_index``,
``plugin.demo``). Importing ``plugin`` or any module under it changes
nothing in other libraries.
"""

import logging
import threading

logger = logging.getLogger(__name__)

_LOCK = threading.Lock()
_libraries_ready = False
_brain_settings = None  # the Settings brain was last pointed at


def prepare_process(settings=None):
    """Prepares this process; idempotent and cheap on repeat calls.

    1. applies our fixes to fiftyone-brain's Milvus backend
       (:mod:`plugin.retrieval.brain_fixes`)
    2. registers our zoo models, which brain re-creates by name when it
       loads an index (:func:`plugin.models.zoo.register_zoo_models`)
    3. points brain at the Milvus store of ``settings``, so indexes loaded
       by brain itself (the App's search bar) reach it

    Step 3 never raises: a store that cannot be reached is logged as a
    warning (the App must still load the plugin); entry points that need
    the store resolve it themselves and raise there.

    Args:
        settings (None): a :class:`~plugin.settings.Settings`; None loads
            them from the environment
    """
    _prepare_libraries()
    _point_brain_at_store(settings)


def _prepare_libraries():
    global _libraries_ready
    if _libraries_ready:
        return
    from plugin.models.zoo import register_zoo_models
    from plugin.retrieval import brain_fixes

    with _LOCK:
        brain_fixes.apply()
        register_zoo_models()
        _libraries_ready = True


def _point_brain_at_store(settings):
    global _brain_settings
    from plugin.errors import scrub
    from plugin.milvus import use_for_brain
    from plugin.settings import Settings

    settings = Settings.coerce(settings)
    if settings == _brain_settings:
        return
    try:
        use_for_brain(settings.milvus())
    except Exception as e:  # never block a process from loading the plugin
        reason = scrub(e, settings.secret_values())
        logger.warning("Video RAG: Milvus store not available: %s", reason)
        return
    _brain_settings = settings
