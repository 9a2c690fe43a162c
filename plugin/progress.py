"""Progress of long work: one callable shape, ``progress(fraction, label)``.

Core functions take ``progress=None``; operators pass
``lambda f, label: ctx.set_progress(progress=f, label=label)``, notebooks a
print or a tqdm update. Every report is also logged.
"""

import logging

logger = logging.getLogger("plugin")


def report(progress, fraction, label):
    """Logs ``label`` and forwards it to ``progress`` (if any)."""
    logger.info("%3.0f%% %s", fraction * 100, label)
    if progress is not None:
        progress(fraction, label)
