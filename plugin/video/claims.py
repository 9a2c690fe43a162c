"""Per-video claims: two processes importing the same video do it once.

A claim is a key ``<video_id>`` in the execution store ``vrag_video_claims``
(scoped to the frames dataset), set atomically (``set_if_absent``) by the
process that imports the video and removed when it is done. Another process
that wants the same video waits for the claim to go, then finds the video
complete. A claim whose process died (kill -9) is taken over: it is stale
when its process is gone (same host) or has not refreshed it for
:data:`STALE_S` seconds.
"""

import contextlib
import os
import socket
import time
import uuid

from fiftyone.operators.store import ExecutionStore

from plugin.errors import VideoReadError

STORE_NAME = "vrag_video_claims"
STALE_S = 600.0  # a claim not refreshed for this long is abandoned
WAIT_S = 3600.0  # longest wait for another process's import of a video
_POLL_S = 0.5


def _store(dataset):
    return ExecutionStore.create(STORE_NAME, dataset_id=dataset._doc.id)


def _mine():
    return {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "token": uuid.uuid4().hex,
        "at": time.time(),
    }


def _is_stale(claim):
    if time.time() - claim.get("at", 0) > STALE_S:
        return True
    if claim.get("host") != socket.gethostname():
        return False
    try:
        os.kill(claim["pid"], 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False


@contextlib.contextmanager
def claim_video(dataset, video_id, wait_s=WAIT_S):
    """Holds the claim on ``video_id`` for the ``with`` block.

    Yields True when this process waited for another one's import of the
    same video (the caller then re-reads what that import stored).

    Raises:
        VideoReadError: if another live process still holds it after ``wait_s``
    """
    store, mine, waited = _store(dataset), _mine(), False
    deadline = time.monotonic() + wait_s
    while not store.set_if_absent(video_id, mine):
        held = store.get(video_id)
        if held is not None and _is_stale(held):
            store.compare_and_set(video_id, held, mine)  # take it over
            if _token(store.get(video_id)) == mine["token"]:
                break
            continue
        if time.monotonic() > deadline:
            raise VideoReadError(
                f"being imported by another process (pid {held and held.get('pid')}"
                f" on {held and held.get('host')}); try again when it is done"
            )
        waited = True
        time.sleep(_POLL_S)
    try:
        yield waited
    finally:
        if _token(store.get(video_id)) == mine["token"]:  # refreshed: "at" differs
            store.delete(video_id)


def _token(claim):
    return claim.get("token") if claim else None


def refresh(dataset, video_id):
    """Marks the claim on ``video_id`` as alive (long imports call this)."""
    store = _store(dataset)
    held = store.get(video_id)
    if held is not None and held.get("pid") == os.getpid():
        store.compare_and_set(video_id, held, {**held, "at": time.time()})
