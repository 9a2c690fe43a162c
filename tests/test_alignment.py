"""The one rule linking transcript segments and frames (plugin/video/alignment.py).

Pure tests of the rule, then the real thing: a generated 30-s narrated video
with short pauses between its sentences, imported at 1 FPS by the importer
(faster-whisper tiny.en, offline), read back by the search-side mapping.
"""

import random
import re
import uuid
from difflib import SequenceMatcher

import fiftyone as fo
import pytest
from fiftyone import ViewField as F
from support.synth import Scene, make_narrated_video, solid_image, speech_seconds

from plugin.retrieval import transcript_index
from plugin.retrieval.hits import TextHit
from plugin.video import alignment
from plugin.video.alignment import (
    GRAZE_S,
    MAX_PAUSE_S,
    frame_texts,
    frames_for_segment,
    segment_frame_ids,
    segments_by_frame,
    segments_for_frame,
    text_for_frame,
)
from plugin.video.importer import import_videos
from plugin.video.transcripts import load_transcript_segments, load_video_record

# The module docstring's example
A = {"start": 0.0, "end": 3.9, "text": "apple"}
B = {"start": 4.7, "end": 8.3, "text": "frog"}  # after a 0.8 s breath
C = {"start": 10.9, "end": 12.0, "text": "dog"}  # after 2.6 s of silence
EXAMPLE = [A, B, C]

#: (narration, a word tiny.en writes reliably): two sentences per scene,
#: the word in both, so any frame of the scene may carry either sentence
NARRATION = [
    ("A red apple sits on the table. The apple is sweet and round.", "apple"),
    ("A green frog jumps into the pond. The frog likes the water.", "frog"),
    ("A big brown dog runs in the park. The dog chases a ball.", "dog"),
    ("A small boat sails on the sea. The boat has a white sail.", "boat"),
    ("A yellow duck swims in the lake. The duck is quick and small.", "duck"),
    ("A black cat sleeps on the bed. The cat is soft and warm.", "cat"),
    ("A white horse walks on the farm. The horse eats the grass.", "horse"),
]
SCENE_PAUSE_S = 0.3  # silence after each scene's narration: a short pause


def _frames(times, segments, duration=None, window=None):
    return [
        frames_for_segment(times, segments, j, duration, window)
        for j in range(len(segments))
    ]


def test_example_at_one_fps_fills_the_breath_not_the_silence():
    times = [float(t) for t in range(13)]
    carried = segments_by_frame(times, EXAMPLE, duration=13.0)
    assert carried[4] == [0, 1]  # in the breath: both sides
    assert carried[3] == [0] and carried[5] == [1] and carried[8] == [1]
    assert carried[9] == carried[10] == []  # silence
    assert carried[11] == [2]
    assert carried[12] == [2]  # a short pause before the end of the video
    assert text_for_frame(times, EXAMPLE, 4, 13.0) == "apple frog"


def test_example_at_low_fps_a_grazing_sentence_is_not_duplicated():
    times = [0.0, 5.0, 10.0]
    assert _frames(times, EXAMPLE, duration=15.0) == [[0], [1], [2]]
    # B grazes frame 0's window [0, 5) by 0.3 s; A ends before frame 1
    assert frame_texts(times, EXAMPLE, 15.0) == ["apple", "frog", "dog"]
    # A loose end 0.1 s past the next frame, then silence: still one frame
    loose = [{"start": 1.0, "end": 5.1, "text": "x"}]
    assert frames_for_segment(times, loose, 0, 15.0) == [0]


def test_pause_length_decides_between_breath_and_silence():
    times = [0.0, 1.0, 2.0, 3.0, 4.0]
    for gap, expected in ((MAX_PAUSE_S - 0.1, [0, 1]), (MAX_PAUSE_S + 0.1, [])):
        first = {"start": 0.0, "end": 1.8, "text": "one"}
        second = {"start": 1.8 + gap, "end": 4.0, "text": "two"}
        # frame 2 lies in the pause; its window [2, 3) is mostly pause too
        carried = segments_for_frame(times, [first, second], 2, duration=4.0)
        assert carried == expected, gap


def test_centred_window_and_the_nearest_frame_for_an_orphan():
    times = [0.0, 5.0, 10.0]
    isolated = [{"start": 2.5, "end": 3.5, "text": "x"}]
    # frame 1's window [4.5, 5.5) misses it, but it is the nearest frame
    assert frames_for_segment(times, isolated, 0, 15.0, window=1.0) == [1]
    assert frames_for_segment(times, isolated, 0, 15.0) == [0]  # intervals
    assert frames_for_segment([], isolated, 0) == []
    assert segments_by_frame(times, []) == [[], [], []]


def test_both_directions_agree_and_continuous_speech_leaves_no_frame_empty():
    rng = random.Random(7)
    for _ in range(200):
        segments, t = [], rng.uniform(0, 2)
        for _ in range(rng.randint(1, 8)):
            start = t + rng.uniform(0.05, MAX_PAUSE_S - 0.05)
            t = start + rng.uniform(0.2, 5.0)
            segments.append({"start": start, "end": t, "text": f"s{len(segments)}"})
        duration = t + rng.uniform(0, 3)
        fps = rng.choice([0.2, 0.5, 1.0, 2.0, 5.0])
        times = [k / fps for k in range(int(duration * fps) + 1)]
        window = rng.choice([None, None, 0.5, 3.0])
        by_segment = _frames(times, segments, duration, window)
        by_frame = segments_by_frame(times, segments, duration, window)
        for i in range(len(times)):
            assert by_frame[i] == [j for j, f in enumerate(by_segment) if i in f]
        for j, found in enumerate(by_segment):
            assert found and found == _brute_force(times, segments, j, duration, window)
        speech = (segments[0]["start"] + GRAZE_S, segments[-1]["end"] - GRAZE_S)
        for i, time in enumerate(times):  # inside continuous speech
            if speech[0] <= time <= speech[1]:
                assert by_frame[i], (time, segments, window)


