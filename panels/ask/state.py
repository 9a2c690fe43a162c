"""The Ask panel's state: evidence <-> state dicts, thumbnails, the token
plan's notes, the conversation, history rows.

The panel state holds only small JSON (evidence metadata, the token plan,
the conversation's turns, answer text, citations, history rows); thumbnails
go to panel data (sent to the App, not back). Nothing here holds a setting
or secret.
"""

from plugin.answer import history
from plugin.answer.evidence import Evidence, renumber
from plugin.answer.images import frame_data_url
from plugin.answer.prompt import format_timestamp

from .constants import HISTORY_SHOWN, THUMB_LONG_SIDE


def evidence_to_state(items):
    return [item.to_dict() for item in items]


def evidence_from_state(rows):
    return renumber([Evidence.from_dict(row) for row in rows or []])


def thumb_key(i):
    return f"thumb_{i}"


def thumbnails(items):
    """``{thumb_i: data_url or ""}`` for each item (``""``: file missing)."""
    thumbs = {}
    for i, item in enumerate(items):
        url = ""
        if item.sample_id and item.has_image_file:
            try:
                url, _ = frame_data_url(item.filepath, THUMB_LONG_SIDE)
            except OSError:
                url = ""
        thumbs[thumb_key(i)] = url
    return thumbs


def evidence_caption(item, planned=None):
    """``**[2]** talk.mp4 @ 00:35 · image 768x432, 1,373 tokens`` and the
    transcript, for the preview. ``planned``: the item's row of the token
    plan (``mode``, ``text_tokens``, ``image_tokens``, ``size``, ``reason``)."""
    parts = [f"**[{item.n}]** {item.video_label} @ {format_timestamp(item.timestamp)}"]
    if planned:
        parts[0] += " · " + plan_note(planned)
    if item.sample_id and not item.has_image_file:
        parts.append("⚠ frame file missing on disk (text only)")
    if item.transcript:
        text = (
            item.transcript
            if len(item.transcript) < 160
            else item.transcript[:157] + "…"
        )
        parts.append(f"> {text}")
    return "  \n".join(parts)


def plan_note(planned):
    """How the plan sends an item, and its tokens."""
    mode, text = planned.get("mode"), planned.get("text_tokens", 0)
    if mode == "image":
        w, h = planned.get("size") or (0, 0)
        image = planned.get("image_tokens", 0)
        return f"image {w}x{h}, {text + image:,} tokens ({image:,} image)"
    if mode == "text":
        why = planned.get("reason") or ""
        return f"text only, {text:,} tokens" + (f" ({why})" if why else "")
    return f"dropped ({text:,} tokens do not fit)"


def plan_rows(plan):
    """``{n: row}`` of a plan dict's current items."""
    rows = (plan or {}).get("items") or []
    return {row["n"]: row for row in rows if not row.get("earlier")}


def plan_markdown(plan, summary):
    """The preview's budget line: total against the budget, image fill."""
    if not plan:
        return ""
    fill = plan.get("image_fill", 0) * 100
    return (
        f"**Token budget** — {summary} Images use {fill:.0f} % of the room "
        f"left to them ({plan.get('image_budget', 0):,} tokens); text counted "
        f"with {plan.get('counter', '?')}."
    )


def conversation_markdown(turns):
    """The earlier turns of the panel's conversation."""
    lines = []
    for i, turn in enumerate(turns or [], 1):
        answer = turn.get("answer") or ""
        answer = answer if len(answer) < 300 else answer[:297] + "…"
        mark = " _(incomplete)_" if turn.get("incomplete") else ""
        lines.append(f"**{i}.** {turn.get('question', '')}  \n→ {answer}{mark}")
    return "\n\n".join(lines)


def history_rows(dataset, limit=HISTORY_SHOWN):
    """Short history rows for the panel (newest first)."""
    if dataset is None:
        return []
    rows = []
    for entry in history.list_entries(dataset, limit):
        answer = entry.get("answer") or ""
        rows.append(
            {
                "question": entry.get("question", ""),
                "answer": answer if len(answer) < 400 else answer[:397] + "…",
                "cited": [c.get("n") for c in entry.get("citations", [])],
            }
        )
    return rows


def history_markdown(rows):
    if not rows:
        return "_No questions asked on this dataset yet._"
    lines = []
    for row in rows:
        lines.append(f"**Q:** {row['question']}  \n**A:** {row['answer']}")
    return "\n\n---\n\n".join(lines)
