"""The operators' forms and execution options, through FiftyOne's machinery.

Forms are resolved the way the App asks for them (``resolve_type``), and
execution options the way the App asks for its "run now / in background"
choice (``resolve_execution_options``).
"""

import asyncio
import os
import uuid
from pathlib import Path

import fiftyone as fo
import fiftyone.operators.types as types
import pytest
from fiftyone.operators.executor import (
    ExecutionContext,
    Executor,
    resolve_execution_options,
    resolve_type,
)
from fiftyone.operators.registry import OperatorRegistry

INDEX_OPERATORS = [
    "index_frames",
    "sync_frame_index",
    "search_frames",
    "index_transcripts",
    "search_transcript",
    "ask_question",
]


@pytest.fixture
def dataset():
    dataset = fo.Dataset(f"vrag-forms-{uuid.uuid4().hex[:8]}")
    dataset.add_samples(
        [
            fo.Sample(filepath=f"/frames/{i}.jpg", video_id="v", timestamp=float(i))
            for i in range(3)
        ]
    )
    # What a built transcript index records (the forms read only this)
    dataset.info["vrag_transcript_index"] = {
        "text_model": "minilm",
        "num_segments": 3,
        "collection_name": "vrag_forms_transcripts",
    }
    dataset.save()
    yield dataset
    dataset.delete()


def _request(dataset, params):
    return {
        "dataset_name": dataset.name if dataset is not None else None,
        "params": params,
    }


def _form(plugin, name, dataset, params):
    """The input form as the App gets it."""
    prop = asyncio.run(
        resolve_type(OperatorRegistry(), f"{plugin}/{name}", _request(dataset, params))
    )
    assert isinstance(prop, types.Property), getattr(prop, "error", prop)
    return prop.type.properties


def _options(plugin, name, dataset, params):
    """The execution options as the App gets them."""
    options = asyncio.run(
        resolve_execution_options(
            OperatorRegistry(), f"{plugin}/{name}", _request(dataset, params)
        )
    )
    assert hasattr(options, "to_dict"), getattr(options, "error", options)
    return options


def test_every_operator_of_fiftyone_yml_is_registered_under_its_name(
    plugin_loaded,
):
    import fiftyone.operators as foo
    import yaml

    manifest = yaml.safe_load((Path(__file__).parents[1] / "fiftyone.yml").read_text())
    for name in manifest["operators"]:
        assert foo.get_operator(f"{plugin_loaded}/{name}").name == name


@pytest.mark.parametrize("name", INDEX_OPERATORS)
def test_every_index_operator_offers_the_same_milvus_choice(
    plugin_loaded, dataset, name
):
    form = _form(plugin_loaded, name, dataset, {})
    reference = _form(plugin_loaded, "index_frames", dataset, {})["milvus_uri"]
    assert "milvus_uri" in form
    assert form["milvus_uri"].to_json() == reference.to_json()  # the same field
    assert "VRAG_MILVUS_URI" in reference.view.description
    assert not form["milvus_uri"].invalid

    bad = _form(plugin_loaded, name, dataset, {"milvus_uri": "ftp://nowhere"})
    assert bad["milvus_uri"].invalid
    assert "Unsupported Milvus URI" in bad["milvus_uri"].error_message


def test_import_form_with_base_model_validates_without_writing_files(
    tmp_path, monkeypatch
):
    # The operator itself, not through the registry: loading the plugin
    # starts the managed Milvus store, in whatever VRAG_HOME is set.
    from operators.import_videos import ImportVideos

    home = tmp_path / "home"
    monkeypatch.setenv("VRAG_HOME", str(home))
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"\0" * 16)
    params = {"paths": str(video), "backend": "faster-whisper", "model": "base"}
    form = _direct_form(ImportVideos(), params)
    assert not form["paths"].invalid and not form["model"].invalid
    assert not home.exists(), sorted(home.rglob("*"))  # nothing assembled

    params["model"] = "no-such-model"
    form = _direct_form(ImportVideos(), params)
    assert form["model"].invalid and "Choices" in form["model"].error_message


def _direct_form(operator, params):
    ctx = ExecutionContext(request_params={"params": params}, executor=Executor())
    return operator.resolve_input(ctx).type.properties


