"""Retrieval: frame indexes (Milvus via fiftyone-brain), search, fusion.

Importing this package changes nothing in other libraries: the fixes to
fiftyone-brain are applied by :func:`plugin.runtime.prepare_process`.

:func:`build_indexes` builds (or syncs) every index a dataset supports
(frames, transcript, on-screen text); it is imported on first use, so that
importing one retrieval module does not load them all.
"""


def build_indexes(dataset, **kwargs):
    """See :func:`plugin.retrieval.build.build_indexes`."""
    from plugin.retrieval.build import build_indexes as build

    return build(dataset, **kwargs)


__all__ = ["build_indexes"]
