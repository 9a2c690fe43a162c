"""Property-style bad inputs for every operator's parameters.

For each operator listed in fiftyone.yml and each field of its form, a
small hand-written generator feeds values of the wrong kind (None, empty
and blank text, a NUL byte, 5000 characters, negative, zero, huge, NaN,
infinity, booleans, lists, dicts, a path escaping its folder, a URI with
credentials...). Through FiftyOne's own machinery (``resolve_type``, then
``execute_operator``) every one must end in a form error or a workbench
message: never a traceback, never a crashed form. The store is unreachable
(``http://127.0.0.1:9``) and no vLLM is set, so nothing real starts.

Also the settings: a typo in a ``VRAG_*`` variable names the variable.
"""

import asyncio
import random
import uuid
from pathlib import Path

import fiftyone as fo
import fiftyone.operators as foo
import pytest
import yaml
from fiftyone.operators.executor import resolve_type
from fiftyone.operators.registry import OperatorRegistry

from plugin.errors import InvalidInputError
from plugin.settings import ENV_NAMES, Settings

REPO = Path(__file__).resolve().parents[1]
OPERATORS = yaml.safe_load((REPO / "fiftyone.yml").read_text())["operators"]
VALUES_PER_FIELD = 3

#: The generator's pool: one of each kind of bad value
BAD = [
    None,
    "",
    "   ",
    "\x00",
    "\U0001f642" * 3,
    "a" * 5000,
    -1,
    0,
    2**63,
    1.5,
    float("nan"),
    float("inf"),
    True,
    [],
    {},
    ["x"],
    {"a": 1},
    "../../etc/passwd",
    "http://user:pw@127.0.0.1:9",
    "0123456789abcdef01234567",  # an ObjectId that matches nothing
]

#: Operators whose owners still have to make them hold (strict: once they
#: hold, the test fails until the mark is removed)
KNOWN = {}


def bad_values(operator, field, count=VALUES_PER_FIELD):
    """``count`` values of the pool for one field, picked by a generator
    seeded with the names: the same values every run, different ones for
    each field (together they cover the pool, see the test below)."""
    rng = random.Random(f"{operator}/{field}")
    return rng.sample(BAD, count)


@pytest.fixture(scope="module")
def target(plugin_loaded, monkeypatch_module):
    monkeypatch_module.setenv("VRAG_MILVUS_URI", "http://127.0.0.1:9")
    monkeypatch_module.delenv("VRAG_VLLM_BASE_URL", raising=False)
    dataset = fo.Dataset(f"vrag-faults-inputs-{uuid.uuid4().hex[:8]}")
    dataset.add_samples(
        [
            fo.Sample(filepath=f"/frames/{i}.jpg", video_id="v", timestamp=float(i))
            for i in range(3)
        ]
    )
    yield plugin_loaded, dataset
    dataset.delete()


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def _form(uri, dataset, params):
    return asyncio.run(
        resolve_type(
            OperatorRegistry(), uri, {"dataset_name": dataset.name, "params": params}
        )
    )


def _fields(uri, dataset):
    prop = _form(uri, dataset, {})
    return list(getattr(getattr(prop, "type", None), "properties", None) or {})


def _problems(uri, dataset, field, value):
    """What went wrong for one bad value (empty when it held)."""
    problems = []
    params = {field: value}
    try:
        form = _form(uri, dataset, params)
        if not hasattr(form, "type"):  # the form itself crashed
            problems.append(f"form: {str(getattr(form, 'error', form))[-300:]}")
    except Exception as e:
        problems.append(f"form raised {e!r:.300}")
    try:
        result = foo.execute_operator(uri, ctx={"dataset": dataset, "params": params})
    except Exception as e:
        if "Validation error" not in str(e):  # a form error is the right answer
            problems.append(f"run raised {str(e)[-300:]}")
    else:
        if result.error:
            problems.append(f"run traceback: {result.error.strip()[-300:]}")
        shown = (result.result or {}).get("error")
        if shown is not None and not isinstance(shown, str):
            problems.append(f"error shown is not text: {shown!r:.100}")
    return problems


@pytest.mark.parametrize(
    "operator",
    [
        pytest.param(name, marks=pytest.mark.xfail(reason=KNOWN[name], strict=True))
        if name in KNOWN
        else name
        for name in OPERATORS
    ],
)
def test_bad_values_for_every_field_give_a_message_not_a_traceback(target, operator):
    plugin, dataset = target
    uri = f"{plugin}/{operator}"
    failures = []
    for field in _fields(uri, dataset):
        for value in bad_values(operator, field):
            for problem in _problems(uri, dataset, field, value):
                failures.append(f"{field}={value!r:.40}: {problem}")
    assert not failures, "\n".join(failures)


def test_the_generator_covers_every_kind_of_bad_value(target):
    plugin, dataset = target
    used = set()
    for operator in OPERATORS:
        for field in _fields(f"{plugin}/{operator}", dataset):
            used.update(repr(v) for v in bad_values(operator, field))
    assert used == {repr(v) for v in BAD}


@pytest.mark.parametrize(
    "name, value",
    [
        ("milvus_lite_port", "19541x"),
        ("milvus_timeout", "nan"),
        ("milvus_timeout", "-3"),
        ("vllm_timeout", "soon"),
    ],
)
def test_a_typo_in_a_setting_names_the_variable(monkeypatch, name, value):
    monkeypatch.setenv(ENV_NAMES[name], value)
    with pytest.raises(InvalidInputError, match=ENV_NAMES[name]):
        Settings.load()


@pytest.mark.parametrize(
    "uri, problem",
    [
        ("http://127.0.0.1:99999", "malformed"),
        ("http://:19530", "names no host"),
        ("ftp://host:1", "Unsupported Milvus URI"),
        (42, "must be text"),
    ],
)
def test_a_bad_milvus_uri_is_refused_before_connecting(uri, problem):
    with pytest.raises(InvalidInputError, match=problem):
        Settings(milvus_uri=uri).milvus()
