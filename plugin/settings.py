"""Where settings come from, and where the workbench keeps its files.

Settings are looked up in FiftyOne plugin secrets (``ctx.secrets`` in the App)
first, then the environment. Secret values are only ever returned to callers,
never logged or stored.
"""

import os
from pathlib import Path

#: Names of the plugin's settings (also declared as secrets in fiftyone.yml)
MILVUS_URI = "VRAG_MILVUS_URI"
MILVUS_TOKEN = "VRAG_MILVUS_TOKEN"
MILVUS_USER = "VRAG_MILVUS_USER"
MILVUS_PASSWORD = "VRAG_MILVUS_PASSWORD"
VLLM_BASE_URL = "VRAG_VLLM_BASE_URL"
VLLM_API_KEY = "VRAG_VLLM_API_KEY"
VLLM_MODEL = "VRAG_VLLM_MODEL"


def get_setting(name, secrets=None, default=None):
    """Returns the value of setting ``name``: plugin secrets, then environment.

    Args:
        name: the setting's name, e.g. ``VRAG_MILVUS_URI``
        secrets (None): a mapping of plugin secrets, e.g. ``ctx.secrets``
        default (None): the value when the setting is unset or empty
    """
    value = None
    if secrets is not None:
        try:
            value = secrets.get(name)
        except Exception:  # ctx.secrets may raise for undeclared keys
            value = None
    if not value:
        value = os.environ.get(name)
    return value or default


def workbench_home():
    """The folder for the workbench's own files (local Milvus store, frames).

    ``$VRAG_HOME`` if set, else ``~/.fiftyone/video-rag``.
    """
    home = os.environ.get("VRAG_HOME") or os.path.join(
        Path.home(), ".fiftyone", "video-rag"
    )
    return Path(home).expanduser().resolve()
