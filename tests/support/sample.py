"""The narrated sample video (``plugin.demo.SAMPLE_VIDEO``) in a fresh dataset.

samples/narrated_cifar10.mp4: horse, car, ship, airplane and cat scenes of
5 s each, one narrated sentence a scene; imported at the default 0.2 FPS it
gives one frame a scene, and Whisper tiny.en one transcript segment a scene.
"""

import contextlib
import uuid

import fiftyone as fo

from plugin.demo import SAMPLE_VIDEO
from plugin.video.importer import import_videos
from plugin.video.transcripts import load_transcript_segments

#: (query, scene number): paraphrases of the narration, not its words
SCENE_QUERIES = [
    ("a horse standing on grass", 0),
    ("a car driving down a street", 1),
    ("a boat sailing on the ocean", 2),
    ("a plane parked on a lawn", 3),
    ("a kitten staring at the camera", 4),
]


@contextlib.contextmanager
def imported_sample(prefix):
    """Imports the sample video into a new dataset named ``<prefix>-<random>``
    (deleted after); yields ``(dataset, segments, frame_at)``: its transcript
    segments (one a scene) and ``{second: frame id}``."""
    dataset = fo.Dataset(f"{prefix}-{uuid.uuid4().hex[:8]}")
    try:
        report = import_videos([str(SAMPLE_VIDEO)], dataset=dataset)
        assert not report.failed, report.summary_lines()
        segments = load_transcript_segments(dataset)
        assert len(segments) == 5, segments  # one sentence per scene
        ids, times = dataset.values(["id", "timestamp"])
        yield dataset, segments, {round(t): i for i, t in zip(ids, times)}
    finally:
        dataset.delete()