def test_import_default_runs_in_background_for_many_videos(plugin_loaded, tmp_path):
    videos = [tmp_path / f"v{i}.mp4" for i in range(4)]
    for video in videos:
        video.write_bytes(b"\0" * 16)
    few = _options(plugin_loaded, "import_videos", None, {"paths": str(videos[0])})
    many = _options(plugin_loaded, "import_videos", None, {"paths": str(tmp_path)})
    for options in (few, many):  # the user keeps the choice
        assert options.allow_immediate_execution
        assert options.allow_delegated_execution
    assert not few.default_choice_to_delegated
    assert many.default_choice_to_delegated


def test_index_default_runs_in_background_for_many_frames(plugin_loaded, dataset):
    small = _options(plugin_loaded, "index_frames", dataset, {})
    assert small.allow_delegated_execution and small.allow_immediate_execution
    assert not small.default_choice_to_delegated
    dataset.add_samples([fo.Sample(filepath=f"/frames/x{i}.jpg") for i in range(600)])
    large = _options(plugin_loaded, "index_frames", dataset, {})
    assert large.default_choice_to_delegated
    search = _options(plugin_loaded, "search_frames", dataset, {})
    assert not search.allow_delegated_execution  # an interactive search


def test_the_import_form_walks_the_file_system_once(tmp_path, monkeypatch):
    import operators.import_videos as module

    (tmp_path / "a.mp4").write_bytes(b"\0")
    calls = []

    def counting(paths):
        calls.append(paths)
        return real(paths)

    real = module.find_videos
    monkeypatch.setattr(module, "find_videos", counting)
    params = {"paths": str(tmp_path), "model": "tiny.en"}
    ctx = ExecutionContext(request_params={"params": params}, executor=Executor())
    operator = module.ImportVideos()
    operator.resolve_input(ctx)
    operator.resolve_execution_options(ctx)
    assert len(calls) == 1
    _direct_form(operator, {**params, "paths": str(tmp_path / "a.mp4")})
    assert len(calls) == 2  # other paths: a new walk


def test_a_workbench_error_is_shown_not_raised(plugin_loaded, dataset, monkeypatch):
    import fiftyone.operators as foo

    monkeypatch.delenv("VRAG_VLLM_BASE_URL", raising=False)
    result = foo.execute_operator(
        f"{plugin_loaded}/ask_question",
        ctx={"dataset": dataset, "params": {"question": "What is shown?"}},
    )
    assert result.error is None  # no traceback
    assert "No vLLM endpoint is configured" in result.result["error"]
    notices = [r for r in result.executor._requests if r.operator_uri == "notify"]
    assert [n.params["variant"] for n in notices] == ["error"]

    outputs = asyncio.run(
        resolve_type(
            OperatorRegistry(),
            f"{plugin_loaded}/ask_question",
            {**_request(dataset, {}), "target": "outputs", "results": result.result},
        )
    ).type.properties
    assert list(outputs) == ["error"]  # the error alone, not empty answer fields


def test_ask_panel_marks_the_frames_the_prompt_planner_sends(tmp_path):
    """Six selected frames, one file missing, four images per request: the
    planner sends frames 1, 3, 4 and 5 as images; 6 goes as text only."""
    from support.execution import run_panel_event
    from support.tiny_models import make_frame_images

    from panels.ask import AskPanel

    paths = make_frame_images(tmp_path, 6)
    dataset = fo.Dataset(f"vrag-panel-{uuid.uuid4().hex[:8]}")
    try:
        dataset.add_samples(
            [
                fo.Sample(filepath=p, video_path="/v/clip.mp4", timestamp=float(i))
                for i, p in enumerate(paths)
            ]
        )
        os.remove(paths[1])
        selected = dataset.values("id")
        _, output = run_panel_event(AskPanel(), dataset, "on_load", selected=selected)
        captions = {
            int(text[3]): text for text in _strings(output) if text.startswith("**[")
        }
        assert sorted(captions) == [1, 2, 3, 4, 5, 6]
        assert "missing" in captions[2]  # sent as text: no file
        images = [n for n, t in captions.items() if " · image " in t]
        assert images == [1, 3, 4, 5]  # frame 5 takes the image slot frame 2 left
        assert " · text only" in captions[6] and "at most 4 images" in captions[6]
    finally:
        dataset.delete()


def _strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)
