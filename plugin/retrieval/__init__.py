"""Retrieval: frame indexes (Milvus via fiftyone-brain), search, fusion.

Importing this package changes nothing in other libraries: the fixes to
fiftyone-brain are applied by :func:`plugin.runtime.prepare_process`.
"""
