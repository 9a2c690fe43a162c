"""The frame map in the FiftyOne App's Embeddings panel, in headless Chromium.

As a person uses it: the operator **Video RAG: map frames** maps the frame
index (UMAP) and opens the Embeddings panel; the map shows its points,
colored by video; a lasso over the left half of the plot narrows the grid to
the frames under it; **select the frames shown (for Ask)** selects them, and
the Ask panel takes them as its evidence.

Its own module (not ``test_app_browser.py``): that module is marked ``vllm``
as a whole, which boots the vLLM CPU server (minutes on 2 cores); this test
needs no model server. Screenshots go to ``tests/artifacts/screenshots/``
(``09-frame-map*.png``); the README's ``docs/images/app-frame-map.jpg`` is
the lasso one.
"""

import io
import uuid

import fiftyone as fo
import numpy as np
import pytest
from PIL import Image
from support.app_browser import AppServer, Browser, plugins_dir_with_repo, running, step
from support.app_page import cy, dismiss_popups, wait_for
from support.synth import Scene, make_narrated_video, solid_image

from plugin.demo import SAMPLE_VIDEO
from plugin.models.image_text import OFFLINE_MODEL
from plugin.retrieval.frame_index import build_frame_index
from plugin.video.importer import import_videos

pytestmark = [pytest.mark.browser]

KEY = "frame_sim"
MAP_KEY = "frame_sim_map"
FRAMES = 25 + 10  # the sample video and a 10 s one, at 1 FPS
PANEL = '[data-cy="panel-content-Embeddings"]'


@pytest.fixture
def frames(tmp_path, local_store):
    """Two videos at 1 FPS (five scenes, and two colours), frame-indexed
    (no transcripts: the map does not need them)."""
    second = tmp_path / "colours.mp4"
    scenes = [
        Scene(solid_image(color, (320, 240)), duration=5.0)
        for color in ((200, 30, 30), (30, 30, 200))
    ]
    make_narrated_video(second, scenes, audio=None)
    dataset = fo.Dataset(f"vrag-map-{uuid.uuid4().hex[:8]}")
    paths = [str(SAMPLE_VIDEO), str(second)]
    report = import_videos(paths, dataset=dataset, fps=1.0, transcribe=False)
    assert not report.failed, report.summary_lines()
    assert len(dataset) == FRAMES
    build_frame_index(dataset, model=OFFLINE_MODEL, brain_key=KEY, settings=local_store)
    yield dataset
    dataset.delete()


@pytest.fixture
def app(frames, plugin_loaded, tmp_path):
    server = AppServer(
        frames,
        plugins_dir_with_repo(tmp_path / "app"),
        env={"FIFTYONE_DO_NOT_TRACK": "true"},
    )
    with running("The App or Chromium", server, Browser()) as started:
        yield started


def _run_operator(page, label):
    """Opens the operator browser (its key: `) and picks ``label``."""
    page.keyboard.press("`")
    page.locator(cy("operators-browser-search")).fill("Video RAG")
    page.locator(cy("operators-browser")).get_by_text(label, exact=True).click()
    form = page.locator(cy("operators-prompt-modal"))
    execute = form.get_by_role("button", name="Execute")
    wait_for(execute.is_enabled, 60, f"the form of {label!r} to validate", page)
    execute.click()
    return form


def _lasso_left_half(page, canvas):
    """Drags a lasso around the left half of the plot."""
    box = canvas.bounding_box()
    x0, y0, w, h = box["x"], box["y"], box["width"], box["height"]
    middle, inset = x0 + w / 2, 6
    path = [
        (middle, y0 + inset),
        (x0 + inset, y0 + inset),
        (x0 + inset, y0 + h - inset),
        (middle, y0 + h - inset),
        (middle, y0 + h / 2),
    ]
    page.mouse.move(middle, y0 + h / 2)
    page.mouse.down()
    for x, y in path:
        page.mouse.move(x, y, steps=12)
    page.mouse.up()


def _drawn_pixels(canvas):
    """How many pixels of the plot differ from its background colour."""
    pixels = np.asarray(Image.open(io.BytesIO(canvas.screenshot())).convert("RGB"))
    background = np.median(pixels.reshape(-1, 3), axis=0)
    return int((np.abs(pixels - background).sum(axis=2) > 60).sum())


def test_the_frame_map_in_the_embeddings_panel_drives_the_grid(app, frames):
    server, browser = app
    page, session = browser.page, server.session
    with step("map-operator", browser):
        page.goto(server.url)
        page.wait_for_selector(cy("looker"))
        dismiss_popups(page)
        form = _run_operator(page, "Video RAG: map frames")
        form.get_by_text("Frames on the map").wait_for(timeout=300_000)
        assert str(FRAMES) in form.inner_text(), form.inner_text()
        form.get_by_role("button", name="Close").click()
        frames.reload()  # the App server wrote the run
        config = frames.get_brain_info(MAP_KEY).config
        assert (config.method, config.embeddings_field) == ("umap", f"{KEY}_embedding")
    with step("map-panel", browser):
        panel = page.locator(PANEL)  # the operator opened it
        dismiss_popups(page)
        panel.get_by_text(MAP_KEY, exact=True).click()
        panel.get_by_text(f"{FRAMES} points").wait_for()
        panel.get_by_text("None", exact=True).click()  # "Color by"
        page.get_by_role("option", name="video_title", exact=True).click()
        canvas = panel.locator("canvas")
        wait_for(lambda: _drawn_pixels(canvas) > 50, 60, "the points to be drawn", page)
        browser.screenshot("09-frame-map")
    with step("map-lasso", browser):
        panel.get_by_text("Select", exact=True).click()
        _lasso_left_half(page, canvas)
        shown = wait_for(
            lambda: (
                0 < page.locator(cy("looker")).count() < FRAMES
                and page.locator(cy("looker")).count()
            ),
            60,
            "the grid to show the lassoed frames",
            page,
        )
        panel.get_by_text(f"{shown} selected · {FRAMES} points").wait_for()
        page.wait_for_timeout(1500)  # thumbnails finish drawing
        browser.screenshot("09-frame-map-lasso")
    with step("map-select-for-ask", browser):
        form = _run_operator(page, "Video RAG: select the frames shown (for Ask)")
        form.get_by_role("button", name="Close").click()
        wait_for(lambda: len(session.selected) == shown, 60, "the selection", page)
        results = frames.load_brain_results(MAP_KEY)
        x = dict(zip(results.sample_ids, results.points[:, 0]))
        inside = [x[i] for i in session.selected]
        outside = [x[i] for i in set(x) - set(session.selected)]
        # A half-plane lasso takes the points on one side of a vertical line
        assert max(inside) < min(outside) or min(inside) > max(outside)
        page.locator(cy("new-panel-btn")).first.click()
        page.locator(cy("new-panel-option-ask_panel")).click()
        ask = page.locator(cy("panel-content-ask_panel"))
        ask.get_by_text(f"Evidence (selected frames, {shown} items)").wait_for()
