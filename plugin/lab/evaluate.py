"""Evaluate search on the judged queries: per index and per fusion setting.

For each judged query, each index the dataset has (frames, transcripts,
on-screen text) is searched ONCE, ``depth`` hits deep; every system is then
a ranking of frames made from those hits by
:func:`plugin.retrieval.fusion.fuse`:

- one system per index alone (its weight 1, the others 0): the index's own
  ranking of frames;
- ``hybrid``: all indexes with the default weights;
- any other fusion settings given (``FusionSetting``: weights, RRF k).

So settings are compared on the very same hits, and a search runs once per
query and index, however many settings are compared. Metrics are those of
:mod:`plugin.lab.metrics`, averaged over the queries where they are defined.
The last report is kept in the lab's store (the panel shows it on load).
"""

import dataclasses
import time

from plugin.errors import IndexNotFoundError, InvalidInputError
from plugin.lab import metrics as M
from plugin.lab.judgments import REPORT_KEY, lab_store, load_judgments, resolve_all
from plugin.progress import report
from plugin.retrieval import fusion
from plugin.retrieval import screen_text_index as screen
from plugin.retrieval import transcript_index as transcripts
from plugin.retrieval.frame_search import search_frames
from plugin.retrieval.frame_store import DEFAULT_BRAIN_KEY
from plugin.retrieval.fusion import FRAMES, SCREEN_TEXT, SIGNALS, TRANSCRIPTS
from plugin.settings import Settings

HYBRID = "hybrid"


@dataclasses.dataclass
class FusionSetting:
    """A system to compare: fusion ``weights`` per signal, the RRF ``rrf_k``
    and the text hits' ``min_share`` (see :mod:`plugin.retrieval.fusion`)."""

    name: str
    weights: dict
    rrf_k: int = fusion.DEFAULT_RRF_K
    min_share: float = fusion.DEFAULT_MIN_SHARE


@dataclasses.dataclass
class LabReport:
    """What :func:`evaluate` measured.

    ``rows``: one per system: ``{"system", "weights", "rrf_k", "queries",
    <metric>: mean or None}``; ``per_query``: ``{system: [{"query",
    <metric>: value}]}``; ``skipped``: judged queries with no frame of this
    dataset relevant (e.g. their video is not here).
    """

    rows: list
    per_query: dict
    metrics: list
    signals: list
    skipped: list = dataclasses.field(default_factory=list)
    depth: int = 10
    seconds: float = 0.0
    ks: list = dataclasses.field(default_factory=lambda: list(M.DEFAULT_KS))

    def to_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data):
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in (data or {}).items() if k in names})

    def row(self, system):
        return next(r for r in self.rows if r["system"] == system)

    def table(self):
        """The report as text (notebooks, logs)."""
        head = ["system", *self.metrics]
        lines = ["  ".join(f"{h:>12}" for h in head)]
        for row in self.rows:
            cells = [row["system"], *(_fmt(row[m]) for m in self.metrics)]
            lines.append("  ".join(f"{c:>12}" for c in cells))
        return "\n".join(lines)


def available_signals(dataset, brain_key=DEFAULT_BRAIN_KEY):
    """The signals whose index ``dataset`` has, in fusion order."""
    root = dataset._root_dataset
    have = {
        FRAMES: brain_key in root.list_brain_runs(),
        TRANSCRIPTS: transcripts.transcript_index_info(root) is not None,
        SCREEN_TEXT: screen.screen_text_index_info(root) is not None,
    }
    return [s for s in SIGNALS if have[s]]


def default_settings(signals):
    """Each index alone, and all of them fused with the default weights."""
    alone = [FusionSetting(s, {x: float(x == s) for x in SIGNALS}) for s in signals]
    if len(signals) > 1:
        alone.append(FusionSetting(HYBRID, dict(fusion.DEFAULT_WEIGHTS)))
    return alone


