"""The FiftyOne App, driven as a person uses it, in headless Chromium.

One App server (``fo.launch_app(remote=True)``, the plugin loaded from a
plugins dir that links to this repo) and one browser serve the whole module;
the tests run in order and build on each other, like a session at the App:

1. the grid shows the frame samples of the imported sample video
2. the operator browser lists the plugin's operators
3. the import operator's form imports a second video: its frames appear
4. a text query in the App's search ("sort by text similarity", over a
   frame index built with the offline model) puts the horse frame first
5. the Ask panel shows the evidence (the selected frames), returns an answer
   from the REAL vLLM test server, and a citation opens its clip (moment)
6. a text search, then "open moments": the top hit plays as a clip of its
   video from inside its span, its transcript label on the player

Every step saves a screenshot in ``tests/artifacts/screenshots/``; a failing
step saves ``FAILED-<step>.png`` there and names it in the failure message.
The vLLM server loads in a thread while steps 1-4 run.
"""

import uuid

import fiftyone as fo
import fiftyone.operators as foo
import pytest
from support.app_browser import AppServer, Browser, plugins_dir_with_repo, running, step
from support.app_page import cy, dismiss_popups, wait_for
from support.synth import Scene, make_narrated_video, solid_image

from plugin.demo import SAMPLE_VIDEO
from plugin.models.image_text import OFFLINE_MODEL
from plugin.retrieval.frame_index import build_frame_index
from plugin.video import videos

pytestmark = [pytest.mark.browser, pytest.mark.vllm]

PLUGIN = "@vrag/video-rag"
BRAIN_KEY = "frame_sim"
QUERY = "a photo of a horse"
QUESTION = "What animal is shown in the first frame?"
SAMPLE_FRAMES = 5  # 25 s at 0.2 FPS: horse, automobile, ship, airplane, cat
SECOND_FRAMES = 2  # the second video: 10 s at 0.2 FPS
VLLM_WAIT_S = 420  # on top of the time steps 1-4 took


# -- fixtures ---------------------------------------------------------------


@pytest.fixture(scope="module")
def vllm(vllm_background):
    """The session's real vLLM CPU test server, loading in a thread."""
    return vllm_background


@pytest.fixture(scope="module")
def frames(vllm, local_store):
    """The sample video imported by the plugin's import operator, and a frame
    index built with the offline model (or the reason it could not be)."""
    name = f"vrag-app-{uuid.uuid4().hex[:8]}"
    result = foo.execute_operator(
        f"{PLUGIN}/import_videos",
        ctx={"params": {"paths": str(SAMPLE_VIDEO), "dataset_name": name}},
    )
    assert result.error is None, f"import operator failed: {result.error}"
    assert result.result["num_failed"] == 0, result.result["summary"]
    dataset = fo.load_dataset(name)
    index_error = None
    try:
        build_frame_index(
            dataset, model=OFFLINE_MODEL, brain_key=BRAIN_KEY, settings=local_store
        )
    except Exception as e:  # the search step fails with this reason
        index_error = f"{type(e).__name__}: {e}"
    yield dataset, index_error
    if fo.dataset_exists(name):
        fo.delete_dataset(name)


@pytest.fixture(scope="module")
def app(frames, vllm, plugin_loaded, tmp_path_factory):
    dataset, _ = frames
    plugins = plugins_dir_with_repo(tmp_path_factory.mktemp("app"))
    server = AppServer(
        dataset, plugins, env={**vllm.env(), "FIFTYONE_DO_NOT_TRACK": "true"}
    )
    with running("The FiftyOne App", server):
        yield server


@pytest.fixture(scope="module")
def browser(app):
    with running("Headless Chromium", Browser()) as (chromium,):
        yield chromium


@pytest.fixture(scope="module")
def second_video(tmp_path_factory):
    """A silent 10 s video of two coloured scenes."""
    path = tmp_path_factory.mktemp("video") / "second.mp4"
    make_narrated_video(
        path,
        [
            Scene(solid_image((200, 30, 30), (320, 240)), duration=5.0),
            Scene(solid_image((30, 30, 200), (320, 240)), duration=5.0),
        ],
        audio=None,
    )
    return path


# -- helpers ----------------------------------------------------------------


def _shot(browser, name):
    """A screenshot of a main screen, without the first-visit popups."""
    dismiss_popups(browser.page)
    return browser.screenshot(name)


def _grid_count(page):
    return page.locator(cy("looker")).count()


