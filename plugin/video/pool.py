"""Import many videos at once: a pool of worker processes sized to the machine.

Processes, not threads: decoding and the FiftyOne writes hold the GIL, a
process's memory is its own to bound, and a worker that crashes takes no
other video with it; and Whisper on CPUs scales far better across processes
than across threads of one process (measured, see :data:`THREADS_PER_WORKER`). Each worker loads its Whisper model once (the registry
caches it per process) and runs the importer's public
:func:`~plugin.video.importer.import_videos` on one video at a time, so the
importer's guarantees (per-video claims, idempotence) hold as they do for one
process. The cores are shared out: each worker gets ``OMP_NUM_THREADS =
cores // workers`` (ctranslate2 and torch read it). How many workers
(:func:`plan_workers`): one per two cores on CPUs, a few per GPU, never more
than the videos, and never more than the memory allows for the longest video.

Measured on 2 and 16 cores in docs/scaling.md. From Python::

    from plugin.video.pool import import_in_parallel
    report = import_in_parallel(["/videos"], dataset="talks")
"""

import dataclasses
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor, as_completed

from plugin.models.speech import DEFAULT_CPU_THREADS, whisper_device
from plugin.progress import report as report_progress
from plugin.settings import Settings
from plugin.video.inputs import ImportReport, VideoResult, find_videos
from plugin.video.options import ImportOptions

#: What one worker needs beside its audio: Python, FiftyOne, PyAV, the
#: Whisper model(s). Measured: a pool worker peaks at 0.73 GB with one
#: decoding stream, 1.19 GB with two (bench/bench_scale_ingest.py); 2 GB
#: leaves room for larger Whisper models.
WORKER_BYTES = 2_000_000_000
#: Audio is decoded whole to 16 kHz float32 (64 kB/s); Whisper's features
#: and the decoder's copies roughly triple it.
AUDIO_BYTES_PER_S = 3 * 16000 * 4
#: Share of the available memory the pool may plan for
MEMORY_SHARE = 0.7
#: CPU threads per worker: on 16 cores, 8 workers x 2 threads transcribed at
#: 184-233x real time, 4 x 4 at 141-195x, 2 x 8 at 114-153x, 1 x 16 at 25x
#: (bench/results/scale_gpu.md, two runs): many narrow workers beat one wide.
THREADS_PER_WORKER = 2
#: Workers per GPU: transcription on the GPU is short bursts between CPU
#: stages (decoding, JPEG, MongoDB writes), so a few workers keep it busy
#: (not measured: faster-whisper's CUDA build could not run on the GPU machine).
WORKERS_PER_GPU = 4


@dataclasses.dataclass(frozen=True)
class WorkerPlan:
    """How many worker processes, and CPU threads each; ``why`` says what bound it."""

    workers: int
    threads: int
    why: str


@dataclasses.dataclass
class ParallelImportReport(ImportReport):
    """An :class:`~plugin.video.inputs.ImportReport`, plus how the pool ran:
    its plan, and per worker process (pid) the videos it imported and how
    many times it loaded a Whisper model (once, when all is well)."""

    plan: WorkerPlan | None = None
    workers: dict = dataclasses.field(default_factory=dict)


