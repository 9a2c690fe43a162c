"""The FiftyOne App in a real (headless) browser, for end-to-end tests.

- :func:`plugins_dir_with_repo`: a plugins dir holding a symlink to this repo,
  as after ``fiftyone plugins download``
- :class:`AppServer`: ``fo.launch_app(remote=True)`` on a free port, with the
  plugin loaded in the App server process; ``session.view`` reflects what the
  App shows
- :class:`Browser`: Debian's Chromium driven by Playwright (never a browser
  download), with the flags this closed network needs and a fresh profile
- :func:`running`: starts them for a fixture (a clear failure if they do
  not start), stops them after
- :func:`step`: a named step; on failure it saves
  ``tests/artifacts/screenshots/FAILED-<name>.png`` and re-raises with that
  path in the message

Steps on the App's page: ``support.app_page``.

Only Playwright's Python package and ``/usr/bin/chromium`` are needed
(``make setup-test`` installs the latter).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from plugin.process import free_port

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "tests" / "artifacts" / "screenshots"
CHROMIUM = os.environ.get("VRAG_CHROMIUM", "/usr/bin/chromium")
PLUGIN_DIR_NAME = "video-rag"

# Without the background-networking flags, Chromium's calls home are refused
# by the closed network, many at a time, and slow everything down.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--disable-dev-shm-usage",
]

# A loaded 2-core machine: the App's first render takes many seconds.
DEFAULT_TIMEOUT_MS = 90_000


class AppBrowserError(RuntimeError):
    pass


def slug(name):
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "step"


def screenshot_path(name):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS / f"{slug(name)}.png"


def plugins_dir_with_repo(parent):
    """``parent/plugins/video-rag -> REPO``; returns the plugins dir."""
    plugins = Path(parent) / "plugins"
    plugins.mkdir(parents=True, exist_ok=True)
    link = plugins / PLUGIN_DIR_NAME
    if not link.exists():
        os.symlink(REPO, link, target_is_directory=True)
    return plugins


def wait_http_ok(url, timeout=120.0):
    """Waits until ``url`` answers 200; raises with the last error."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                if response.status == 200:
                    return
                last = f"HTTP {response.status}"
        except OSError as e:
            last = repr(e)
        time.sleep(0.5)
    raise AppBrowserError(f"{url} did not answer 200 within {timeout:.0f} s: {last}")


class AppServer:
    """The FiftyOne App server (a subprocess of ``fo.launch_app``) with the
    plugin loaded; ``session`` is the test process's view of the App."""

    def __init__(self, dataset, plugins_dir, env=None, start_timeout=180.0):
        self.dataset = dataset
        self.plugins_dir = str(plugins_dir)
        self.env = dict(env or {})
        self.start_timeout = start_timeout
        self.port = None
        self.session = None
        self.startup_seconds = None

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}/"

    def start(self):
        import fiftyone as fo

        # The App server subprocess inherits this process's environment:
        # plugins dir, the workbench home (Milvus store), the database dir,
        # the vLLM settings.
        os.environ["FIFTYONE_PLUGINS_DIR"] = self.plugins_dir
        fo.config.plugins_dir = self.plugins_dir
        os.environ.update(self.env)
        t0 = time.monotonic()
        self.port = free_port()
        self.session = fo.launch_app(
            self.dataset, port=self.port, address="127.0.0.1", remote=True
        )
        wait_http_ok(self.url, timeout=self.start_timeout)
        self.startup_seconds = time.monotonic() - t0
        return self

    def stop(self):
        if self.session is not None:
            with contextlib.suppress(Exception):
                self.session.close()
            self.session = None
        # The server subprocess exits when its parent does; stop it now so a
        # later test in this session does not find the port busy.
        with contextlib.suppress(Exception):
            import fiftyone.core.session.session as fos

            server = getattr(fos, "_server_services", {}).pop(self.port, None)
            if server is not None:
                server.stop()


