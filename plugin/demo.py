"""``make demo``: set up the services and run the main job on embedded defaults.

1. services: MongoDB (FiftyOne's embedded one) and the managed Milvus store
2. import the narrated sample video as frame samples with transcripts
3. index frames in Milvus (CLIP if its weights can be had, else the offline
   model, and it says so), and the transcript
4. search frames and transcript by text, fuse them (hybrid)
5. ask a question grounded in the top frames (when a vLLM endpoint is set;
   otherwise show the evidence that would be sent and how to start vLLM)

Idempotent: a second run reuses the dataset and indexes.

The sample video's import (:func:`import_sample_video`) lives here too, not
in ``plugin/video/``: it is the demo's step, used by the notebook and the
tests as "the demo dataset", and ``samples/`` holds data and the script that
makes it, not importable code.
"""

import importlib.metadata
import sys
import time
import warnings
from pathlib import Path

# fiftyone-brain uses pymilvus' ORM API, which warns on every call
warnings.filterwarnings("ignore", message=".*ORM-style PyMilvus")

PACKAGES = ["fiftyone", "fiftyone-brain", "pymilvus", "milvus-lite", "torch"]
SAMPLE_VIDEO = Path(__file__).resolve().parents[1] / "samples" / "narrated_cifar10.mp4"
DEMO_DATASET = "video-rag-demo"
FRAME_KEY = "frame_sim"
QUERY = "a photo of a horse"
QUESTION = "Which animals and vehicles appear in the video, and when?"


def _step(title):
    print(f"\n==> {title}", flush=True)


def import_sample_video(dataset_name=DEMO_DATASET, video_path=SAMPLE_VIDEO):
    """Imports the sample video (0.2 FPS, tiny.en); returns a summary dict.

    The summary holds ``dataset``, ``video``, ``status``, ``message``,
    ``frames`` (timestamp + transcript of each frame) and ``transcript_lines``.
    """
    import fiftyone as fo

    from plugin.video.importer import import_videos

    report = import_videos([str(video_path)], dataset=dataset_name)
    result = report.videos[0]
    if result.status == "failed":
        raise RuntimeError(f"Sample video import failed: {result.message}")
    dataset = fo.load_dataset(report.dataset_name)
    view = dataset.match({"video_id": result.video_id}).sort_by("frame_index")
    return {
        "dataset": report.dataset_name,
        "video": str(video_path),
        "status": result.status,
        "message": result.message,
        "frames": [
            {"timestamp": t, "transcript": text}
            for t, text in zip(*view.values(["timestamp", "transcript"]), strict=True)
        ],
        "transcript_lines": result.num_segments,
        "seconds": result.seconds,
    }


def format_summary(summary):
    """A few printable lines about the imported sample video."""
    lines = [
        f"Imported {Path(summary['video']).name} into dataset "
        f"{summary['dataset']!r} ({summary['status']}): "
        f"{len(summary['frames'])} frames, "
        f"{summary['transcript_lines']} transcript lines",
    ]
    for frame in summary["frames"]:
        lines.append(f"  t={frame['timestamp']:5.1f}s  {frame['transcript']}")
    return "\n".join(lines)


def check_services():
    """Starts/contacts MongoDB and the Milvus store; prints versions.

    Returns the :class:`~plugin.settings.Settings` the other steps use.
    """
    import fiftyone as fo

    from plugin.settings import Settings

    _step("Services")
    for name in PACKAGES:
        print(f"  {name:<16} {importlib.metadata.version(name)}")
    start = time.monotonic()
    fo.list_datasets()  # starts the embedded MongoDB if needed
    print(f"  MongoDB          up ({fo.config.database_uri or 'embedded'})")
    settings = Settings.load()
    connection = settings.milvus()  # starts the managed local store if needed
    names = connection.client().list_collections()
    print(f"  Milvus           up: {connection.kind} store at {connection.display_uri}")
    print(f"                   {len(names)} collection(s)")
    print(f"  ready in {time.monotonic() - start:.1f} s")
    return settings


def import_sample():
    import fiftyone as fo

    _step("Import the sample video (0.2 FPS, Whisper tiny.en, offline)")
    summary = import_sample_video()
    print(format_summary(summary))
    return fo.load_dataset(summary["dataset"])


