"""A full disk under the frames folder: the import fails cleanly.

The frames folder is a real, size-limited file system: a 48 KB tmpfs
mounted for the test (this needs root, as in CI's container; without it the
test fails saying so, it never skips). The disk fills up while the frames
are written (a real ENOSPC from the kernel): the video is reported failed
with the reason, nothing of it is half-imported, and once there is room the
same import succeeds.
"""

import os
import shutil
import subprocess
import uuid

import fiftyone as fo
import pytest
from support.synth import Scene, make_narrated_video, solid_image

from plugin.video.importer import import_videos
from plugin.video.transcripts import load_video_records

SMALL = "48k"  # a few 320x240 JPEGs fit, not the 40 the video gives


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    path = tmp_path_factory.mktemp("disk-video") / "twenty_seconds.mp4"
    scene = Scene(solid_image((200, 30, 30), size=(320, 240)), "", 20.0)
    make_narrated_video(path, [scene], size=(320, 240), audio=None)
    return path


@pytest.fixture
def full_disk(tmp_path):
    """A folder on a tiny file system of its own."""
    folder = tmp_path / "small-disk"
    folder.mkdir()
    if os.geteuid() != 0:
        pytest.fail(
            "Mounting a size-limited tmpfs needs root here; run the suite as root "
            "or in a container (CI does)",
            pytrace=False,
        )
    mount = ["mount", "-t", "tmpfs", "-o", f"size={SMALL}", "tmpfs", str(folder)]
    done = subprocess.run(mount, capture_output=True, text=True)
    assert done.returncode == 0, f"cannot mount a tmpfs: {done.stderr}"
    yield folder
    subprocess.run(["umount", "-l", str(folder)], check=False)


def _import(video, name, frames_dir):
    return import_videos(
        [str(video)], dataset=name, frames_dir=str(frames_dir), fps=2, transcribe=False
    )


def test_a_full_frames_disk_fails_the_video_and_imports_nothing_of_it(
    video, full_disk, tmp_path
):
    name = f"vrag-faults-disk-{uuid.uuid4().hex[:8]}"
    try:
        report = _import(video, name, full_disk)
        [result] = report.videos
        assert result.status == "failed"
        assert "No space left on device" in result.message
        dataset = fo.load_dataset(name)
        assert len(dataset) == 0  # no half-imported frames
        assert not any(load_video_records(dataset).values())  # no record
        # With room again (another frames folder), the same import succeeds
        roomy = tmp_path / "roomy"
        report = _import(video, name, roomy)
        assert [v.status for v in report.videos] == ["imported"]
        assert len(dataset) == report.videos[0].num_frames == 40
    finally:
        if fo.dataset_exists(name):
            fo.delete_dataset(name)


def test_a_full_frames_disk_names_the_folder_and_frees_what_it_wrote(video, full_disk):
    name = f"vrag-faults-disk-{uuid.uuid4().hex[:8]}"
    try:
        [result] = _import(video, name, full_disk).videos
        assert str(full_disk) in result.message
        assert not any(p.is_file() for p in full_disk.rglob("*"))
        assert shutil.disk_usage(full_disk).used < 8192
    finally:
        if fo.dataset_exists(name):
            fo.delete_dataset(name)
