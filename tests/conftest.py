"""Shared fixtures: real services, started once per test session.

- ``local_store``: Settings of the managed Milvus Lite server, in a temp
  workbench home
- ``real_milvus``: Settings of a real Milvus standalone server (PyPI
  ``milvus==2.3.5``)

Both are :class:`plugin.settings.Settings`, passed as ``settings=`` to the
core; ``.milvus()`` gives the connection.

A service that cannot start FAILS the tests that need it, with the reason.
"""

import os
import tempfile
import uuid

import pytest
from support.ports import stable_free_port

# Isolate the workbench's files (local store, frames) from the user's.
_SESSION_HOME = tempfile.mkdtemp(prefix="vrag-test-home-")
os.environ.setdefault("VRAG_HOME", _SESSION_HOME)
# Our own MongoDB for the session: isolated from the user's datasets and from
# other FiftyOne installs' database on this machine.
os.environ.setdefault("FIFTYONE_DATABASE_DIR", os.path.join(_SESSION_HOME, "mongo"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


os.environ.setdefault(
    "VRAG_MILVUS_LITE_PORT", str(stable_free_port())
)  # restarted in tests


@pytest.fixture(scope="session", autouse=True)
def _stop_session_local_store():
    """Whatever started the session's local store (a fixture, the plugin's
    register() in a subprocess), it stops when the session ends."""
    yield
    from plugin.milvus import LocalMilvusServer

    LocalMilvusServer().stop()


@pytest.fixture(scope="session")
def local_store():
    """The managed local Milvus store (a Milvus Lite server), started once."""
    from plugin.settings import Settings

    settings = Settings.load(milvus_uri="local")
    settings.milvus()  # starts it
    return settings


@pytest.fixture(scope="session")
def real_milvus():
    """A real Milvus standalone server; yields Settings pointing at it."""
    from support.milvus_server import MilvusServerError, RealMilvusServer

    from plugin.settings import Settings

    server = RealMilvusServer()
    try:
        uri = server.start()
    except MilvusServerError as e:
        pytest.fail(f"Real Milvus server unavailable: {e}", pytrace=False)
    yield Settings.load(milvus_uri=uri)
    server.stop()


@pytest.fixture(params=["local_store", "real_milvus"])
def any_store(request):
    """Runs a test against BOTH the managed local store and the real server."""
    return request.getfixturevalue(request.param)


@pytest.fixture
def dataset_name():
    """A unique dataset name; the dataset is deleted after the test."""
    import fiftyone as fo

    name = f"vrag-test-{uuid.uuid4().hex[:10]}"
    yield name
    for created in (name, f"{name}-videos"):  # and its companion video dataset
        if fo.dataset_exists(created):
            fo.delete_dataset(created)


@pytest.fixture(scope="session")
def plugin_loaded(tmp_path_factory):
    """FiftyOne's plugin machinery pointed at this repo (as after
    `fiftyone plugins download`); yields the plugin's operator URI prefix."""
    import fiftyone as fo

    plugins_dir = tmp_path_factory.mktemp("plugins")
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    os.symlink(repo, plugins_dir / "video-rag", target_is_directory=True)
    previous = fo.config.plugins_dir
    fo.config.plugins_dir = str(plugins_dir)
    yield "@vrag/video-rag"
    fo.config.plugins_dir = previous


_VLLM = {}


def _background_vllm():
    """The session's ONE real vLLM CPU server, booting in a thread: it takes
    minutes on 2 cores, so it starts when the tests that need it are
    collected and loads while the other tests run."""
    if "server" not in _VLLM:
        from support.app_browser import BackgroundVLLM

        _VLLM["server"] = BackgroundVLLM().start()
    return _VLLM["server"]


def pytest_collection_modifyitems(session, config, items):
    if any(item.get_closest_marker("vllm") for item in items):
        _background_vllm()


@pytest.fixture(scope="session")
def vllm_background():
    """The booting server (not waited for): its ``env()`` points the App at it."""
    server = _background_vllm()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def vllm_server(vllm_background):
    """The started vLLM server (base_url, api_key, model_name, max_images)."""
    timeout = float(os.environ.get("VRAG_VLLM_START_TIMEOUT", "900"))
    try:
        return vllm_background.wait(timeout)
    except Exception as e:
        pytest.fail(f"Real vLLM server unavailable: {e}", pytrace=False)
