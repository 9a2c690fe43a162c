"""The Ask panel's state: evidence <-> state dicts, thumbnails, history rows.

The panel state holds only small JSON (evidence metadata, answer text,
citations, history rows); thumbnails go to panel data (sent to the App, not
back). Nothing here holds a setting or secret.
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


def evidence_caption(item, sent=True):
    """``**[2]** talk.mp4 @ 00:35 — "transcript…"`` for the preview."""
    parts = [f"**[{item.n}]** {item.video_label} @ {format_timestamp(item.timestamp)}"]
    if item.sample_id and not item.has_image_file:
        parts.append("⚠ frame file missing on disk (text only)")
    elif not sent:
        parts.append("(text only)")
    if item.transcript:
        text = (
            item.transcript
            if len(item.transcript) < 160
            else item.transcript[:157] + "…"
        )
        parts.append(f"> {text}")
    return "  \n".join(parts)


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