def index_frames(dataset, settings):
    from plugin.models.image_text import load_model_or_offline
    from plugin.retrieval.frame_index import build_frame_index, sync_frame_index

    _step("Index frames in Milvus")
    if FRAME_KEY in dataset.list_brain_runs():
        counts = sync_frame_index(dataset, FRAME_KEY, settings=settings)
        model = dataset.get_brain_info(FRAME_KEY).config.model
        print(f"  index {FRAME_KEY!r} exists ({model}); synced: {counts}")
        return
    spec, _ = load_model_or_offline(announce=lambda text: print(f"  NOTE: {text}"))
    index = build_frame_index(
        dataset, model=spec, brain_key=FRAME_KEY, settings=settings
    )
    print(
        f"  {index.total_index_size} frames indexed with {spec.name} "
        f"(brain key {FRAME_KEY!r}, collection {index.config.collection_name!r})"
    )


def index_transcript(dataset, settings):
    from plugin.retrieval.transcript_index import (
        build_transcript_index,
        sync_transcript_index,
        transcript_index_info,
    )

    _step("Index the transcript in Milvus (all-MiniLM-L6-v2, offline)")
    if transcript_index_info(dataset) is None:
        info = build_transcript_index(dataset, settings=settings)
        print(f"  {info['num_segments']} segments in {info['collection_name']!r}")
    else:
        counts = sync_transcript_index(dataset, settings=settings)
        print(f"  transcript index exists; synced: {counts}")


def search(dataset, settings):
    from plugin.retrieval.frame_search import search_frames
    from plugin.retrieval.hybrid import hybrid_search
    from plugin.retrieval.transcript_index import search_transcript

    _step(f"Search frames: {QUERY!r}")
    for hit in search_frames(
        dataset, QUERY, k=3, brain_key=FRAME_KEY, settings=settings
    ):
        print(
            f"  #{hit.rank + 1} t={hit.timestamp:5.1f}s score={hit.score:.3f} {hit.filepath}"
        )
    _step("Search transcript: 'car'")
    for hit in search_transcript(dataset, "car", k=2, settings=settings):
        print(f"  #{hit.rank + 1} {hit.start:5.1f}-{hit.end:5.1f}s  {hit.text!r}")
    _step("Hybrid (frames + transcript, reciprocal rank fusion): 'a ship at sea'")
    for rank, hit in enumerate(
        hybrid_search(dataset, "a ship at sea", k=3, settings=settings)
    ):
        frame = hit.frame_hit
        when = f"t={frame.timestamp:5.1f}s" if frame else ""
        texts = "; ".join(t.text for t in hit.text_hits)[:70]
        print(f"  #{rank + 1} {when} fused={hit.score:.4f} {texts}")


def ask(dataset, settings):
    from plugin.answer import AnswerError, gather_evidence
    from plugin.answer import ask as ask_question

    _step(f"Ask: {QUESTION!r}")
    try:
        answer = ask_question(dataset, QUESTION, brain_key=FRAME_KEY, settings=settings)
    except AnswerError as e:
        if e.kind != "no_endpoint":
            print(f"  Could not answer: {e.message}")
            return
        evidence = gather_evidence(
            dataset, QUESTION, None, 4, brain_key=FRAME_KEY, settings=settings
        )
        print("  No vLLM endpoint is set. The evidence that would be sent:")
        for item in evidence:
            when = f"{item.timestamp:5.1f}s" if item.timestamp is not None else ""
            print(f"  [{item.n}] {item.video_label} @ {when}  {item.transcript[:60]!r}")
        print(f"  {e.message}")
        return
    print(f"  {answer.model} answered in {answer.seconds:.1f} s:\n  {answer.text}")
    for citation in answer.citations:
        print(f"  [{citation.n}] {citation.label}")


def main():
    from plugin.runtime import prepare_process

    settings = check_services()
    prepare_process()  # brain fixes, our zoo models, brain pointed at the store
    dataset = import_sample()
    index_frames(dataset, settings)
    index_transcript(dataset, settings)
    search(dataset, settings)
    ask(dataset, settings)
    _step("Open it in the App")
    print(
        '  .venv/bin/python -c "import fiftyone as fo; '
        f"fo.launch_app(fo.load_dataset('{dataset.name}'), auto=False).wait()\"\n"
        "  then http://localhost:5151 ; the search bar's gear icon picks the "
        f"index ({FRAME_KEY})"
    )
    print("\nDemo finished.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
