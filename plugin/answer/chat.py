"""A conversation about the videos: follow-up questions carry the earlier turns.

Like the seed's "chat with the video", each question is sent with the
conversation so far: the earlier questions and answers as text (with the
labels of the evidence they were given), the earlier frames only when the
token budget and the image limit leave room (:mod:`plugin.answer.plan`;
the newest turns are kept first). Evidence numbers continue across turns,
so an earlier answer's ``[2]`` still names the same frame and a follow-up
may cite it.

    from plugin.answer.chat import Conversation

    chat = Conversation(dataset, settings=settings)
    first = chat.ask("What animal is shown?", sample_ids=ids)
    second = chat.ask("What color is it?")   # retrieval, with turn 1 sent
    chat.reset()                              # a new conversation

Every answer is also kept in the dataset's history (as single questions,
without secrets); the conversation itself lives in this object (or, in the
App, in the Ask panel's state: :meth:`to_dict` / :meth:`from_dict`).
"""

import dataclasses

from plugin.answer.ask import ask
from plugin.answer.evidence import Evidence


@dataclasses.dataclass
class Turn:
    """One question and its answer, with the evidence that was sent."""

    question: str
    answer: str
    evidence: list  # Evidence items, numbered across the conversation
    incomplete: bool = False

    @classmethod
    def from_answer(cls, answer):
        return cls(
            answer.question, answer.text, list(answer.evidence), answer.incomplete
        )

    def to_dict(self):
        return {
            "question": self.question,
            "answer": self.answer,
            "evidence": [e.to_dict() for e in self.evidence],
            "incomplete": self.incomplete,
        }

    @classmethod
    def from_dict(cls, d):
        return cls(
            question=d.get("question", ""),
            answer=d.get("answer", ""),
            evidence=[Evidence.from_dict(e) for e in d.get("evidence") or []],
            incomplete=bool(d.get("incomplete")),
        )


class Conversation:
    """Questions about ``dataset`` that each carry the conversation so far.

    Args:
        dataset: the frames dataset
        settings (None): a :class:`~plugin.settings.Settings`
        turns (()): earlier :class:`Turn` items to continue from
        **options: defaults for :func:`plugin.answer.ask` (``k``,
            ``max_images``, ``long_side``, ``max_tokens``, ``brain_key``,
            ``save_history``...)
    """

    def __init__(self, dataset, settings=None, turns=(), **options):
        self.dataset = dataset
        self.settings = settings
        self.turns = list(turns)
        self.options = options

    def ask(self, question, sample_ids=None, evidence=None, stream=False, **options):
        """Asks ``question`` with the earlier turns; the answer (complete, or
        the partial one of an interrupted stream) becomes the next turn.

        Returns an :class:`~plugin.answer.ask.Answer`, or an
        :class:`~plugin.answer.ask.AnswerStream` if ``stream``.
        """
        return ask(
            self.dataset,
            question,
            sample_ids=sample_ids,
            evidence=evidence,
            stream=stream,
            settings=self.settings,
            turns=tuple(self.turns),
            on_answer=self._add,
            **{**self.options, **options},
        )

    def _add(self, answer):
        self.turns.append(Turn.from_answer(answer))

    def reset(self):
        """Starts a new conversation (the dataset's history is kept)."""
        self.turns = []

    def __len__(self):
        return len(self.turns)

    def to_dict(self):
        """The turns as JSON-able data (no settings, no secrets)."""
        return {"turns": [t.to_dict() for t in self.turns]}

    @classmethod
    def from_dict(cls, dataset, data, settings=None, **options):
        turns = [Turn.from_dict(t) for t in (data or {}).get("turns") or []]
        return cls(dataset, settings=settings, turns=turns, **options)
