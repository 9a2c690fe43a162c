"""Panels: App UI over the core in ``plugin/``. List them here to register."""

PANELS = []
