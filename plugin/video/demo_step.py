"""The demo's video step: import the narrated sample video that ships in the repo.

``plugin.demo`` calls :func:`import_sample_video` and prints
:func:`format_summary`; ``python -m plugin.video.demo_step`` runs it alone.
"""

from pathlib import Path

from plugin.video.importer import import_videos

SAMPLE_VIDEO = Path(__file__).resolve().parents[2] / "samples" / "narrated_cifar10.mp4"
DEMO_DATASET = "video-rag-demo"


def import_sample_video(dataset_name=DEMO_DATASET, video_path=SAMPLE_VIDEO):
    """Imports the sample video (0.2 FPS, tiny.en); returns a summary dict.

    The summary holds ``dataset``, ``video``, ``status``, ``message``,
    ``frames`` (timestamp + transcript of each frame) and ``transcript_lines``.
    """
    import fiftyone as fo

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


if __name__ == "__main__":
    print(format_summary(import_sample_video()))
