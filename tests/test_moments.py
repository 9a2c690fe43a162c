"""Moments: videos as video samples, clips of hits and citations, answers as
labels, densify, and videos the browser cannot play.

Real generated videos (espeak-ng narration), real PyAV, faster-whisper,
FiftyOne and the managed Milvus store; the frame index uses the offline LiT
model on CIFAR-10 images, so "a photo of a horse" finds a horse.
"""

import os
from fractions import Fraction
from pathlib import Path

import av
import fiftyone as fo
import numpy as np
import pytest
from fiftyone.operators.executor import ExecutionContext, Executor
from PIL import Image
from support.synth import Scene, make_narrated_video, solid_image

from operators.moments import OpenMoments, ShowMomentsView
from plugin.answer.ask import Answer
from plugin.answer.citations import Citation
from plugin.answer.evidence import Evidence
from plugin.answer.labels import save_answer_labels
from plugin.models.image_text import OFFLINE_MODEL
from plugin.retrieval.frame_index import build_frame_index, index_ids, sync_frame_index
from plugin.retrieval.frame_search import search_frames
from plugin.retrieval.hits import FrameHit, FusedHit, TextHit, read_frames
from plugin.video import alignment, playable, videos
from plugin.video.densify import densify_around
from plugin.video.importer import delete_video, import_videos
from plugin.video.moments import (
    clip_spans,
    clips_view,
    moments_from_answer,
    moments_from_frames,
    moments_from_hits,
)
from plugin.video.sampling import probe_video
from plugin.video.transcripts import load_video_record

CIFAR = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10" / "test"
NARRATION = [
    "Here a red apple lies on the kitchen table.",
    "Now a green frog jumps into the pond.",
    "",  # a silent scene: its frame gets the +-5 s moment
]
SCENE_S = 5.0
NO_TRANSCRIPT = {"transcribe": False}


def _cleanup(name):
    for each in (name, f"{name}{videos.VIDEOS_SUFFIX}"):
        if fo.dataset_exists(each):
            fo.delete_dataset(each)


@pytest.fixture
def names(dataset_name):
    """A frames dataset name; it and its video dataset are deleted after."""
    yield dataset_name
    _cleanup(dataset_name)


@pytest.fixture(scope="module")
def clips_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("moments")


@pytest.fixture(scope="module")
def narrated(clips_dir):
    """A 15-s narrated video imported at 0.2 FPS with tiny.en (shared)."""
    colors = [(200, 30, 30), (30, 160, 60), (90, 90, 90)]
    scenes = [
        Scene(solid_image(c), text, SCENE_S)
        for c, text in zip(colors, NARRATION, strict=True)
    ]
    path = clips_dir / "narrated.mp4"
    make_narrated_video(path, scenes, size=(160, 120))
    name = "vrag-test-moments-narrated"
    _cleanup(name)
    report = import_videos([path], dataset=name, frames_dir=str(clips_dir / "f"))
    assert [v.status for v in report.videos] == ["imported"], report.summary_lines()
    yield fo.load_dataset(name), report.videos[0].video_id
    _cleanup(name)


def _video_sample(dataset, video_id):
    return videos.video_samples(dataset, [video_id])[video_id]


def test_transcript_detections_equal_the_stored_segments(narrated):
    dataset, video_id = narrated
    segments = load_video_record(dataset, video_id)["segments"]
    sample = _video_sample(dataset, video_id)
    detections = sample.transcript.detections
    assert len(segments) >= 2
    assert [(d.start, d.end, d.label) for d in detections] == [
        (s["start"], s["end"], s["text"].strip()) for s in segments
    ]
    for detection in detections:  # the player's timeline: frames of the span
        start, end = videos.support_seconds(detection.support, sample.metadata)
        assert start <= detection.start < start + 1 / 25
        assert end - 1 / 25 < detection.end <= end + 1e-9
    assert sample.metadata.duration == pytest.approx(15.0, abs=0.1)
    assert sample.metadata.frame_rate == 25 and sample.playback == "original"
    assert sample.filepath == sample.video_path  # H.264: plays as is