def _show_all_frames(page, session):
    """Clears the view bar (the import leaves a grouped view) and waits for
    the flat grid."""
    if session.view is not None:
        page.locator(cy("btn-clear-view-bar")).click()
        wait_for(lambda: session.view is None, 60, "the view to clear", page)


def _select_looker(page, index):
    looker = page.locator(cy("looker")).nth(index)
    looker.hover()
    page.locator(cy("looker-checkbox-")).nth(index).click()


def _select_frames_synced(page, session, indexes, attempts=3):
    """Selects grid frames until the Python session sees the selection: the
    App -> session sync right after a page reload is sometimes lost, so a
    selection that does not arrive is cleared and made again."""
    for attempt in range(attempts):
        for index in indexes:
            _select_looker(page, index)
        try:
            wait_for(
                lambda: len(session.selected) == len(indexes), 30, "selection", page
            )
            return
        except AssertionError:
            if attempt == attempts - 1:
                raise
            for index in indexes:  # deselect, then try again
                _select_looker(page, index)
            page.wait_for_timeout(1000)


# -- the steps --------------------------------------------------------------


def test_grid_shows_the_frame_samples(app, browser, frames):
    dataset, _ = frames
    page = browser.page
    with step("grid", browser):
        page.goto(app.url)
        page.wait_for_selector(cy("looker"))
        dismiss_popups(page)
        wait_for(
            lambda: _grid_count(page) == SAMPLE_FRAMES,
            60,
            f"{SAMPLE_FRAMES} frames in the grid",
            page,
        )
        assert page.url.endswith(f"/datasets/{dataset.name}"), page.url
        counts = page.locator(cy("entry-counts")).inner_text()
        assert str(SAMPLE_FRAMES) in counts, counts
        page.wait_for_timeout(1500)  # thumbnails finish drawing
        _shot(browser, "01-grid")


def test_operator_browser_lists_the_plugin_operators(browser):
    page = browser.page
    with step("operator-browser", browser):
        page.locator(cy("action-browse-operations")).click()
        ops = page.locator(cy("operators-browser"))
        ops.wait_for()
        page.locator(cy("operators-browser-search")).fill("Video RAG")
        listed = ops.inner_text()
        for label in (
            "Video RAG: import videos",
            "Video RAG: index frames in Milvus",
            "Video RAG: search frames by text",
            "Video RAG: ask a question",
        ):
            wait_for(lambda label=label: label in ops.inner_text(), 30, label, page)
        listed = ops.inner_text()
        assert "stream an answer" not in listed  # unlisted: panel-internal
        _shot(browser, "02-operator-browser")


def test_import_form_adds_frames_of_a_second_video(app, browser, frames, second_video):
    dataset, _ = frames
    page = browser.page
    with step("import-form", browser):
        ops = page.locator(cy("operators-browser"))
        if not ops.count():
            page.locator(cy("action-browse-operations")).click()
            page.locator(cy("operators-browser-search")).fill("Video RAG")
        ops.get_by_text("Video RAG: import videos", exact=True).click()
        form = page.locator(cy("operators-prompt-modal"))
        form.get_by_text("Frames per second").wait_for()
        form.locator("input").first.fill(str(second_video))
        # The dataset field defaults to the dataset on screen.
        dataset_input = form.get_by_label("Dataset", exact=True)
        if dataset_input.count():
            assert dataset_input.input_value() == dataset.name
        execute = form.get_by_role("button", name="Execute")
        wait_for(execute.is_enabled, 60, "the form to validate", page)
        _shot(browser, "03-import-form")
    with step("import-run", browser):
        execute.click()
        form.get_by_text("Videos that failed").wait_for(timeout=240_000)
        summary = form.inner_text()
        assert f"{SECOND_FRAMES} frames" in summary, summary
        assert "[imported]" in summary, summary
        _shot(browser, "04-import-done")
        form.get_by_role("button", name="Close").click()
        assert len(dataset.reload() or dataset) == SAMPLE_FRAMES + SECOND_FRAMES
        _show_all_frames(page, app.session)
        wait_for(
            lambda: _grid_count(page) == SAMPLE_FRAMES + SECOND_FRAMES,
            90,
            f"{SAMPLE_FRAMES + SECOND_FRAMES} frames in the grid",
            page,
        )


