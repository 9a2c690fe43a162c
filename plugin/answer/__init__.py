"""Grounded answers from a vision-language model (Pixtral on vLLM).

- :mod:`.evidence`: numbered evidence (selected frames or hybrid retrieval)
- :mod:`.budget`: what a request costs in tokens (image rule per model
  family, text tokenizer or estimate); :mod:`.plan`: what fits the server
- :mod:`.prompt`: the one prompt builder (labels and images interleaved)
- :mod:`.images`: downscaled JPEG data URLs
- :mod:`.request`: evidence -> plan -> images -> the ONE request
- :mod:`.client`: the streamed chat completion through the shared ``openai``
  client, the server's limits, clear :class:`~plugin.errors.AnswerError`
- :mod:`.citations`: ``[n]`` markers -> :class:`Citation`
- :mod:`.history`: per-dataset Q&A history (execution store, no secrets)
- :mod:`.ask`: :func:`ask`, the whole path; :mod:`.chat`: a
  :class:`Conversation` whose follow-ups carry the earlier turns
"""

from plugin.answer.ask import Answer, AnswerStream, ask, gather_evidence
from plugin.answer.chat import Conversation, Turn
from plugin.answer.citations import Citation, parse_citations
from plugin.answer.client import require_endpoint
from plugin.answer.evidence import Evidence
from plugin.errors import AnswerError

__all__ = [
    "Answer",
    "AnswerError",
    "AnswerStream",
    "Citation",
    "Conversation",
    "Evidence",
    "ask",
    "gather_evidence",
    "parse_citations",
    "require_endpoint",
    "Turn",
]
