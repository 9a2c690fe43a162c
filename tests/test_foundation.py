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


# Loads the repo root's __init__.py as FiftyOne does: a synthetic module name,
# spec_from_file_location, exec_module, then register(p).
_LOAD_LIKE_FIFTYONE = """
import importlib.util, json, sys
def load(root):
    spec = importlib.util.spec_from_file_location("vrag_test_root", root + "/__init__.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module.__name__] = module
    spec.loader.exec_module(module)
    return module
"""


def _fake_plugin_package(tmp_path):
    (tmp_path / "plugin").mkdir()
    (tmp_path / "plugin" / "__init__.py").write_text("OTHER = True\n")
    return tmp_path


def _load_error(code):
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=180,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    )
    assert result.returncode == 3, (result.stdout + result.stderr)[-3000:]
    return result.stdout


def test_another_plugin_already_imported_as_plugin_is_a_loud_error(tmp_path):
    other = _fake_plugin_package(tmp_path)
    out = _load_error(
        _LOAD_LIKE_FIFTYONE
        + f"sys.path.insert(0, {str(other)!r}); import plugin\n"
        + "try:\n"
        + f"    load({str(REPO)!r})\n"
        + "except ImportError as e:\n"
        + "    print(e); sys.exit(3)\n"
    )
    assert "the top-level name 'plugin' is taken by another plugin" in out
    assert str(other / "plugin") in out
    assert str(REPO / "plugin") in out


def test_another_plugin_first_on_sys_path_is_a_loud_error(tmp_path):
    """Our dir already on sys.path, but after another one holding `plugin`."""
    other = _fake_plugin_package(tmp_path)
    out = _load_error(
        _LOAD_LIKE_FIFTYONE
        + f"sys.path[:0] = [{str(other)!r}, {str(REPO)!r}]\n"
        + "try:\n"
        + f"    load({str(REPO)!r})\n"
        + "except ImportError as e:\n"
        + "    print(e); sys.exit(3)\n"
    )
    assert str(other / "plugin") in out and str(REPO / "plugin") in out


def test_loading_the_plugin_imports_our_core_and_register_prepares(tmp_path):
    """Loading changes nothing in brain; register() applies the fixes, our
    zoo models and the store (a .db file here: nothing to start)."""
    store = str(tmp_path / "store.db")
    out = _run_python(
        _LOAD_LIKE_FIFTYONE
        + f"root = load({str(REPO)!r})\n"
        + "import plugin, fiftyone as fo, fiftyone.brain as fob\n"
        + "from plugin.retrieval import brain_fixes\n"
        + "before = brain_fixes.is_applied()\n"
        + "class P:\n"
        + "    names = []\n"
        + "    def register(self, cls): self.names.append(cls.__name__)\n"
        + "p = P(); root.register(p)\n"
        + "print(json.dumps({'core': plugin.__file__, 'before': before,\n"
        + "    'after': brain_fixes.is_applied(), 'n': len(p.names),\n"
        + "    'zoo': fo.config.model_zoo_manifest_paths,\n"
        + "    'uri': fob.brain_config.similarity_backends['milvus'].get('uri')}))\n",
        env={"VRAG_MILVUS_URI": store},
    )
    got = json.loads(out.strip().splitlines()[-1])
    assert Path(got["core"]).resolve() == REPO / "plugin" / "__init__.py"
    assert (got["before"], got["after"]) == (False, True)
    assert got["n"] > 5
    assert str(REPO / "plugin" / "models" / "zoo_manifest.json") in got["zoo"]
    assert got["uri"] == store