def test_text_search_puts_the_horse_frame_first(app, browser, frames):
    dataset, index_error = frames
    page = browser.page
    with step("text-search", browser):
        assert index_error is None, (
            f"the frame index with the offline model {OFFLINE_MODEL} could not "
            f"be built: {index_error}"
        )
        horse = dataset.match({"timestamp": 0.0, "video_path": str(SAMPLE_VIDEO)})
        assert len(horse) == 1, "the t=0 s frame of the sample video is missing"
        horse_id = horse.first().id
        _show_all_frames(page, app.session)
        page.reload()  # the App picks up the index built before it started
        page.wait_for_selector(cy("looker"))
        page.locator(cy("action-sort-by-similarity")).click()
        box = page.locator(cy("input-Type anything!"))
        box.fill(QUERY)
        box.press("Enter")
        # FiftyOne 1.22 runs the query as a "Similarity Search" run in its
        # panel; "Show results" loads the sorted frames into the grid.
        runs = page.locator(cy("panel-content-similarity_search_panel"))
        runs.get_by_text("Completed").first.wait_for(timeout=180_000)
        # force: the run card sits in a drag-and-drop wrapper marked
        # aria-disabled, which Playwright takes for a disabled button.
        runs.locator('[aria-label="Show results"]').first.click(force=True)
        wait_for(
            lambda: app.session.view is not None,
            120,
            "the App to show the search results",
            page,
        )
        ranked = app.session.view.values("id")
        assert ranked[0] == horse_id, (
            f"first result is {app.session.view.first().filepath}, not the "
            f"horse frame (t=0 s); order: {app.session.view.values('timestamp')}"
        )
        wait_for(
            lambda: _grid_count(page) == len(ranked),
            60,
            f"{len(ranked)} results in the grid",
            page,
        )
        page.wait_for_timeout(3000)  # thumbnails finish drawing
        _shot(browser, "05-text-search")


def test_ask_panel_answers_from_vllm_and_cites_frames(app, browser, frames, vllm):
    dataset, _ = frames
    page = browser.page
    session = app.session
    with step("ask-wait-vllm", browser):
        vllm.wait(VLLM_WAIT_S)
    with step("ask-evidence", browser):
        runs_tab = page.locator(cy("panel-tab-similarity_search_panel"))
        if runs_tab.count():
            runs_tab.locator('[data-testid="CloseIcon"]').click()
        _show_all_frames(page, session)
        page.reload()
        page.wait_for_selector(cy("looker"))
        wait_for(
            lambda: _grid_count(page) == SAMPLE_FRAMES + SECOND_FRAMES,
            90,
            "the full grid",
            page,
        )
        _select_frames_synced(page, session, (0, 2))
        selected = list(session.selected)
        page.locator(cy("new-panel-btn")).click()
        page.locator(cy("new-panel-option-ask_panel")).click()
        panel = page.locator(cy("panel-content-ask_panel"))
        panel.get_by_text("Evidence (selected frames, 2 items)").wait_for()
        assert "vllm serve" not in panel.inner_text()  # the endpoint is set
        assert panel.locator("img").count() == 2
        panel.locator("input").first.fill(QUESTION)
        _shot(browser, "06-ask-evidence")
    with step("ask-answer", browser):
        panel.get_by_role("button", name="Ask", exact=True).click()
        # The history lists the question once the answer is complete.
        panel.get_by_text(f"Q: {QUESTION}").wait_for(timeout=300_000)
        text = panel.inner_text()
        assert "The answer appears here" not in text, text
        errors = panel.locator(".MuiAlert-standardError")
        assert not errors.count(), errors.first.inner_text()
        _shot(browser, "07-ask-answer")
    with step("ask-citation", browser):
        # The model's answers are noise, so it may cite nothing: then the
        # evidence thumbnails, which cite the same way, are clicked.
        cites = panel.locator("button:has([data-testid='MovieIcon'])")
        target = cites.first if cites.count() else panel.locator("img").first
        cited = "citation" if cites.count() else "evidence thumbnail [1]"
        target.click()
        # The citation plays its moment: the App switches to the video
        # dataset's "moments" view, one clip of the cited frame's video.
        wait_for(
            lambda: session.view is not None and session.view.name == "moments",
            90,
            f"the {cited} to open its clip",
            page,
        )
        assert session.dataset.name == f"{dataset.name}-videos"
        clip = session.view.first()
        cited_videos = {dataset[i].video_id for i in selected}
        assert len(session.view) == 1 and clip.video_id in cited_videos
        page.wait_for_timeout(2000)  # the clip's thumbnail draws
        _shot(browser, "08-citation-opens-clip")


