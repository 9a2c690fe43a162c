"""The retrieval lab: metrics by hand, judgments, evaluation, panel, operators.

The evaluation runs through the real parts: the sample video imported by the
importer, its transcript index on the managed local store (real MiniLM).
Queries that ARE a narration sentence find their own segment first, which
makes the numbers below computable by hand.
"""

import math
import uuid
from pathlib import Path

import fiftyone as fo
import pytest
from fiftyone.operators.executor import ExecutionError
from support.execution import run_panel_event
from support.sample import imported_sample

from plugin.demo import SAMPLE_VIDEO
from plugin.errors import InvalidInputError
from plugin.lab import (
    delete_judgment,
    evaluate,
    import_judgments,
    last_report,
    load_judgments,
    mark,
    read_judgments_file,
    save_judgment,
)
from plugin.lab import metrics as M
from plugin.lab.judgments import resolve_all
from plugin.retrieval.transcript_index import (
    build_transcript_index,
    delete_transcript_index,
)

JUDGMENTS = Path(__file__).resolve().parents[1] / "samples" / "judgments"
SHIP = "A large white ship sails on the open sea."  # scene 3, 10-15 s
CAR = "A small blue car drives along the road."  # scene 2, 5-10 s
VIDEO = SAMPLE_VIDEO.name


def test_metrics_by_hand():
    ranking = ["a", "b", "c", "d"]
    relevant = {"b", "d", "z"}  # z was never found
    assert M.recall_at(ranking, relevant, 1) == 0.0
    assert M.recall_at(ranking, relevant, 2) == pytest.approx(1 / 3)
    assert M.recall_at(ranking, relevant, 10) == pytest.approx(2 / 3)
    assert M.reciprocal_rank(ranking, relevant) == 0.5
    assert M.reciprocal_rank(ranking, {"x"}) == 0.0
    dcg = 1 / math.log2(3) + 1 / math.log2(5)  # hits at positions 2 and 4
    ideal = 1 + 1 / math.log2(3) + 1 / math.log2(4)  # 3 relevant on top
    assert M.ndcg_at(ranking, relevant) == pytest.approx(dcg / ideal)  # 0.4982
    assert M.ndcg_at(ranking, relevant) == pytest.approx(0.49819, abs=1e-5)
    frames = [("a", "v", 1.0), ("b", "v", 7.0), ("c", "w", 7.0)]
    spans = [("v", 5.0, 10.0)]
    assert M.span_hit_at(frames, spans, 1) == 0.0
    assert M.span_hit_at(frames, spans, 2) == 1.0
    assert M.span_hit_at(frames, spans, 3, not_relevant={"b"}) == 0.0  # c: other video
    assert M.span_hit_at(frames, [], 3) is None
    means = M.mean_metrics(
        [{"mrr": 1.0, "recall@1": None}, {"mrr": 0.5, "recall@1": 0.25}], ks=(1,)
    )
    assert means["mrr"] == 0.75 and means["recall@1"] == 0.25
    assert means["span_hit@1"] is None


@pytest.fixture(scope="module")
def sample():
    """The sample video imported once (5 scenes of 5 s, one frame each):
    ``(dataset, {second: frame id})``."""
    with imported_sample("vrag-lab") as (dataset, _, frame_at):
        yield dataset, frame_at


@pytest.fixture(scope="module")
def indexed(sample, local_store):
    dataset = sample[0]
    build_transcript_index(dataset, settings=local_store, overwrite=True)
    yield sample
    delete_transcript_index(dataset, settings=local_store)


def _crafted(dataset):
    """Two judged queries whose numbers are known by hand, one skipped
    (replacing whatever an earlier test judged)."""
    for old in load_judgments(dataset):
        delete_judgment(dataset, old["query"])
    for entry in [
        {"query": SHIP, "relevant": [{"video": VIDEO, "start": 10, "end": 15}]},
        {  # the car (found first) and the airplane (found later)
            "query": CAR,
            "relevant": [
                {"video": VIDEO, "start": 5, "end": 10},
                {"video": VIDEO, "start": 15, "end": 20},
            ],
        },
        {
            "query": "a dog",
            "relevant": [{"video": "not-here.mp4", "start": 0, "end": 5}],
        },
    ]:
        save_judgment(dataset, entry, merge=False)