def test_frames_and_video_sample_link_both_ways(narrated):
    dataset, video_id = narrated
    sample = _video_sample(dataset, video_id)
    frames = dataset.match({"video_id": video_id}).sort_by("timestamp")
    assert sample.frame_ids == frames.values("id")
    assert set(frames.values("video_sample_id")) == {sample.id}
    video_ds = videos.videos_dataset(dataset)
    assert video_ds.media_type == "video" and video_ds.persistent
    assert videos.frames_dataset(video_ds).name == dataset.name
    assert video_ds[sample.id].frames_dataset == dataset.name


def test_reimport_is_idempotent_for_frames_and_video_samples(narrated):
    dataset, video_id = narrated
    before = (len(dataset), _video_sample(dataset, video_id).id)
    path = dataset.first().video_path
    again = import_videos([path], dataset=dataset.name)
    assert [v.status for v in again.videos] == ["unchanged"]
    assert (len(dataset), _video_sample(dataset, video_id).id) == before
    assert len(videos.videos_dataset(dataset)) == 1


def test_hits_become_clips_around_their_spans(narrated):
    dataset, video_id = narrated
    record = load_video_record(dataset, video_id)
    frog = next(s for s in record["segments"] if "frog" in s["text"].lower())
    text_hit = TextHit(
        f"{video_id}:1", 0.9, 0, frog["text"], video_id, frog["start"], frog["end"]
    )
    frames = dataset.match({"video_id": video_id}).sort_by("timestamp")
    ids, times = frames.values(["id", "timestamp"])
    assert times == [0.0, 5.0, 10.0]
    fields = read_frames(dataset, ids)
    frame_hits = [FrameHit(i, 0.5, n, **fields[i]) for n, i in enumerate(ids)]
    fused = FusedHit(ids[1], 0.1, frame_hits[1], [text_hit], None)
    moments = moments_from_hits(dataset, [text_hit, *frame_hits, fused])
    spans = [(m.source, round(m.start, 2), round(m.end, 2)) for m in moments]
    assert spans[0] == ("transcript", round(frog["start"], 2), round(frog["end"], 2))
    # the frame at 5 s carries the frog sentence: its moment is that sentence
    start = round(min(5.0, frog["start"]), 2)
    assert spans[2][1:] == (start, round(frog["end"], 2))
    # the silent scene's frame at 10 s: +-5 s, cut at the video's end
    assert spans[3] == ("frame", 5.0, 15.0)
    assert spans[4] == ("fused", start, round(frog["end"], 2))
    clips = clips_view(dataset, moments)
    assert isinstance(clips, fo.core.clips.ClipsView)
    got = clip_spans(clips)
    assert got[0][0] == video_id
    assert got[0][1] == pytest.approx(frog["start"], abs=0.05)
    assert got[0][2] == pytest.approx(frog["end"], abs=0.05)
    assert len(got) == len({(round(s, 2), round(e, 2)) for _, s, e in got})
    clip = clips.first()
    assert clip.has_field("transcript")  # the timeline's labels come along
    assert "frog" in " ".join(d.label for d in clip.transcript.detections).lower()


def _answer(dataset, video_id):
    frames = dataset.match({"video_id": video_id}).sort_by("timestamp")
    ids = frames.values("id")
    evidence = [
        Evidence.from_frame(1, fo_frame(dataset, ids[0])),
        Evidence(n=2, video_id=video_id, timestamp=5.2, end=7.5, transcript="frog"),
    ]
    citations = [
        Citation(1, ids[0], video_id, "", 0.0),
        Citation(2, None, video_id, "", 5.2),
    ]
    return Answer(
        "What jumps?",
        "A frog jumps [2] near an apple [1].",
        citations,
        evidence,
        {},
        "test-model",
    )


def fo_frame(dataset, sample_id):
    from plugin.retrieval.hits import Frame

    return Frame(sample_id, **read_frames(dataset, [sample_id])[sample_id])


def test_citations_become_clips_and_answers_become_labels(narrated):
    dataset, video_id = narrated
    answer = _answer(dataset, video_id)
    moments = moments_from_answer(dataset, answer)
    assert [(m.label, m.source) for m in moments] == [
        ("[1]", "citation"),
        ("[2]", "citation"),
    ]
    assert (moments[1].start, moments[1].end) == (5.2, 7.5)
    assert len(clips_view(dataset, moments)) == 2
    assert save_answer_labels(dataset, answer) == {video_id: 2}
    assert save_answer_labels(dataset, answer) == {}  # saved once
    labels = _video_sample(dataset, video_id).answers.detections
    assert {d.label for d in labels} == {"What jumps?"}
    assert sorted(d.citation for d in labels) == [1, 2]
    assert {d.answer for d in labels} == {answer.text}
    assert len(videos.videos_dataset(dataset).to_clips("answers")) == 2