# Records every <video> element the page creates: FiftyOne's player decodes
# through a <video> that is never attached to the DOM.
_CAPTURE_VIDEOS = """(() => {
  const create = document.createElement.bind(document);
  window.__videos = [];
  document.createElement = function (tag, ...args) {
    const element = create(tag, ...args);
    if (String(tag).toLowerCase() === "video") window.__videos.push(element);
    return element;
  };
})()"""
_PLAYING = """() => (window.__videos || [])
  .map((v, i) => [i, v.currentTime, v.paused]).filter(([, , paused]) => !paused)"""
_TIME_OF = "i => window.__videos[i].currentTime"


def _play(page, attempts=3):
    """Presses play until a <video> plays; returns ``(index, currentTime)``."""
    page.wait_for_timeout(3000)  # the player loads the clip
    for attempt in range(attempts):
        page.keyboard.press("Space")
        try:
            playing = wait_for(lambda: page.evaluate(_PLAYING), 10, "playback", page)
            return playing[0][0], playing[0][1]
        except AssertionError:
            if attempt == attempts - 1:
                raise


def _search_in_app(page, session):
    """The App's text search over the frame index (as in step 4; the runs
    panel lists step 4's run too: wait for one more completed run, newest
    first)."""
    runs = page.locator(cy("panel-content-similarity_search_panel"))
    done_before = runs.get_by_text("Completed").count()
    page.locator(cy("action-sort-by-similarity")).click()
    box = page.locator(cy("input-Type anything!"))
    box.fill(QUERY)
    box.press("Enter")
    wait_for(
        lambda: runs.get_by_text("Completed").count() > done_before,
        180,
        "the search run to complete",
        page,
    )
    for attempt in range(3):  # a click while the card re-renders is lost
        runs.locator('[aria-label="Show results"]').first.click(force=True)
        try:
            wait_for(lambda: session.view is not None, 40, "the search results", page)
            break
        except AssertionError:
            if attempt == 2:
                raise
    # The runs panel's drag-and-drop layer covers the action bar: close it
    page.locator(cy("panel-tab-similarity_search_panel")).locator(
        '[data-testid="CloseIcon"]'
    ).click()


def test_top_hit_plays_as_a_clip_with_its_transcript(app, browser, frames):
    dataset, index_error = frames
    page, session = browser.page, app.session
    assert index_error is None, index_error
    with step("moment-search", browser):
        page.add_init_script(_CAPTURE_VIDEOS)
        page.goto(f"{app.url}datasets/{dataset.name}")
        page.wait_for_selector(cy("looker"))
        dismiss_popups(page)
        session.clear_selected()
        _search_in_app(page, session)
        top = session.view.first()
        assert top.video_path == str(SAMPLE_VIDEO) and top.timestamp == 0.0
    with step("moment-open", browser):
        page.locator(cy("action-browse-operations")).click()
        page.locator(cy("operators-browser-search")).fill("open moments")
        ops = page.locator(cy("operators-browser"))
        ops.get_by_text("Video RAG: open moments", exact=True).click()
        form = page.locator(cy("operators-prompt-modal"))
        form.get_by_text("Frames from the view").wait_for()
        form.locator("input").first.fill("1")  # the top hit only
        form.get_by_role("button", name="Execute").click()
        form.get_by_role("button", name="Close").click()
        wait_for(
            lambda: session.view is not None and session.view.name == "moments",
            90,
            "the moments view",
            page,
        )
        clip = session.view.first()
        start, end = videos.support_seconds(clip.support, clip.metadata)
        horse = clip.transcript.detections[0]  # the sentence spoken at t=0
        assert (len(session.view), clip.video_path) == (1, str(SAMPLE_VIDEO))
        assert start == 0.0 and end == pytest.approx(horse.end, abs=0.05)
        wait_for(lambda: _grid_count(page) == 1, 60, "one clip in the grid", page)
    with step("moment-play", browser):
        page.locator(cy("looker")).first.click()
        label = page.get_by_text(horse.label[:20]).first
        label.wait_for(timeout=60_000)  # the transcript label on the player
        index, first = _play(page)
        page.wait_for_timeout(1000)
        later = page.evaluate(_TIME_OF, index)
        assert start <= first <= end + 0.1, (first, start, end)
        assert first < later <= end + 0.1, (first, later, end)  # it advances
        assert label.is_visible()
        _shot(browser, "09-moment-plays")
