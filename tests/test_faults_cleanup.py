"""Deleting a dataset leaves nothing behind; bad ids and rates are refused.

FiftyOne's own ``fo.delete_dataset`` leaves the frame JPEGs and the Milvus
collections (issue #16 case 8): ``python -m plugin.cleanup`` finds and
removes them (with a dry run), and our ``delete_dataset`` removes
everything at once. Nothing of another dataset is ever touched.
"""

import fiftyone as fo
import pytest
from support import faults
from support.faults import make_frames_dataset, managed_settings, with_credentials

from plugin import cleanup
from plugin.errors import InvalidInputError, StoreUnreachableError
from plugin.milvus import LocalMilvusServer
from plugin.process import free_port
from plugin.retrieval.frame_index import build_frame_index
from plugin.retrieval.frame_search import hits_view
from plugin.retrieval.hits import FrameHit, read_frames
from plugin.retrieval.transcript_index import build_transcript_index
from plugin.settings import Settings
from plugin.video.importer import import_videos


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    home = tmp_path_factory.mktemp("cleanup-home")
    settings = managed_settings(home)
    yield settings
    LocalMilvusServer(settings=settings).stop()


def _indexed_dataset(settings, model, collection_name=None):
    """A dataset with both indexes, its frames in ``<home>/frames/<name>/``."""
    dataset = make_frames_dataset(settings.home_path / "frames")
    build_frame_index(
        dataset, model=model, collection_name=collection_name, settings=settings
    )
    build_transcript_index(dataset, settings=settings)
    return dataset


def _collections(settings):
    return set(settings.milvus().client().list_collections())


def test_cleanup_after_fiftyones_delete_dataset(store, tmp_path_factory, capsys):
    model = faults.tiny_clip(tmp_path_factory)
    keep = _indexed_dataset(store, model)
    gone = _indexed_dataset(store, model, collection_name="my_custom_frames")
    kept_collections = cleanup.collections_of(keep)
    gone_collections = cleanup.collections_of(gone)
    assert "my_custom_frames" in gone_collections  # found through the ledger
    gone_frames = store.home_path / "frames" / gone.name
    fo.delete_dataset(gone.name)  # FiftyOne's own: our files stay behind
    assert gone_collections <= _collections(store) and gone_frames.is_dir()

    found = cleanup.find_orphans(store)  # the dry run
    assert set(found.collections) == gone_collections
    assert found.frame_dirs == [str(gone_frames)]
    assert gone_collections <= _collections(store)  # nothing removed yet

    removed = cleanup.remove_orphans(found, store)
    assert set(removed.collections) == gone_collections
    assert not gone_frames.exists()
    assert not gone_collections & _collections(store)
    assert kept_collections <= _collections(store)  # the other dataset's stay
    assert (store.home_path / "frames" / keep.name).is_dir()
    assert not cleanup.find_orphans(store)
    keep.delete()


def test_the_command_line_dry_run_lists_and_removes_nothing(
    store, tmp_path_factory, monkeypatch, capsys
):
    model = faults.tiny_clip(tmp_path_factory)
    dataset = _indexed_dataset(store, model)
    names = cleanup.collections_of(dataset)
    fo.delete_dataset(dataset.name)
    monkeypatch.setenv("VRAG_HOME", store.home)
    monkeypatch.setenv("VRAG_MILVUS_LITE_PORT", str(store.milvus_lite_port))
    monkeypatch.setenv("VRAG_MILVUS_URI", "local")
    assert cleanup.main(["--dry-run"]) == 0
    listed = capsys.readouterr().out
    assert all(f"orphan collection {name!r}" in listed for name in names)
    assert names <= _collections(store)
    assert cleanup.main([]) == 0
    assert "removed collection" in capsys.readouterr().out
    assert not names & _collections(store)


def test_our_delete_dataset_removes_everything_it_owns(store, tmp_path_factory):
    model = faults.tiny_clip(tmp_path_factory)
    other = _indexed_dataset(store, model)
    dataset = _indexed_dataset(store, model)
    names = cleanup.collections_of(dataset)
    result = cleanup.delete_dataset(dataset.name, store)
    assert set(result["collections"]) == names
    assert not fo.dataset_exists(result["dataset"])
    assert not (store.home_path / "frames" / result["dataset"]).exists()
    assert not names & _collections(store)
    assert cleanup.collections_of(other) <= _collections(store)
    assert not cleanup.find_orphans(store)
    with pytest.raises(InvalidInputError, match="no dataset named"):
        cleanup.delete_dataset(result["dataset"], store)
    other.delete()


def test_delete_dataset_with_the_store_down_deletes_nothing(tmp_path_factory):
    root = tmp_path_factory.mktemp("cleanup-remote")
    server = LocalMilvusServer(root=root / "store", port=free_port())
    settings = Settings.load(milvus_uri=with_credentials(server.ensure_running()))
    model = faults.tiny_clip(tmp_path_factory)
    dataset = make_frames_dataset(root / "frames")
    build_frame_index(dataset, model=model, settings=settings)
    names = cleanup.collections_of(dataset)
    server.stop()
    try:
        with pytest.raises(StoreUnreachableError, match="Nothing was deleted") as e:
            cleanup.delete_dataset(dataset.name, settings)
        assert faults.SECRET not in e.value.message
        assert fo.dataset_exists(dataset.name)
        cleanup.delete_dataset(dataset.name, settings, force=True)  # anyway
        assert not fo.dataset_exists(dataset.name)
        server.ensure_running()
        found = cleanup.find_orphans(settings)  # ... and cleanup finds them
        assert set(found.collections) == names
        cleanup.remove_orphans(found, settings)
        assert not names & set(settings.milvus().client().list_collections())
    finally:
        server.stop()


def test_malformed_sample_ids_are_listed_not_a_raw_invalid_id(tmp_path):
    """Issue #16 case 8: bson's raw InvalidId before."""
    dataset = make_frames_dataset(tmp_path)
    good = dataset.first().id
    bad = ["nope", "123", good[:-1] + "z"]
    try:
        with pytest.raises(InvalidInputError, match="'nope', '123'") as caught:
            read_frames(dataset, [good, *bad])
        assert all(repr(b) in caught.value.message for b in bad)
        hits = [FrameHit(i, 0.0, n) for n, i in enumerate([good, "nope"])]
        with pytest.raises(InvalidInputError, match="'nope'"):
            hits_view(dataset, hits)
        from plugin.answer import ask

        settings = Settings.load(vllm_base_url="http://127.0.0.1:9/v1")
        with pytest.raises(InvalidInputError, match="'nope'"):
            ask(dataset, "What is shown?", sample_ids=[good, "nope"], settings=settings)
    finally:
        dataset.delete()


@pytest.mark.parametrize("fps", [1000, 61, float("nan"), "10", -1, 0])
def test_a_frame_rate_out_of_range_is_refused_before_any_work(fps, tmp_path):
    """fps=1000 used to import and then call the sound file "truncated?"."""
    with pytest.raises(InvalidInputError, match="Frame rate must be a number"):
        import_videos([str(tmp_path)], dataset=f"never-{free_port()}", fps=fps)
