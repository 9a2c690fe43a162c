"""FiftyOne wrapper of the offline LiT model: image and prompt embeddings.

It subclasses FiftyOne's ``TorchImageModel`` so that FiftyOne's own batching,
data loaders and ``compute_similarity`` / ``compute_embeddings`` drive it the
way they drive the zoo's CLIP models, and adds ``PromptMixin`` so that a
similarity index built with it supports text queries (the App's search bar).
Load it by zoo name (see :mod:`plugin.models.zoo`), or directly::

    model = LitImageTextModel(LitImageTextModelConfig({}))
"""

from pathlib import Path

import fiftyone.core.models as fom
import fiftyone.utils.torch as fout
import numpy as np
import torch

from plugin.models import lit


def _to_pil(img):
    """FiftyOne may pass PIL images, HWC uint8 arrays or CHW tensors."""
    if isinstance(img, torch.Tensor):
        from torchvision.transforms.functional import to_pil_image

        t = img.detach().cpu()
        if t.ndim == 3 and t.shape[0] not in (1, 3, 4):
            t = t.permute(2, 0, 1)  # HWC -> CHW
        return to_pil_image(t)
    return img


def preprocess(img):
    """Module-level (picklable for data-loader workers) image transform."""
    return lit.preprocess_pil(_to_pil(img))


class LitImageTextModelConfig(fout.TorchImageModelConfig):
    """Config of :class:`LitImageTextModel`.

    Args:
        weights_path (None): the image tower's weights; a relative path is
            taken relative to ``plugin/models/weights/``. Default: the
            shipped ``lit_minilm_cifar10.pt``
        device (None): ``"cpu"``, ``"cuda"``...; default: CUDA if available
    """

    def __init__(self, d):
        d = dict(d)
        d.setdefault("as_feature_extractor", True)
        d.setdefault("ragged_batches", False)
        super().__init__(d)
        self.weights_path = self.parse_string(d, "weights_path", default=None)

    def resolved_weights_path(self):
        if not self.weights_path:
            return lit.DEFAULT_WEIGHTS
        path = Path(self.weights_path).expanduser()
        return path if path.is_absolute() else lit.DEFAULT_WEIGHTS.parent / path


class LitImageTextModel(fout.TorchImageModel, fom.PromptMixin):
    """Images and text in all-MiniLM-L6-v2's 384-d space (unit-norm)."""

    def __init__(self, config):
        super().__init__(config)
        self._text_tower = None

    def _load_model(self, config):
        return lit.load_image_tower(config.resolved_weights_path(), self._device)

    def _build_transforms(self, config):
        # fixed 32x32 output, so batches are never ragged
        return preprocess, False

    def _forward_pass(self, imgs):
        return self._model(imgs.float())

    @property
    def can_embed_prompts(self):
        return True

    def embed_prompt(self, prompt):
        """Embeds one text prompt -> a 384-d numpy vector."""
        return self.embed_prompts([prompt])[0]

    def embed_prompts(self, prompts):
        """Embeds text prompts -> ``num_prompts x 384`` numpy array."""
        if self._text_tower is None:
            device = "cuda" if self._using_gpu else "cpu"
            self._text_tower = lit.TextTower(device=device)
        return self._text_tower.encode(prompts).astype(np.float32)

    def embed_all(self, imgs):
        """Embeds images -> ``num_images x 384`` float32 numpy array."""
        return np.asarray(super().embed_all(imgs), dtype=np.float32)