class Browser:
    """Headless Debian Chromium, through Playwright's Python API."""

    def __init__(self, viewport=(1600, 1000), timeout_ms=DEFAULT_TIMEOUT_MS):
        self.viewport = viewport
        self.timeout_ms = timeout_ms
        self.user_data_dir = None
        self._pw = None
        self.context = None
        self.page = None
        self.console = []  # the page's console errors, for failure messages

    def start(self):
        if not os.path.exists(CHROMIUM):
            raise AppBrowserError(
                f"{CHROMIUM} not found: install Debian's chromium "
                "(`make setup-test`, or `apt-get install -y chromium`)."
            )
        from playwright.sync_api import sync_playwright

        self.user_data_dir = tempfile.mkdtemp(prefix="vrag-chromium-")
        self._pw = sync_playwright().start()
        width, height = self.viewport
        self.context = self._pw.chromium.launch_persistent_context(
            self.user_data_dir,
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_FLAGS,
            viewport={"width": width, "height": height},
        )
        self.context.set_default_timeout(self.timeout_ms)
        self.page = (
            self.context.pages[0] if self.context.pages else self.context.new_page()
        )
        self.page.on(
            "console",
            lambda m: self.console.append(m.text) if m.type == "error" else None,
        )
        self.page.on("pageerror", lambda e: self.console.append(str(e)))
        return self

    def stop(self):
        with contextlib.suppress(Exception):
            if self.context is not None:
                self.context.close()
        with contextlib.suppress(Exception):
            if self._pw is not None:
                self._pw.stop()
        if self.user_data_dir:
            shutil.rmtree(self.user_data_dir, ignore_errors=True)

    def screenshot(self, name):
        """Saves ``tests/artifacts/screenshots/<name>.png``; returns the path."""
        path = screenshot_path(name)
        self.page.screenshot(path=str(path))
        return path


@contextlib.contextmanager
def running(what, *services):
    """Starts ``services`` (an :class:`AppServer`, a :class:`Browser`...) in
    order and yields them; stops them all after. One that does not start
    fails the test (no traceback) with ``"<what> did not start: <error>"``."""
    import pytest

    try:
        for service in services:
            service.start()
    except Exception as e:
        for service in reversed(services):
            service.stop()
        pytest.fail(f"{what} did not start: {e}", pytrace=False)
    try:
        yield services
    finally:
        for service in reversed(services):
            service.stop()


@contextlib.contextmanager
def step(name, browser):
    """A named step of a browser test: a failure inside it saves a screenshot
    ``FAILED-<name>.png`` (and the page's HTML beside it) and re-raises as an
    AssertionError whose message names that path."""
    try:
        yield
    except Exception as e:
        shot = screenshot_path(f"FAILED-{name}")
        saved = "(no screenshot: no page)"
        if browser is not None and browser.page is not None:
            try:
                browser.page.screenshot(path=str(shot), timeout=30_000)
                saved = str(shot)
                shot.with_suffix(".html").write_text(browser.page.content())
            except Exception as shot_error:  # the page itself may be gone
                saved = f"(screenshot failed: {shot_error})"
                if "crashed" in str(shot_error):
                    saved += (
                        " - Chromium's renderer crashed; on a machine short of "
                        "memory that is the kernel's OOM killer (see dmesg)"
                    )
        console = ""
        if browser is not None and browser.console:
            console = "\nBrowser console errors (last 5):\n  " + "\n  ".join(
                c[:300] for c in browser.console[-5:]
            )
        raise AssertionError(
            f"Browser step {name!r} failed: {type(e).__name__}: {e}\n"
            f"Screenshot: {saved}{console}"
        ) from e


class BackgroundVLLM:
    """The REAL vLLM CPU test server (``support.vllm_server.VLLMServer``: the
    tiny Pixtral), started in a thread: 20-30 s on 2 quiet cores, minutes on a
    busy machine, so the suite runs other tests while it loads. Its port and
    API key are fixed before it starts, so the App server can be launched
    with :meth:`env` pointing at it.
    """

    def __init__(self, **server_options):
        from support.vllm_server import VLLMServer

        # server_options: VLLMServer fields, e.g. max_model_len=4096
        self.server = VLLMServer(port=free_port(), **server_options)
        self.error = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def env(self):
        """The settings that point the plugin (and the App) at the server."""
        return {
            "VRAG_VLLM_BASE_URL": self.server.base_url,
            "VRAG_VLLM_API_KEY": self.server.api_key,
            "VRAG_VLLM_MODEL": self.server.model_name,
            "VRAG_VLLM_MAX_IMAGES": str(self.server.max_images),
        }

    def start(self):
        self._thread.start()
        return self

    def _run(self):
        try:
            self.server.start()
        except BaseException as e:  # reported by wait()
            self.error = e

    def wait(self, timeout):
        """Waits until the server answers; raises with its log tail if not."""
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise AppBrowserError(
                f"The vLLM test server did not start within {timeout:.0f} s more. "
                f"Log {self.server.log_path}:\n{self.server.log_tail(3000)}"
            )
        if self.error is not None:
            raise AppBrowserError(f"The vLLM test server failed: {self.error}")
        return self.server

    def stop(self):
        """Stops the server. One still being built or started is left to
        ``support.vllm_server``'s leftover cleanup (its owner pid is ours)."""
        self._thread.join(5)
        self.server.stop()