def test_the_lab_computes_known_numbers_on_a_crafted_set(indexed, local_store):
    """The ship query finds its own segment and nothing else (the others are
    below half its similarity, see plugin/retrieval/fusion.py); the car query
    finds the car but not the airplane judged relevant beside it."""
    dataset, frame_at = indexed
    _crafted(dataset)
    every = {"transcripts": 1, "frames": 0, "screen_text": 0}
    report = evaluate(
        dataset,
        fusions=[{"name": "every hit", "weights": every, "min_share": 0}],
        settings=local_store,
    )
    assert report.signals == ["transcripts"] and report.skipped == ["a dog"]
    row = report.row("transcripts")
    assert row["queries"] == 2
    car_ndcg = 1 / (1 + 1 / math.log2(3))  # 1 of 2 relevant, at rank 1
    assert row["recall@1"] == pytest.approx((1 + 1 / 2) / 2)
    assert row["recall@5"] == pytest.approx((1 + 1 / 2) / 2)
    assert row["ndcg@10"] == pytest.approx((1 + car_ndcg) / 2)
    assert row["mrr"] == 1.0 and row["span_hit@1"] == 1.0
    # Every hit counting: the airplane comes back at some rank r in 2..5
    row = report.row("every hit")
    assert row["recall@1"] == pytest.approx(0.75) and row["recall@5"] == 1.0
    car = next(q for q in report.per_query["every hit"] if q["query"] == CAR)
    ideal = 1 + 1 / math.log2(3)
    assert (1 + 1 / math.log2(6)) / ideal <= car["ndcg@10"] <= 1.0
    assert last_report(dataset).rows == report.rows  # kept for the panel

    # A frame marked not relevant never counts, even inside a relevant span
    mark(dataset, SHIP, [frame_at[10]], relevant=False)
    report = evaluate(dataset, settings=local_store)
    ship = next(q for q in report.per_query["transcripts"] if q["query"] == SHIP)
    assert ship["recall@1"] is None and ship["span_hit@1"] == 0.0
    assert ship["mrr"] is None


def test_sample_video_judgments_match_the_searches_they_ran(indexed, local_store):
    from plugin.retrieval.fusion import confident
    from plugin.retrieval.transcript_index import search_transcript

    dataset, frame_at = indexed
    import_judgments(dataset, JUDGMENTS / "sample_video.json", replace=True)
    entries = load_judgments(dataset)
    assert len(entries) == 7
    report = evaluate(dataset, settings=local_store)
    assert report.skipped == []
    for entry, resolved, row in zip(
        entries, resolve_all(dataset, entries), report.per_query["transcripts"]
    ):
        hits = search_transcript(dataset, entry["query"], 10, settings=local_store)
        ranking = list(dict.fromkeys(i for h in confident(hits) for i in h.frame_ids))
        assert row["query"] == entry["query"]
        assert row["mrr"] == M.reciprocal_rank(ranking, resolved.relevant)
        assert row["recall@1"] == M.recall_at(ranking, resolved.relevant, 1)
        assert row["recall@5"] == M.recall_at(ranking, resolved.relevant, 5)
        assert row["ndcg@10"] == M.ndcg_at(ranking, resolved.relevant)
    animal = next(e for e in resolve_all(dataset, entries) if e.query == "an animal")
    assert animal.relevant == {frame_at[0], frame_at[20]}  # horse and cat


def test_cifar10_judgments_resolve_to_their_class():
    entries = read_judgments_file(JUDGMENTS / "cifar10_classes.tsv")
    assert [e["query"] for e in entries][:2] == [
        "a photo of an airplane",
        "a photo of an automobile",
    ]
    dataset = fo.Dataset(f"vrag-lab-cifar-{uuid.uuid4().hex[:8]}")
    try:
        labels = ["cat", "dog", "cat", "ship"]
        dataset.add_samples(
            fo.Sample(
                filepath=f"/cifar/{n}.jpg", ground_truth=fo.Classification(label=c)
            )
            for n, c in enumerate(labels)
        )
        by_query = {r.query: r for r in resolve_all(dataset, entries)}
        cats = set(dataset.match({"ground_truth.label": "cat"}).values("id"))
        assert by_query["a photo of a cat"].relevant == cats
        assert not by_query["a photo of a truck"].judged  # no truck here
    finally:
        dataset.delete()


