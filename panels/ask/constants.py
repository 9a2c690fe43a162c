"""Names and defaults of the Ask panel."""

PANEL_NAME = "ask_panel"
PANEL_LABEL = "Ask"
STREAM_OPERATOR = "ask_stream"  # panels/ask/operators.py

THUMB_LONG_SIDE = 160  # px, evidence thumbnails in the panel
STREAM_EVERY_S = 0.15  # at most this often a streamed state patch
HISTORY_SHOWN = 10
ANSWER_PLACEHOLDER = "_The answer appears here, streamed as it is generated._"

HELP = """\
Ask a question about the videos. The evidence is the frames selected in the
grid or, with nothing selected, the best frames and transcript lines found by
hybrid retrieval. Preview it, drop frames, then **Ask**: Pixtral (served by
vLLM) answers from that evidence only and cites it as [n]; click a citation
to open its frame. Settings (plugin secrets or environment):
`VRAG_VLLM_BASE_URL`, `VRAG_VLLM_API_KEY`, `VRAG_VLLM_MODEL`.
"""
