"""Where every benchmark writes its figures: ``bench/results/<name>.json`` and
``.md`` (the README's tables come from the ``.md``), printed as well."""

import json
from pathlib import Path

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def save_results(name, results, to_markdown):
    """Writes ``results`` as JSON and as the Markdown of ``to_markdown``."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / f"{name}.json").write_text(json.dumps(results, indent=2) + "\n")
    markdown = to_markdown(results)
    (RESULTS_DIR / f"{name}.md").write_text(markdown)
    print(markdown)