def test_bad_judgment_files_say_what_is_wrong(tmp_path):
    bad = tmp_path / "bad.tsv"
    bad.write_text("query\tvideo\tstart\nq\tv.mp4\t1\n")
    with pytest.raises(
        InvalidInputError, match="Row 2: a video span needs start and end"
    ):
        read_judgments_file(bad)
    empty = tmp_path / "empty.json"
    empty.write_text('{"queries": []}')
    with pytest.raises(InvalidInputError, match="holds no judged queries"):
        read_judgments_file(empty)
    span = tmp_path / "span.json"
    span.write_text(
        '[{"query": "q", "relevant": [{"video": "v", "start": 5, "end": 2}]}]'
    )
    with pytest.raises(InvalidInputError, match="empty or negative"):
        read_judgments_file(span)


def test_panel_renders_charts_and_follows_a_new_judgment(indexed, local_store):
    """The panel as the App drives it: on_load shows the last report's table
    and Plotly charts; marking a selected frame re-evaluates, and the
    numbers change."""

    dataset, frame_at = indexed
    _crafted(dataset)
    before = evaluate(dataset, settings=local_store).row("transcripts")
    assert before["recall@1"] == 0.75

    state, output = _panel(dataset, "on_load", {})
    assert state["report"]["rows"][0]["system"] == "transcripts"
    plots = _plots(output)
    assert set(plots) == {"metrics_chart", "per_query_chart"}
    bars = plots["metrics_chart"]["data"]
    assert [t["name"] for t in bars] == ["transcripts"]
    assert dict(zip(bars[0]["x"], bars[0]["y"]))["Recall@1"] == 0.75
    assert plots["metrics_chart"]["layout"]["barmode"] == "group"

    # The airplane is not what "a small blue car" asks for: marking it wrong
    # leaves one relevant frame per query, and recall@1 becomes 1.
    state["query"] = CAR
    state, output = _panel(dataset, "on_mark_not_relevant", state, [frame_at[15]])
    assert not state["error"], state["error"]
    assert state["report"]["rows"][0]["recall@1"] == 1.0
    bars = _plots(output)["metrics_chart"]["data"]
    assert dict(zip(bars[0]["x"], bars[0]["y"]))["Recall@1"] == 1.0
    assert "(2 relevant, 1 not)" in state["notice"]  # spans and frames


def test_mark_relevant_operator_judges_the_selection(plugin_loaded, sample):
    import fiftyone.operators as foo

    dataset, frame_at = sample
    result = foo.execute_operator(
        f"{plugin_loaded}/mark_relevant",
        ctx={
            "dataset": dataset,
            "selected": [frame_at[0], frame_at[20]],
            "params": {"query": "four legs", "relevant": True, "evaluate": False},
        },
    )
    assert result.error is None, result.error
    assert "2 relevant, 0 not relevant" in result.result["summary"]
    entry = next(e for e in load_judgments(dataset) if e["query"] == "four legs")
    assert {t["sample_id"] for t in entry["relevant"]} == {frame_at[0], frame_at[20]}

    # Nothing selected: the form refuses (shown on its query field)
    with pytest.raises(ExecutionError, match="Select the frames to judge in the grid"):
        foo.execute_operator(
            f"{plugin_loaded}/mark_relevant",
            ctx={"dataset": dataset, "selected": [], "params": {"query": "four legs"}},
        )


def _panel(dataset, method, state, selected=()):
    """Runs one panel event; returns ``(new state, rendered output)``."""
    from panels.lab import LabPanel

    return run_panel_event(LabPanel(), dataset, method, state, selected)


def _plots(output):
    """``{name: view json}`` of the Plotly views in a rendered panel."""
    found = {}

    def walk(node):
        if isinstance(node, dict):
            for name, prop in (node.get("properties") or {}).items():
                view = (prop.get("view") or {}) if isinstance(prop, dict) else {}
                if view.get("name") == "PlotlyView":
                    found[name] = view
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(output)
    return found


def test_build_indexes_skips_what_the_fields_do_not_support(sample, local_store):
    from plugin.retrieval import build_indexes

    outcome = build_indexes(sample[0], signals=("screen_text",), settings=local_store)
    assert outcome["screen_text"].status == "skipped"
    assert "no screen-text spans to index (no frame was read yet" in (
        outcome["screen_text"].message
    )
    with pytest.raises(InvalidInputError, match="Unknown signals"):
        build_indexes(sample[0], signals=("audio",), settings=local_store)
