"""Steps on the FiftyOne App's page (Playwright), shared by the browser tests.

The App server and the browser themselves: ``support.app_browser``.
"""

import contextlib
import time


def cy(name):
    """The App's own test ids are ``data-cy`` attributes."""
    return f'[data-cy="{name}"]'


def wait_for(predicate, timeout, what, page=None, every=0.5):
    """Polls ``predicate()`` until it returns a true value, which it returns;
    an AssertionError naming ``what`` after ``timeout`` s. With ``page``, it
    waits with the page's clock (the page keeps processing events)."""
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        if page is not None:
            page.wait_for_timeout(every * 1000)
        else:
            time.sleep(every)
    return value


def dismiss_popups(page):
    """The App's first-visit popups (analytics banner, Enterprise teaser):
    they cover the grid's right side, so they go first. Not asserted on."""
    for label in ("Disable", "Dismiss"):
        button = page.get_by_text(label, exact=True)
        with contextlib.suppress(Exception):
            if button.count():
                button.first.click(timeout=3_000)
