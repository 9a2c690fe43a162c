"""Foundation: embedded MongoDB, plugin loading through FiftyOne's registry."""

import json
import os
import subprocess
import sys
from pathlib import Path

import fiftyone as fo

REPO = Path(__file__).resolve().parents[1]


def _run_python(code, env=None, timeout=180):
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_dataset_round_trips_through_embedded_mongodb(dataset_name, tmp_path):
    dataset = fo.Dataset(dataset_name)
    dataset.persistent = True
    dataset.add_samples(
        [
            fo.Sample(filepath=str(tmp_path / f"{i}.jpg"), timestamp=i * 5.0)
            for i in range(3)
        ]
    )
    # Reload in another process: the data went through MongoDB, not memory.
    out = _run_python(
        "import fiftyone as fo, json;"
        f"d = fo.load_dataset({dataset_name!r});"
        "print(json.dumps(sorted(d.values('timestamp'))))"
    )
    assert json.loads(out.strip().splitlines()[-1]) == [0.0, 5.0, 10.0]


def test_operators_listed_by_fiftyone_plugin_registry(tmp_path):
    # The repo root is the plugin: a plugins dir holding it, as
    # `fiftyone plugins download <repo-url>` would leave it.
    plugins_dir = tmp_path / "plugins"
    plugins_dir.mkdir()
    (plugins_dir / "video-rag").symlink_to(REPO, target_is_directory=True)
    out = _run_python(
        "import json, fiftyone.plugins as fop, fiftyone.operators as foo;"
        "names = [p.name for p in fop.list_plugins()];"
        "ops = [o.uri for o in foo.list_operators()];"
        "print(json.dumps({'plugins': names, 'operators': ops}))",
        env={"FIFTYONE_PLUGINS_DIR": str(plugins_dir)},
    )
    listing = json.loads(out.strip().splitlines()[-1])
    assert "@vrag/video-rag" in listing["plugins"]
    assert "@vrag/video-rag/milvus_store_status" in listing["operators"]


def test_every_operator_in_fiftyone_yml_is_registered(tmp_path):
    import yaml

    declared = yaml.safe_load((REPO / "fiftyone.yml").read_text())
    plugins_dir = tmp_path / "plugins"
    plugins_dir.mkdir()
    (plugins_dir / "video-rag").symlink_to(REPO, target_is_directory=True)
    out = _run_python(
        "import json, fiftyone.operators as foo;"
        "print(json.dumps([o.uri for o in foo.list_operators()]))",
        env={"FIFTYONE_PLUGINS_DIR": str(plugins_dir)},
    )
    registered = set(json.loads(out.strip().splitlines()[-1]))
    names = declared["operators"] + declared.get("panels", [])
    missing = [n for n in names if f"@vrag/video-rag/{n}" not in registered]
    assert not missing, f"declared in fiftyone.yml but not registered: {missing}"
