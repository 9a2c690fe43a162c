"""Retrieval: frame indexes (Milvus via fiftyone-brain), search, fusion."""

from plugin.retrieval import brain_fixes

brain_fixes.apply()
