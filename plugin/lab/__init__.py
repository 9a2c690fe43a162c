"""The retrieval lab: measure search on your own videos.

Judge which frames or time spans answer a query (in the App, or from a
TSV/JSON file), then compare each index and fusion setting on recall@k,
MRR, nDCG@10 and "a hit inside a relevant time span". See docs/lab.md.

    from plugin.lab import import_judgments, evaluate
    import_judgments(dataset, "samples/judgments/sample_video.json")
    print(evaluate(dataset, fusions=[{"name": "screen x2",
                   "weights": {"screen_text": 2.0}}]).table())
"""

from plugin.lab.evaluate import (
    HYBRID,
    FusionSetting,
    LabReport,
    available_signals,
    evaluate,
    last_report,
    rerun,
)
from plugin.lab.judgments import (
    delete_judgment,
    import_judgments,
    load_judgments,
    mark,
    read_judgments_file,
    save_judgment,
)

__all__ = [
    "HYBRID",
    "FusionSetting",
    "LabReport",
    "available_signals",
    "delete_judgment",
    "evaluate",
    "import_judgments",
    "last_report",
    "load_judgments",
    "mark",
    "read_judgments_file",
    "rerun",
    "save_judgment",
]
