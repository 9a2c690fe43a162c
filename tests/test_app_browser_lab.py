"""The Search lab panel in the FiftyOne App, in headless Chromium.

As a person uses it: the lab holds judged queries and a report (evaluated
once); the panel shows its metrics table; a frame selected in the grid is
marked relevant to a query from the panel, the lab evaluates again, and the
numbers in the panel change.

The set-up is ``test_lab.py``'s: the sample video imported (one frame a
scene), its transcript index on the managed local store, the crafted
judgments (the ship query finds its own frame first and nothing else). Marking
the horse frame relevant to the ship query too halves that query's recall:
the transcripts' Recall@1 (and @5) goes from 0.750 to 0.500.

Its own module: marked ``browser``, not ``vllm`` (no model server needed).
Screenshots go to ``tests/artifacts/screenshots/`` (``10-lab*.png``).
"""

import pytest
from support.app_browser import AppServer, Browser, plugins_dir_with_repo, running, step
from support.app_page import cy, dismiss_popups, wait_for
from support.sample import imported_sample
from test_lab import SHIP, _crafted

from plugin.lab import evaluate, last_report, load_judgments
from plugin.retrieval.transcript_index import (
    build_transcript_index,
    delete_transcript_index,
)

pytestmark = [pytest.mark.browser]

PANEL = cy("panel-content-lab_panel")


@pytest.fixture
def judged(local_store):
    """The sample video, transcript-indexed, with the crafted judgments and
    a first report: ``(dataset, {second: frame id})``."""
    with imported_sample("vrag-lab-app") as (dataset, _, frame_at):
        build_transcript_index(dataset, settings=local_store, overwrite=True)
        _crafted(dataset)
        row = evaluate(dataset, settings=local_store).row("transcripts")
        assert row["recall@1"] == pytest.approx(0.75)
        yield dataset, frame_at
        delete_transcript_index(dataset, settings=local_store)


@pytest.fixture
def app(judged, plugin_loaded, tmp_path):
    server = AppServer(
        judged[0],
        plugins_dir_with_repo(tmp_path / "app"),
        env={"FIFTYONE_DO_NOT_TRACK": "true"},
    )
    with running("The App or Chromium", server, Browser()) as started:
        yield started


def _select_first_frame(page, session, attempts=3):
    """Selects the grid's first frame until the Python session sees it."""
    for attempt in range(attempts):
        page.locator(cy("looker")).first.hover()
        page.locator(cy("looker-checkbox-")).first.click()
        try:
            wait_for(lambda: len(session.selected) == 1, 30, "the selection", page)
            return session.selected[0]
        except AssertionError:
            if attempt == attempts - 1:
                raise
            page.locator(cy("looker-checkbox-")).first.click()  # deselect
            page.wait_for_timeout(1000)


def test_marking_a_frame_relevant_changes_the_metrics_in_the_lab_panel(app, judged):
    server, browser = app
    page, session = browser.page, server.session
    dataset, frame_at = judged
    with step("lab-panel", browser):
        page.goto(server.url)
        page.wait_for_selector(cy("looker"))
        dismiss_popups(page)
        page.locator(cy("new-panel-btn")).first.click()
        page.locator(cy("new-panel-option-lab_panel")).click()
        panel = page.locator(PANEL)
        panel.get_by_text("2 judged queries", exact=False).first.wait_for()
        panel.locator("table").first.wait_for()
        before = panel.inner_text()
        assert "0.750" in before, before  # transcripts' Recall@1 and @5
        browser.screenshot("10-lab-before")
    with step("lab-select", browser):
        chosen = _select_first_frame(page, session)
        assert chosen != frame_at[10]  # not the ship's own frame
        mark = panel.get_by_role("button", name="Mark 1 selected relevant")
        wait_for(mark.is_enabled, 30, "the mark button to count the selection", page)
    with step("lab-mark-relevant", browser):
        query = panel.locator("input").first
        query.fill(SHIP)
        query.press("Tab")
        page.wait_for_timeout(1000)  # the panel state takes the query
        mark.click()
        panel.get_by_text("Marked 1 frame(s) relevant").wait_for(timeout=120_000)
        wait_for(
            lambda: "0.500" in panel.inner_text(), 120, "the metrics to change", page
        )
        after = panel.inner_text()
        assert "0.750" not in after and after != before, after
        browser.screenshot("10-lab-after")
    entry = next(e for e in load_judgments(dataset) if e["query"] == SHIP)
    assert chosen in {t.get("sample_id") for t in entry["relevant"]}, entry
    assert last_report(dataset).row("transcripts")["recall@1"] == pytest.approx(0.5)
