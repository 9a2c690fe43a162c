"""Grounded answers from a vision-language model (Pixtral on vLLM).

- :mod:`.evidence`: numbered evidence (selected frames or hybrid retrieval)
- :mod:`.prompt`: the one prompt builder (one request, up to N images)
- :mod:`.images`: downscaled JPEG data URLs
- :mod:`.client`: one chat completion through the shared ``openai`` client,
  with clear :class:`~plugin.errors.AnswerError` messages
- :mod:`.citations`: ``[n]`` markers -> :class:`Citation`
- :mod:`.history`: per-dataset Q&A history (execution store, no secrets)
- :mod:`.ask`: :func:`ask`, the whole path
"""

from plugin.answer.ask import Answer, AnswerStream, ask, gather_evidence
from plugin.answer.citations import Citation, parse_citations
from plugin.answer.client import require_endpoint
from plugin.answer.evidence import Evidence
from plugin.errors import AnswerError

__all__ = [
    "Answer",
    "AnswerError",
    "AnswerStream",
    "Citation",
    "Evidence",
    "ask",
    "gather_evidence",
    "parse_citations",
    "require_endpoint",
]
