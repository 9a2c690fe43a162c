"""Form pieces shared by the App's operators: one way to build and check them.

In the manner of FiftyOne's built-in plugins and the brain plugin: bad input
is SHOWN on its field (``prop.invalid``, ``prop.error_message``), never
raised, and checking a form has no side effects (nothing written, nothing
started). A workbench error (:class:`~plugin.errors.VideoRagError`) becomes a
form error, an output error and a notification, never a traceback.

:class:`WorkbenchOperator` holds what every operator repeated: its config,
the execution options (run now, or in the background by default when the
work is large), and the error handling around form, run and outputs.
"""

import re

import fiftyone.operators as foo
import fiftyone.operators.types as types

from plugin.errors import VideoRagError
from plugin.inputs import positive_number, require_int, validate_query
from plugin.milvus import LOCAL
from plugin.settings import Settings

MILVUS_URI = "milvus_uri"  # the form field naming the Milvus store
MANY_FRAMES = 500  # more frames than this: run in the background by default


def dropdown(inputs, name, choices, default=None, label=None, **kwargs):
    """An enum field shown as a dropdown.

    ``choices``: values, or a mapping ``value -> label``.
    """
    labels = choices if isinstance(choices, dict) else {c: c for c in choices}
    view = types.Dropdown()
    for value, text in labels.items():
        view.add_choice(value, label=text)
    return inputs.enum(
        name, view.values(), default=default, view=view, label=label, **kwargs
    )


def mark_invalid(prop, message):
    """Shows ``message`` on the field ``prop`` (the form cannot be submitted)."""
    prop.invalid = True
    prop.error_message = message
    return prop


def flag(prop, check):
    """Runs ``check()``; a workbench error or ValueError marks ``prop``
    invalid with its message, any other error (a value of the wrong type
    the check choked on) too. Returns whether the check passed."""
    try:
        check()
    except (VideoRagError, ValueError) as e:
        mark_invalid(prop, message_of(e))
        return False
    except Exception as e:  # a form must show the problem, never crash
        mark_invalid(prop, f"Invalid value ({type(e).__name__}: {e})")
        return False
    return True


def message_of(error):
    """The user-facing text of an error."""
    return getattr(error, "message", None) or str(error)


def number_param(ctx, name, default, label, integer=False, highest=None):
    """``ctx.params[name]`` as a positive number, ``default`` when unset
    (see :func:`plugin.inputs.positive_number`)."""
    return positive_number(ctx.params.get(name), label, default, integer, highest)


def settings_from(ctx):
    """The workbench settings of a request: the form's Milvus choice, then
    the plugin secrets, then the environment."""
    return Settings.load(ctx.secrets, milvus_uri=ctx.params.get(MILVUS_URI))


def milvus_input(ctx, inputs):
    """The Milvus store to use (the same field on every index operator)."""
    prop = inputs.str(
        MILVUS_URI,
        label="Milvus URI",
        description="Empty: the VRAG_MILVUS_URI secret, else the managed local "
        "store. Or a .db file, http(s)://host:port, a Zilliz URI",
    )
    uri = ctx.params.get(MILVUS_URI) or ""
    if not isinstance(uri, str):
        return mark_invalid(prop, "The Milvus URI must be text")
    uri = uri.strip()
    if uri and uri != LOCAL:
        # The URI's form only: nothing is contacted or started
        flag(prop, lambda: settings_from(ctx).milvus(start_local=False))
    return prop


def search_inputs(ctx, inputs, k, what):
    """The search text, and how many results (``k``: at least 1)."""
    query = inputs.str("query", required=True, label="Search text")
    if ctx.params.get("query") is not None:
        flag(query, lambda: validate_query(ctx.params["query"]))
    label = f"Number of {what}"
    count = inputs.int("k", default=k, label=label)
    if ctx.params.get("k") is not None:
        flag(count, lambda: require_int(label, ctx.params["k"]))


def search_request(ctx, k):
    """The ``query``, ``k`` and ``settings`` arguments of a search."""
    return {
        "query": ctx.params.get("query"),  # checked by the search
        "k": int(ctx.params.get("k") or k),
        "settings": settings_from(ctx),
    }


def frame_index_input(ctx, inputs, default_key):
    """A dropdown of the dataset's frame indexes (brain similarity runs)."""
    keys = frame_index_keys(ctx.dataset)
    if not keys:
        prop = inputs.str("brain_key", label="Index")
        return mark_invalid(
            prop, "This dataset has no frame index yet: run 'index frames'"
        )
    default = default_key if default_key in keys else keys[0]
    return dropdown(inputs, "brain_key", keys, default, "Index (brain key)")


