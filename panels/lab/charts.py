"""The lab panel's Plotly charts and table, from a report dict (pure functions).

The App draws Plotly JSON (``panel.plot(name, data=traces, layout=...)``):
traces are plain dicts, so nothing here needs the plotly package.
"""

_LABELS = {
    "mrr": "MRR",
    "ndcg@10": "nDCG@10",
}


def metric_label(name):
    """``recall@5`` -> ``Recall@5``; ``span_hit@1`` -> ``Span hit@1``."""
    if name in _LABELS:
        return _LABELS[name]
    return name.replace("span_hit", "Span hit").replace("recall", "Recall")


def metrics_chart(report):
    """Grouped bars: one group per metric, one bar per system (index or
    fusion setting). Returns ``(traces, layout)``."""
    names = [m for m in report["metrics"] if _defined(report, m)]
    traces = [
        {
            "type": "bar",
            "name": row["system"],
            "x": [metric_label(m) for m in names],
            "y": [_round(row.get(m)) for m in names],
            "hovertemplate": "%{x}: %{y:.3f}<extra>" + row["system"] + "</extra>",
        }
        for row in report["rows"]
    ]
    layout = {
        "barmode": "group",
        "title": {"text": "Indexes and fusion settings, mean over judged queries"},
        "yaxis": {"range": [0, 1.05], "title": {"text": "score"}},
        "legend": {"orientation": "h"},
        "margin": {"t": 48, "b": 40, "l": 48, "r": 16},
        "height": 360,
    }
    return traces, layout


def per_query_chart(report, metric="mrr"):
    """Grouped bars of one metric per query, one bar per system: where a
    setting wins or loses. Returns ``(traces, layout)``."""
    traces = []
    for system, rows in report["per_query"].items():
        traces.append(
            {
                "type": "bar",
                "name": system,
                "x": [r["query"] for r in rows],
                "y": [_round(r.get(metric)) for r in rows],
            }
        )
    layout = {
        "barmode": "group",
        "title": {"text": f"{metric_label(metric)} per query"},
        "yaxis": {"range": [0, 1.05]},
        "legend": {"orientation": "h"},
        "margin": {"t": 48, "b": 80, "l": 48, "r": 16},
        "height": 360,
    }
    return traces, layout


def metrics_markdown(report):
    """The report as a Markdown table (best value of each metric in bold)."""
    names = [m for m in report["metrics"] if _defined(report, m)]
    best = {
        m: max((r[m] for r in report["rows"] if r[m] is not None), default=None)
        for m in names
    }
    head = "| System | " + " | ".join(metric_label(m) for m in names) + " |"
    rule = "|---|" + "---:|" * len(names)
    lines = [head, rule]
    for row in report["rows"]:
        cells = []
        for m in names:
            value = row[m]
            text = "–" if value is None else f"{value:.3f}"
            cells.append(
                f"**{text}**" if value is not None and value == best[m] else text
            )
        lines.append(f"| {row['system']}{_weights(row)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _weights(row):
    weights = row.get("weights") or {}
    active = [f"{k} {v:g}" for k, v in weights.items() if v]
    if len(active) < 2:
        return ""
    return f" ({', '.join(active)}; k={row.get('rrf_k')})"


def _defined(report, metric):
    return any(row.get(metric) is not None for row in report["rows"])


def _round(value):
    return None if value is None else round(value, 4)
