"""Runs an operator, or one event of a python panel, the way the App does
(a real FiftyOne ExecutionContext), without the App."""

from fiftyone.operators.executor import ExecutionContext, Executor


def execute(operator, dataset, params, selected=()):
    """Executes ``operator`` (or a panel) on ``dataset`` with ``params`` and
    the ``selected`` sample ids; returns ``(ctx, requests, result)``:
    ``requests`` are what it asked the App to do (``ctx.ops``), in order."""
    executor = Executor()
    ctx = ExecutionContext(
        request_params={
            "dataset_name": dataset.name,
            "selected": list(selected),
            "params": params,
        },
        executor=executor,
    )
    result = operator.execute(ctx)
    return ctx, executor._requests, result


def run_panel_event(panel, dataset, method, state=None, selected=(), panel_id="p1"):
    """Runs ``panel``'s ``method`` (``"on_load"``, a button's handler...) with
    the panel state ``state``; returns ``(new panel state, rendered output)``:
    the output is what the panel sent the App to show."""
    panel.plugin_name = "@vrag/video-rag"
    params = {"panel_id": panel_id, "__method__": method}
    if state is not None:
        params["panel_state"] = state
    ctx, requests, _ = execute(panel, dataset, params, selected)
    output = next(
        r.params["output"] for r in requests if r.operator_uri == "show_panel_output"
    )
    return dict(ctx.panel_state), output