def evaluate(
    dataset,
    judgments=None,
    fusions=(),
    ks=M.DEFAULT_KS,
    depth=None,
    brain_key=DEFAULT_BRAIN_KEY,
    settings=None,
    progress=None,
    save=True,
):
    """Measures search on the judged queries of ``dataset``.

    Args:
        dataset: the dataset (or a view: only its frames are searched)
        judgments (None): a list of judgments (see
            :mod:`plugin.lab.judgments`); default the dataset's stored ones
        fusions (()): more :class:`FusionSetting` (or dicts with ``name``,
            ``weights``, ``rrf_k``) beside each index alone and ``hybrid``
        ks ((1, 5, 10)): the cut-offs of recall@k and span_hit@k
        depth (None): hits per index and query (default max(ks, 10))
        brain_key ("frame_sim"): the frame index
        settings (None): a :class:`~plugin.settings.Settings`
        progress (None): a callable ``progress(fraction, label)``
        save (True): keep the report in the lab's store (for the panel)

    Returns:
        a :class:`LabReport`
    """
    started = time.perf_counter()
    ks = tuple(sorted({int(k) for k in ks}))
    depth = depth or max(*ks, M.NDCG_AT)
    entries = load_judgments(dataset) if judgments is None else judgments
    if not entries:
        raise InvalidInputError(
            "No judged queries: mark results relevant in the App, or import "
            "a TSV/JSON file of judgments (plugin.lab.import_judgments)"
        )
    signals = available_signals(dataset, brain_key)
    if not signals:
        raise IndexNotFoundError(
            f"Dataset {dataset._root_dataset.name!r} has no index to evaluate: "
            "build them first (build_indexes)"
        )
    systems = default_settings(signals) + [_setting(f) for f in fusions]
    resolved = resolve_all(dataset, entries)
    judged = [r for r in resolved if r.judged]
    settings = Settings.coerce(settings)
    per_query = {s.name: [] for s in systems}
    for n, item in enumerate(judged):
        report(progress, n / len(judged), f"Query {n + 1}/{len(judged)}: {item.query}")
        hits = _search(dataset, item.query, signals, depth, brain_key, settings)
        for system in systems:
            fused = fusion.fuse(
                hits[FRAMES],
                hits[TRANSCRIPTS],
                k=depth,
                rrf_k=system.rrf_k,
                screen_hits=hits[SCREEN_TEXT],
                weights=system.weights,
                min_share=system.min_share,
            )
            frames = [_where(hit) for hit in fused]
            values = M.query_metrics(frames, item, ks)
            per_query[system.name].append({"query": item.query, **values})
    names = M.metric_names(ks)
    rows = [
        {
            "system": s.name,
            "weights": s.weights,
            "rrf_k": s.rrf_k,
            "min_share": s.min_share,
            "queries": len(judged),
            **M.mean_metrics(per_query[s.name], ks),
        }
        for s in systems
    ]
    result = LabReport(
        rows=rows,
        per_query=per_query,
        metrics=names,
        signals=signals,
        skipped=[r.query for r in resolved if not r.judged],
        depth=depth,
        seconds=round(time.perf_counter() - started, 3),
        ks=list(ks),
    )
    if save:
        lab_store(dataset).set(REPORT_KEY, result.to_dict())
    report(progress, 1.0, f"Evaluated {len(judged)} queries x {len(systems)} systems")
    return result


def last_report(dataset):
    """The report of the last :func:`evaluate` (saved), or None."""
    data = lab_store(dataset).get(REPORT_KEY)
    return LabReport.from_dict(data) if data else None


def rerun(dataset, settings=None, progress=None):
    """Evaluates again with the last report's settings (after judgments
    changed); None if there is no last report."""
    previous = last_report(dataset)
    if previous is None:
        return None
    standard = {s.name for s in default_settings(list(SIGNALS))}
    fusions = [
        FusionSetting(
            r["system"],
            r["weights"],
            r["rrf_k"],
            r.get("min_share", fusion.DEFAULT_MIN_SHARE),
        )
        for r in previous.rows
        if r["system"] not in standard
    ]
    return evaluate(
        dataset,
        fusions=fusions,
        ks=previous.ks,
        depth=previous.depth,
        settings=settings,
        progress=progress,
    )


def _setting(value):
    if isinstance(value, FusionSetting):
        setting = value
    else:
        value = dict(value)
        setting = FusionSetting(
            str(value.get("name") or "custom"),
            value.get("weights") or {},
            int(value.get("rrf_k", fusion.DEFAULT_RRF_K)),
            float(value.get("min_share", fusion.DEFAULT_MIN_SHARE)),
        )
    weights = fusion.check_weights(setting.weights)
    if not any(weights.values()):
        raise InvalidInputError(f"Setting {setting.name!r}: every weight is 0")
    if setting.rrf_k < 0 or not 0 <= setting.min_share <= 1:
        raise InvalidInputError(
            f"Setting {setting.name!r}: rrf_k must be >= 0 and min_share in 0-1"
        )
    return dataclasses.replace(setting, weights=weights)


def _search(dataset, query, signals, depth, brain_key, settings):
    """Each index's hits for ``query`` (an empty list for a missing index)."""
    hits = dict.fromkeys(SIGNALS, [])
    if FRAMES in signals:
        hits[FRAMES] = search_frames(dataset, query, depth, brain_key, settings)
    if TRANSCRIPTS in signals:
        hits[TRANSCRIPTS] = transcripts.search_transcript(
            dataset, query, depth, settings
        )
    if SCREEN_TEXT in signals:
        hits[SCREEN_TEXT] = screen.search_screen_text(dataset, query, depth, settings)
    return hits


def _where(hit):
    frame = hit.frame
    if frame is None:
        return (hit.sample_id, "", None)
    return (hit.sample_id, frame.video_id or "", frame.timestamp)


def _fmt(value):
    return "-" if value is None else f"{value:.3f}"
