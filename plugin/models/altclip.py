"""AltCLIP (``BAAI/AltCLIP``) through FiftyOne's zero-shot transformer wrapper.

Why this subclass: with transformers 5.x, AltCLIP's ``get_text_features``
returns a ``BaseModelOutputWithPoolingAndProjection`` (projected features in
``pooler_output``), which FiftyOne 1.22's wrapper rejects, so text prompts
(the App's search bar) fail. We accept any output with a ``pooler_output``.
"""

import torch
from fiftyone.utils.transformers import (
    FiftyOneZeroShotTransformerForImageClassification,
    FiftyOneZeroShotTransformerForImageClassificationConfig,
)


class AltCLIPConfig(FiftyOneZeroShotTransformerForImageClassificationConfig):
    """Config of :class:`AltCLIP`; ``name_or_path`` defaults to BAAI/AltCLIP."""

    def __init__(self, d):
        d = dict(d)
        d.setdefault("name_or_path", "BAAI/AltCLIP")
        super().__init__(d)


class AltCLIP(FiftyOneZeroShotTransformerForImageClassification):
    """FiftyOne's zero-shot transformer, with AltCLIP-compatible prompts."""

    def _embed_prompts(self, prompts):
        inputs = self.transforms.processor(text=prompts, **self.transforms.kwargs)
        with torch.no_grad():
            features = self._model.base_model.get_text_features(
                **inputs.to(self._device)
            )
        if isinstance(features, torch.Tensor):
            return features
        pooled = getattr(features, "pooler_output", None)
        if pooled is None:
            raise ValueError(
                f"get_text_features() returned {type(features).__name__} "
                "without a pooler_output"
            )
        return pooled
