"""Makes ``samples/narrated_cifar10.mp4``: the demo's short narrated video.

Five scenes, one per CIFAR-10 class (test-split images, upscaled), each 5 s
long with a spoken sentence describing it (espeak-ng), so that 0.2 FPS
sampling gives exactly one frame per scene. A later text-to-image search
over these frames uses the classes. Run from the repo root:

    .venv/bin/python samples/make_sample_video.py [--cifar-dir DIR]
"""

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from PIL import Image  # noqa: E402

from tests.support.synth import Scene, make_narrated_video  # noqa: E402

SAMPLE_VIDEO = REPO / "samples" / "narrated_cifar10.mp4"
DEFAULT_CIFAR_DIR = REPO.parent / "shared" / "data" / "cifar10" / "test"
SCENE_SECONDS = 5.0

#: (CIFAR-10 class, test image file, narration), in video order
SCENES = [
    ("horse", "0003.jpg", "Here a brown horse stands in a green field."),
    ("automobile", "0005.jpg", "A small blue car drives along the road."),
    ("ship", "0005.jpg", "A large white ship sails on the open sea."),
    ("airplane", "0004.jpg", "A small yellow airplane sits on the grass."),
    ("cat", "0002.jpg", "A tabby cat sits and looks at the camera."),
]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cifar-dir", default=str(DEFAULT_CIFAR_DIR))
    parser.add_argument("--output", default=str(SAMPLE_VIDEO))
    args = parser.parse_args()
    scenes = [
        Scene(Image.open(Path(args.cifar_dir) / cls / name), text, SCENE_SECONDS)
        for cls, name, text in SCENES
    ]
    make_narrated_video(args.output, scenes, size=(288, 288), fps=25, crf=26)
    size_kb = Path(args.output).stat().st_size / 1024
    print(f"Wrote {args.output} ({len(scenes)} scenes, {size_kb:.0f} KB)")


if __name__ == "__main__":
    main()