def plan_workers(
    num_videos,
    workers=None,
    cores=None,
    available_bytes=None,
    longest_s=0.0,
    device=None,
):
    """The :class:`WorkerPlan` for ``num_videos`` videos.

    Args:
        num_videos: how many videos to import
        workers (None): a number asked for (still bounded by the videos and
            the memory); None: cores / :data:`THREADS_PER_WORKER` on CPUs,
            :data:`WORKERS_PER_GPU` on a GPU
        cores (None): CPU cores this process may use (default: its affinity)
        available_bytes (None): memory available (default: ``psutil``'s)
        longest_s (0.0): duration of the longest video, in seconds
        device (None): ``"cpu"`` or ``"cuda"`` (default: Whisper's device)
    """
    cores = cores or _cores()
    if available_bytes is None:
        available_bytes = _available_bytes()
    device = device or whisper_device()[0]
    on_cpu = max(1, cores // THREADS_PER_WORKER)
    wanted = workers or (WORKERS_PER_GPU if device == "cuda" else on_cpu)
    per_worker = WORKER_BYTES + int(longest_s * AUDIO_BYTES_PER_S)
    by_memory = max(1, int(available_bytes * MEMORY_SHARE) // per_worker)
    limits = [
        (max(1, int(wanted)), "asked" if workers else f"{device} default"),
        (max(1, num_videos), "videos"),
        (by_memory, "memory"),
    ]
    count, why = min(limits, key=lambda limit: limit[0])
    # One model gains little past 8 threads, and loses at 16 (25x real time)
    threads = min(max(1, cores // count), DEFAULT_CPU_THREADS)
    return WorkerPlan(count, threads, why)


def import_in_parallel(
    paths,
    dataset=None,
    options=None,
    workers=None,
    progress=None,
    settings=None,
):
    """Imports videos with a pool of worker processes, one video per task.

    Args:
        paths: files, directories and glob patterns (as ``import_videos``)
        dataset (None): a dataset name (created if new); None: the default
        options (None): an :class:`~plugin.video.options.ImportOptions`
        workers (None): worker processes; None: :func:`plan_workers` decides
        progress (None): ``progress(fraction, label)`` as videos finish
        settings (None): a :class:`~plugin.settings.Settings` (Whisper's device)

    Returns:
        a :class:`ParallelImportReport`, videos in input order
    """
    from plugin.video.importer import import_videos

    settings = Settings.coerce(settings)
    options = options or ImportOptions()
    options.validate()
    name = dataset if isinstance(dataset, str) or dataset is None else dataset.name
    # Created here, once: workers racing to create it would collide.
    name = import_videos([], dataset=name, options=options).dataset_name
    found, problems = find_videos(paths)
    plan = plan_workers(
        len(found),
        workers=workers,
        longest_s=_longest_seconds(found),
        device=whisper_device(settings)[0],
    )
    report = ParallelImportReport(name, videos=list(problems), plan=plan)
    report_progress(progress, 0.0, f"{len(found)} video(s), {_describe(plan)}")
    if plan.workers == 1:  # in this process: no start-up to pay
        done = {}
        for n, path in enumerate(found):
            done[path] = _import_one(str(path), name, options.to_dict())
            report_progress(progress, (n + 1) / len(found), f"Imported {path.name}")
    else:
        done = _run_pool(found, name, options, plan, progress)
    for path in found:
        result, worker = done[path]
        report.videos.append(result)
        if worker:
            stats = report.workers.setdefault(worker["pid"], {"videos": 0})
            stats["videos"] += 1
            stats["model_loads"] = worker["model_loads"]
    return report


def _run_pool(found, name, options, plan, progress):
    done = {}
    pool = ProcessPoolExecutor(
        max_workers=plan.workers,
        # spawn: a forked child would share the parent's MongoDB sockets
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_start_worker,
        initargs=(plan.threads,),
    )
    with pool:
        futures = {
            pool.submit(_import_one, str(path), name, options.to_dict()): path
            for path in found
        }
        for count, future in enumerate(as_completed(futures), start=1):
            path = futures[future]
            done[path] = _result_of(future, path)
            status = done[path][0].status
            label = f"{count}/{len(found)} done: {path.name} {status}"
            report_progress(progress, count / len(found), label)
    return done


def _result_of(future, path):
    try:
        return future.result()
    except Exception as e:  # the worker died (killed, out of memory)
        message = f"worker failed: {type(e).__name__}: {e}"
        return VideoResult(path=str(path), status="failed", message=message), None


def _start_worker(threads):
    """Runs first in each worker: its share of the cores, set before any
    library that reads it (ctranslate2, torch) starts its thread pool."""
    os.environ["OMP_NUM_THREADS"] = str(threads)


def _import_one(path, dataset_name, option_values):
    """One video, in a worker: the importer's public entry point. Returns
    ``(VideoResult, {"pid", "model_loads"})``."""
    from plugin.models import speech
    from plugin.video.importer import import_videos

    options = ImportOptions.from_dict(option_values)
    report = import_videos([path], dataset=dataset_name, options=options)
    (result,) = report.videos
    return result, {"pid": os.getpid(), "model_loads": speech.models_loaded()}


def _longest_seconds(paths):
    from plugin.video.sampling import probe_video

    longest = 0.0
    for path in paths:
        try:
            longest = max(longest, probe_video(path).duration or 0.0)
        except Exception:  # the worker reports an unreadable video
            continue
    return longest


def _describe(plan):
    return f"{plan.workers} worker(s) x {plan.threads} thread(s) (bound: {plan.why})"


def _cores():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _available_bytes():
    import psutil

    return psutil.virtual_memory().available