def test_open_moments_operator_opens_the_clips_in_the_app(narrated):
    dataset, video_id = narrated
    ids = dataset.match({"video_id": video_id}).sort_by("timestamp").values("id")
    executor = Executor()
    ctx = ExecutionContext(
        request_params={
            "dataset_name": dataset.name,
            "selected": ids[1:2],
            "params": {},
        },
        executor=executor,
    )
    result = OpenMoments().execute(ctx)
    assert "error" not in result, result
    assert [r["rank"] for r in result["moments"]] == [1]
    triggered = [r.operator_uri for r in executor._requests]
    assert triggered == ["open_dataset", "@vrag/video-rag/show_moments_view"]
    video_ds = videos.videos_dataset(dataset)
    saved = video_ds.load_saved_view("moments")
    frog = next(
        d for d in video_ds.first().transcript.detections if "frog" in d.label.lower()
    )
    start = min(5.0, frog.start)  # the frame at 5 s carries the frog sentence
    assert len(saved) == 1
    assert saved.first().support[0] == int(start * 25) + 1


def _write_mpeg4(path, seconds=3, size=(96, 64), fps=10):
    """MPEG-4 Part 2 video (the browser's player cannot play it)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        for i in range(seconds * fps):
            pixels = np.full((size[1], size[0], 3), (i * 8) % 255, np.uint8)
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            frame = frame.reformat(format="yuv420p")
            frame.pts, frame.time_base = i, Fraction(1, fps)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def test_mpeg4_video_plays_through_an_h264_copy(names, tmp_path):
    path = tmp_path / "old codec.mp4"
    _write_mpeg4(path)
    assert probe_video(path).codec == "mpeg4"
    report = import_videos([path], dataset=names, fps=1.0, **NO_TRANSCRIPT)
    assert [v.status for v in report.videos] == ["imported"]
    dataset = fo.load_dataset(names)
    assert len(dataset) == 3  # frames come from the original either way
    sample = _video_sample(dataset, report.videos[0].video_id)
    assert sample.playback == "h264_copy" and "mpeg4" in sample.playback_note
    copy = probe_video(sample.filepath)
    assert (copy.codec, copy.pixel_format) == ("h264", "yuv420p")
    assert copy.duration == pytest.approx(3.0, abs=0.15)
    assert sample.video_path == str(path)


def test_unplayable_video_says_why_when_no_copy_can_be_made(
    names, tmp_path, monkeypatch
):
    path = tmp_path / "old.mp4"
    _write_mpeg4(path)
    monkeypatch.setattr(playable.av, "codecs_available", {"mpeg4", "aac"})
    report = import_videos([path], dataset=names, fps=1.0, **NO_TRANSCRIPT)
    video = report.videos[0]
    assert video.status == "imported" and "cannot play" in video.message
    sample = _video_sample(fo.load_dataset(names), video.video_id)
    assert sample.playback == "unplayable" and sample.filepath == str(path)
    assert "no H.264 encoder" in sample.playback_note


def _cifar(label, n=0):
    files = sorted((CIFAR / label).glob("*.jpg"))
    return Image.open(files[n]).convert("RGB").resize((96, 96))


@pytest.fixture
def horse_video(tmp_path):
    """20 s at 10 FPS: a ship, a horse for 2 s only (6-8 s, between the
    0.2-FPS samples), then a truck; narrated."""
    scenes = [
        Scene(_cifar("ship"), "A large ship sails on the grey sea.", 6.0),
        Scene(_cifar("horse"), "", 2.0),
        Scene(_cifar("truck"), "A red truck drives down the long road.", 12.0),
    ]
    path = tmp_path / "horse.mp4"
    make_narrated_video(path, scenes, size=(96, 96), fps=10)
    return path


def test_densify_adds_frames_that_a_search_then_finds(names, horse_video, local_store):
    import_videos([horse_video], dataset=names)
    dataset = fo.load_dataset(names)
    assert dataset.values("timestamp") == [0.0, 5.0, 10.0, 15.0]
    key = "dense_test"
    build_frame_index(dataset, model=OFFLINE_MODEL, brain_key=key, settings=local_store)
    query = "a photo of a horse"
    before = search_frames(dataset, query, k=1, brain_key=key, settings=local_store)
    assert not 6.0 <= before[0].timestamp < 8.0  # no frame shows the horse

    five = dataset.match({"timestamp": 5.0}).values("id")
    moment = moments_from_frames(dataset, five)[0]
    result = densify_around(
        dataset, moment, radius_s=10.0, fps=2.0, brain_key=key, settings=local_store
    )
    expected = [k / 2 for k in range(31) if k / 2 not in (0.0, 5.0, 10.0, 15.0)]
    assert result.added == expected and result.skipped == 4
    assert result.index == {"added": 27, "removed": 0}
    dense = dataset.match({"dense": True})
    assert sorted(dense.values("timestamp")) == expected
    # the rule of alignment.py on the new timeline gives every frame its text
    record = load_video_record(dataset, result.video_id)
    ordered = dataset.sort_by("timestamp")
    times, texts = ordered.values(["timestamp", "transcript"])
    assert texts == alignment.frame_texts(times, record["segments"], 20.0, None)
    assert "truck" in dataset.match({"timestamp": 9.0}).first().transcript.lower()
    # linked both ways
    sample = _video_sample(dataset, result.video_id)
    assert sample.frame_ids == ordered.values("id")
    assert set(dense.values("video_sample_id")) == {sample.id}

    after = search_frames(dataset, query, k=1, brain_key=key, settings=local_store)
    assert after[0].sample_id in set(dense.values("id"))
    assert 6.0 <= after[0].timestamp < 8.0, after[0]

    again = densify_around(
        dataset, moment, radius_s=10.0, fps=2.0, brain_key=key, settings=local_store
    )
    assert again.added == [] and again.skipped == 31 and len(dataset) == 31
    unchanged = import_videos([horse_video], dataset=names)
    assert [v.status for v in unchanged.videos] == ["unchanged"]
    assert len(dataset) == 31  # an unchanged re-import keeps the dense frames


def test_delete_removes_frames_video_sample_files_and_index_rows(
    names, horse_video, local_store
):
    report = import_videos([horse_video], dataset=names, **NO_TRANSCRIPT)
    video_id = report.videos[0].video_id
    dataset = fo.load_dataset(names)
    key = "delete_test"
    index = build_frame_index(
        dataset, model=OFFLINE_MODEL, brain_key=key, settings=local_store
    )
    frame_ids = set(dataset.values("id"))
    frames_dir = load_video_record(dataset, video_id)["frames_dir"]
    assert set(index_ids(index)) == frame_ids and os.path.isdir(frames_dir)
    delete_video(dataset, video_id)
    assert len(dataset) == 0
    assert len(videos.videos_dataset(dataset)) == 0  # the clips' source is gone
    assert load_video_record(dataset, video_id) is None
    assert not os.path.exists(frames_dir)
    assert sync_frame_index(dataset, key, settings=local_store) == {
        "added": 0,
        "removed": len(frame_ids),
    }
    assert index_ids(index) == []


def test_show_moments_view_waits_for_the_app_to_switch_datasets(narrated):
    dataset, _ = narrated
    video_name = videos.videos_dataset(dataset).name
    uris = []
    for on in (dataset.name, video_name):  # the App still on frames, then on videos
        executor = Executor()
        ctx = ExecutionContext(
            request_params={"dataset_name": on, "params": {"dataset": video_name}},
            executor=executor,
        )
        ShowMomentsView().execute(ctx)
        uris.append([r.operator_uri for r in executor._requests])
    assert uris[0] == [ShowMomentsView().uri]  # runs again, a moment later
    assert uris[1] == ["set_view"]


def test_a_cited_frame_without_video_sample_opens_as_itself(names, tmp_path):
    image = tmp_path / "frame.jpg"
    solid_image((10, 20, 30)).save(image)
    dataset = fo.Dataset(names, persistent=True)
    dataset.add_sample(fo.Sample(filepath=str(image), video_id="v", timestamp=1.0))
    ids = dataset.values("id")
    executor = Executor()
    params = {"sample_ids": ids, "or_open_frame": True}
    ctx = ExecutionContext(
        request_params={"dataset_name": names, "params": params}, executor=executor
    )
    assert OpenMoments().execute(ctx) == {"moments": []}
    uris = [r.operator_uri for r in executor._requests]
    assert uris == ["set_selected_samples", "open_sample"]