def _brute_force(times, segments, j, duration, window):
    """The rule checked on every frame (frames_for_segment looks at a few)."""
    low, high = alignment._reach(segments, j, duration)
    start, end = segments[j]["start"], segments[j]["end"]
    return [
        i
        for i, time in enumerate(times)
        if low <= time <= high
        or alignment._overlaps(
            start, end, *alignment.frame_window(times, i, duration, window)
        )
    ] or [alignment._nearest(times, start, end)]


# --- The real importer on a narrated video with short pauses ----------------


@pytest.fixture(scope="module")
def narrated(tmp_path_factory):
    """``(path, scene start times, scene durations)`` of a ~30-s video."""
    scenes = [
        Scene(solid_image((30 * k, 90, 200 - 25 * k)), text, _scene_length(text))
        for k, (text, _) in enumerate(NARRATION)
    ]
    path = tmp_path_factory.mktemp("alignment") / "narrated.mp4"
    starts = make_narrated_video(path, scenes, size=(96, 64))
    return path, starts, [scene.duration for scene in scenes]


def _scene_length(text):
    return round(speech_seconds(text) + SCENE_PAUSE_S, 1)


@pytest.fixture(scope="module")
def imported(narrated):
    """The video imported at 1 FPS, and at 0.2 FPS with a centred window."""
    datasets = {}
    for key, options in {
        "1fps": {"fps": 1.0},
        "window": {"fps": 0.2, "transcript_window": 2.0},
    }.items():
        dataset = fo.Dataset(f"vrag-align-{key}-{uuid.uuid4().hex[:8]}")
        report = import_videos([narrated[0]], dataset=dataset, **options)
        assert not report.failed, report.summary_lines()
        assert report.videos[0].transcript_status == "ok", report.summary_lines()
        datasets[key] = dataset
    yield datasets
    for dataset in datasets.values():
        dataset.delete()


def test_every_frame_inside_a_narrated_scene_carries_its_words(narrated, imported):
    _, starts, durations = narrated
    dataset = imported["1fps"]
    frames = dataset.sort_by("timestamp")
    times, texts = frames.values("timestamp"), frames.values("transcript")
    assert len(times) == 31 and 29.5 < sum(durations) < 31.0
    segments = load_transcript_segments(dataset)
    in_pauses = [t for t in times if _in_pause(t, segments)]
    assert len(in_pauses) >= 3, (in_pauses, segments)  # the case of issue 11
    for time, text in zip(times, texts):
        scene = next(
            k for k, (s, d) in enumerate(zip(starts, durations)) if s <= time < s + d
        )
        word = NARRATION[scene][1]
        assert _has_word(text, word), f"frame at {time} s (scene {scene}): {text!r}"


def _in_pause(time, segments):
    return any(
        a["end"] < time < b["start"] and b["start"] - a["end"] < MAX_PAUSE_S
        for a, b in zip(segments, segments[1:])
    )


def _has_word(text, word):
    """``word`` among ``text``'s words, allowing Whisper a plural or a typo."""
    words = re.findall(r"[a-z']+", text.lower())
    return any(SequenceMatcher(None, word, w).ratio() >= 0.75 for w in words)


@pytest.mark.parametrize("key", ["1fps", "window"])
def test_search_maps_each_segment_to_the_frames_that_carry_it(imported, key):
    dataset = imported[key]
    record = load_video_record(dataset, dataset.first().video_id)
    assert record["transcript_window"] == (2.0 if key == "window" else None)
    segments = load_transcript_segments(dataset)
    hits = [
        TextHit(s["segment_id"], 1.0, n, s["text"], s["video_id"], s["start"], s["end"])
        for n, s in enumerate(segments)
    ]
    transcript_index._attach_frames(dataset, hits)  # what search runs on its hits
    ids, texts = dataset.values(["id", "transcript"])
    transcripts = dict(zip(ids, texts))
    for hit in hits:
        assert hit.frame_ids, hit
        carrying = [i for i in ids if hit.text.strip() in transcripts[i]]
        assert sorted(hit.frame_ids) == sorted(carrying), hit.text
        assert list(hit.frames) == hit.frame_ids  # their fields came along
        for frame_id, frame in hit.frames.items():
            sample = dataset[frame_id]
            assert (frame.filepath, frame.timestamp) == (
                sample.filepath,
                sample.timestamp,
            )
            assert frame.transcript == sample.transcript
    spans = [(s["segment_id"], s["video_id"], s["start"], s["end"]) for s in segments]
    assert segment_frame_ids(dataset, spans) == {
        h.segment_id: h.frame_ids for h in hits
    }
    # A view: the same rule (on all the video's frames), its own frames only
    view = dataset.match(F("timestamp") < 15)
    in_view = set(view.values("id"))
    assert segment_frame_ids(view, spans) == {
        h.segment_id: [i for i in h.frame_ids if i in in_view] for h in hits
    }
