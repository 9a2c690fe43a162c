"""FiftyOne plugin entry point: registers the workbench's operators and panels.

The core lives in ``plugin/`` and is imported absolutely (``import plugin``)
by the adapters, by notebooks and by FiftyOne's model zoo (our zoo models name
their classes as ``plugin.models...``). FiftyOne loads this file under a
synthetic module name without putting the plugin dir on ``sys.path``, so we
add it here.

FiftyOne loads every plugin into ONE process: if another plugin (or package)
is already imported as ``plugin``, or wins the ``sys.path`` lookup, ours
would be shadowed silently. :func:`_import_core` makes that loud instead: an
``ImportError`` naming both directories.
"""

import importlib
import os
import sys

_PLUGIN_DIR = os.path.dirname(os.path.abspath(__file__))
_CORE_DIR = os.path.join(_PLUGIN_DIR, "plugin")


def _module_dirs(module):
    """The real directories a module was loaded from (a namespace package
    has no ``__file__``, only ``__path__``)."""
    if getattr(module, "__file__", None):
        return [os.path.realpath(os.path.dirname(module.__file__))]
    return [os.path.realpath(p) for p in getattr(module, "__path__", [])]


def _import_core():
    """Imports our core as ``plugin``; raises ``ImportError`` if the name
    ``plugin`` resolves to any other directory."""
    if _PLUGIN_DIR not in sys.path:
        sys.path.insert(0, _PLUGIN_DIR)
    core = importlib.import_module("plugin")  # may return one imported earlier
    found = _module_dirs(core)
    ours = os.path.realpath(_CORE_DIR)
    if found == [ours]:
        return core
    what = (
        "another copy of this workbench"
        if getattr(core, "__vrag__", False)
        else "another plugin or package"
    )
    raise ImportError(
        f"Video RAG plugin: the top-level name 'plugin' is taken by {what} at "
        f"{', '.join(found) or repr(core)}; this plugin's core is at {ours}. "
        "FiftyOne loads all plugins into one process, so only one of them can "
        "be imported as 'plugin'. Remove or rename the other one (or take it "
        "out of sys.path / FIFTYONE_PLUGINS_DIR), then restart the process.",
        name="plugin",
        path=ours,
    )


_import_core()

from plugin.runtime import prepare_process  # noqa: E402

if __package__:  # loaded by FiftyOne (or as a package named after the folder)
    from .operators import OPERATORS
    from .panels import PANELS
else:  # loaded as a plain module, e.g. by pytest from a folder whose name is
    # not an identifier (a clone in "fiftyone-video-rag/"): the adapters are
    # importable by name, since this folder is on sys.path
    from operators import OPERATORS
    from panels import PANELS


def register(p):
    """Called by FiftyOne when it loads the plugin."""
    prepare_process()  # never raises for the store: the App must load us
    for cls in OPERATORS + PANELS:
        p.register(cls)
