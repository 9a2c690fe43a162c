"""Fan an import of many videos out over FiftyOne's delegated execution.

One import job = one delegated operation per video (or per batch of videos),
run by K workers in parallel; the job, its progress, the claims of its
parts and the retries are :mod:`plugin.jobs`' (one part per video). The
importer's per-video claim (:mod:`plugin.video.claims`) keeps a video
imported once even when two parts name the same content.
"""

from plugin import jobs
from plugin.video.inputs import find_videos
from plugin.video.options import ImportOptions

KIND = "import"


def fan_out_import(
    paths,
    dataset,
    child_operator,
    options=None,
    batch_size=1,
    max_attempts=jobs.MAX_ATTEMPTS,
):
    """Queues one delegated operation per ``batch_size`` videos.

    Args:
        paths: files, directories and glob patterns
        dataset: the dataset name (created here if new)
        child_operator: the URI of the operator that imports a batch
            (``@vrag/video-rag/import_video_batch``)
        options (None): an :class:`~plugin.video.options.ImportOptions`
        batch_size (1): videos per delegated operation
        max_attempts (2): tries per video before it stays failed

    Returns:
        the job record (``job_id``, ``total``, ``operations``, ``problems``)
    """
    from plugin.video.importer import import_videos

    options = options or ImportOptions()
    options.validate()
    # Created once, here: workers racing to create it would collide.
    name = import_videos([], dataset=dataset, options=options).dataset_name
    found, problems = find_videos(paths)
    return jobs.create_job(
        name,
        KIND,
        child_operator,
        [{"label": str(path), "path": str(path)} for path in found],
        params={"options": options.to_dict()},
        per_operation=batch_size,
        max_attempts=max_attempts,
        problems=[{"path": p.path, "message": p.message} for p in problems],
    )


def run_batch(dataset, job_id, numbers):
    """Imports the videos ``numbers`` of a job (in a delegated operation);
    returns their records."""
    return jobs.run_parts(dataset, job_id, numbers, _import_one)


def _import_one(job, record, _input):
    from plugin.video.importer import import_videos

    options = ImportOptions.from_dict(job["params"]["options"])
    (result,) = import_videos(
        [record["path"]], dataset=job["dataset"], options=options
    ).videos
    return {
        "status": result.status,
        "message": result.message,
        "video_id": result.video_id,
        "num_frames": result.num_frames,
    }
