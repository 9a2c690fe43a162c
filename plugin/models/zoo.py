"""Makes the workbench's own models loadable by FiftyOne zoo name.

fiftyone-brain stores a similarity index's model by NAME only when
``compute_similarity(model=<str>)`` gets a zoo name, and later re-creates it
with ``foz.load_zoo_model(name)`` (the App's text search, a new Python
session). So our offline model must be a zoo model, not just an instance.

FiftyOne merges extra manifests listed in ``fo.config.model_zoo_manifest_paths``
(env ``FIFTYONE_MODEL_ZOO_MANIFEST_PATHS``, ``:``-separated). Our manifest's
entries have no download manager, so loading them never touches the network:
their config points at weights shipped in ``plugin/models/weights/``.

A process calls :func:`register_zoo_models` once (the plugin's ``__init__.py``
and ``plugin.demo`` should). It also exports the manifest path and the repo
root (``PYTHONPATH``, so ``plugin.models...`` imports) to the environment, so
child processes started afterwards (the App server) can load the model too.
"""

import json
import os
from pathlib import Path

MANIFEST_PATH = Path(__file__).resolve().with_name("zoo_manifest.json")
_REPO_ROOT = str(MANIFEST_PATH.parents[2])
_ENV_VAR = "FIFTYONE_MODEL_ZOO_MANIFEST_PATHS"


def zoo_model_names():
    """Names of the zoo models our manifest declares."""
    manifest = json.loads(MANIFEST_PATH.read_text())
    return [entry["base_name"] for entry in manifest["models"]]


def _append_env_path(var, path, sep=os.pathsep):
    paths = [p for p in os.environ.get(var, "").split(sep) if p]
    if path not in paths:
        os.environ[var] = sep.join(paths + [path])


def register_zoo_models():
    """Adds our manifest to FiftyOne's model zoo, in-process. Idempotent.

    Returns the names it makes loadable with ``foz.load_zoo_model(name)``.
    """
    import fiftyone as fo

    path = str(MANIFEST_PATH)
    current = list(fo.config.model_zoo_manifest_paths or [])
    if path not in current:
        fo.config.model_zoo_manifest_paths = current + [path]
        _drop_cached_manifest()
    _append_env_path(_ENV_VAR, path, sep=":")  # FiftyOne splits on ":"
    _append_env_path("PYTHONPATH", _REPO_ROOT)
    return zoo_model_names()


def _drop_cached_manifest():
    """FiftyOne may memoise the merged manifest; make it re-read ours."""
    import fiftyone.zoo.models as fozm

    invalidate = getattr(fozm, "_invalidate_zoo_models_manifest", None)
    if invalidate is not None:
        invalidate()