def view_index_inputs(ctx, inputs, default_key):
    """The target view (current view, selection or dataset) and the frame
    index of an operator working on frames' vectors. Returns the chosen
    brain key, or None when the dataset has no frame index (the form says so).
    """
    inputs.view_target(ctx)
    index = frame_index_input(ctx, inputs, default_key)
    if getattr(index, "invalid", False):
        return None
    return ctx.params.get("brain_key") or index.default


def frame_index_keys(dataset):
    if dataset is None:
        return []
    return dataset.list_brain_runs(type="similarity")


def progress_of(ctx):
    """The ``progress(fraction, label)`` callable of the core, for ``ctx``."""
    return lambda fraction, label: ctx.set_progress(progress=fraction, label=label)


def work_args(ctx):
    """The ``settings`` and ``progress`` arguments of a long core call."""
    return {"settings": settings_from(ctx), "progress": progress_of(ctx)}


def table_output(outputs, name, columns, label=None):
    """A list of rows shown as a table; ``columns``: ``{row key: header}``
    (or ``(row key, header)`` pairs)."""
    table = types.TableView()
    for key, header in dict(columns).items():
        table.add_column(key, label=header)
    return outputs.list(name, types.Object(), label=label, view=table)


class WorkbenchOperator(foo.Operator):
    """Base of the workbench's operators.

    A subclass gives its label in its class statement and describes itself
    in its docstring (the App shows both); its operator name is the class
    name in snake case (``SyncFrameIndex``: ``sync_frame_index``), as
    fiftyone.yml lists it::

        class SyncFrameIndex(WorkbenchOperator, label="sync frame index"):
            \"\"\"Indexes frames added since, drops deleted ones.\"\"\"

    ``background=True``: long work that may run as a delegated operation
    (:meth:`is_large` says when to default to it). ``on_view=True``: the
    work is on the App's target view (``ctx.target_view()``), large above
    :data:`MANY_FRAMES` frames. A subclass implements :meth:`form`,
    :meth:`run` and :meth:`outputs`.
    """

    def __init_subclass__(cls, label=None, background=False, on_view=False, **kw):
        super().__init_subclass__(**kw)
        cls.operator_name = re.sub(r"(?<!^)(?=[A-Z])", "_", cls.__name__).lower()
        cls.label, cls.background, cls.on_view = label, background, on_view

    @property
    def config(self):
        return foo.OperatorConfig(
            name=self.operator_name,
            label=f"Video RAG: {self.label}",
            description=" ".join((self.__doc__ or "").split()).rstrip("."),
            dynamic=True,
            allow_immediate_execution=True,
            allow_delegated_execution=self.background,
        )

    # -- what subclasses write ------------------------------------------------

    def form(self, ctx, inputs):
        """Adds the input fields (and marks invalid ones) to ``inputs``."""

    def run(self, ctx):
        """Does the work; returns the outputs dict."""
        raise NotImplementedError

    def outputs(self, ctx, outputs):
        """Declares the output fields of a successful run."""

    def is_large(self, ctx):
        """Whether the work is large enough to run in the background by default."""
        if not self.on_view or ctx.view is None:
            return False
        return len(ctx.target_view()) > MANY_FRAMES

    # -- FiftyOne's hooks -----------------------------------------------------

    def resolve_input(self, ctx):
        inputs = types.Object()
        try:
            self.form(ctx, inputs)
        except VideoRagError as e:
            inputs.view("error", types.Error(label=e.message))
        title = self.label[:1].upper() + self.label[1:]
        return types.Property(inputs, view=types.View(label=title))

    def resolve_execution_options(self, ctx):
        """Now or in the background, the user's choice; the default follows
        the size of the work (FiftyOne preselects it in the form)."""
        return foo.ExecutionOptions(
            allow_immediate_execution=True,
            allow_delegated_execution=self.background,
            default_choice_to_delegated=self.background and self.is_large(ctx),
        )

    def execute(self, ctx):
        try:
            return self.run(ctx)
        except VideoRagError as e:
            return show_error(ctx, e)

    def resolve_output(self, ctx):
        outputs = types.Object()
        error = (ctx.results or {}).get("error")
        if error:
            outputs.view("error", types.Error(label=error))
        else:
            self.outputs(ctx, outputs)
        return types.Property(outputs)


def show_error(ctx, error):
    """Notifies the App of a workbench error; returns it as the outputs."""
    message = message_of(error)
    if not ctx.delegated:
        ctx.ops.notify(message, variant="error")
    return {"error": message}
