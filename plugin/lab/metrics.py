"""Retrieval metrics of one ranked list of frames against one judgment.

All relevance is binary. For a ranking ``r_1, r_2, ...`` (best first) and
the set ``R`` of relevant frames:

- ``recall@k`` = |{r_1..r_k} ∩ R| / |R|
- reciprocal rank = 1 / (position of the first relevant frame), 0 if none
  in the list (its mean over queries is MRR)
- ``nDCG@10`` = DCG / ideal DCG, DCG = sum over i <= 10 of rel_i / log2(i + 1),
  ideal DCG the same with min(|R|, 10) relevant frames on top
- ``span_hit@k`` ("a hit inside a relevant time span"): 1 if one of the top
  ``k`` frames is in a relevant span of its video (``start <= t < end``),
  else 0; only for judgments with spans (None otherwise). For video this is
  what a user feels: did the top results land in the right moment, however
  many frames that moment holds.

A frame marked not relevant never counts, even inside a relevant span.
"""

import math

DEFAULT_KS = (1, 5, 10)
NDCG_AT = 10


def recall_at(ranking, relevant, k):
    if not relevant:
        return None
    return len(set(ranking[:k]) & relevant) / len(relevant)


def reciprocal_rank(ranking, relevant):
    for position, sample_id in enumerate(ranking, 1):
        if sample_id in relevant:
            return 1.0 / position
    return 0.0


def ndcg_at(ranking, relevant, k=NDCG_AT):
    if not relevant:
        return None
    dcg = sum(
        1.0 / math.log2(i + 2) for i, s in enumerate(ranking[:k]) if s in relevant
    )
    ideal = sum(1.0 / math.log2(i + 2) for i in range(min(len(relevant), k)))
    return dcg / ideal


def span_hit_at(frames, spans, k, not_relevant=()):
    """``frames``: ``[(sample_id, video_id, timestamp)]`` in rank order."""
    if not spans:
        return None
    for sample_id, video_id, timestamp in frames[:k]:
        if sample_id in not_relevant or timestamp is None:
            continue
        if any(v == video_id and s <= timestamp < e for v, s, e in spans):
            return 1.0
    return 0.0


def query_metrics(frames, judged, ks=DEFAULT_KS):
    """The metrics of one ranked list (``[(sample_id, video_id, timestamp)]``)
    against one :class:`~plugin.lab.judgments.Resolved` judgment:
    ``{metric name: value or None}``."""
    ranking = [f[0] for f in frames]
    relevant = judged.relevant
    values = {f"recall@{k}": recall_at(ranking, relevant, k) for k in ks}
    values["mrr"] = reciprocal_rank(ranking, relevant) if relevant else None
    values[f"ndcg@{NDCG_AT}"] = ndcg_at(ranking, relevant)
    for k in ks:
        values[f"span_hit@{k}"] = span_hit_at(
            frames, judged.spans, k, judged.not_relevant
        )
    return values


def metric_names(ks=DEFAULT_KS):
    """The metrics' names, in display order."""
    return [
        *(f"recall@{k}" for k in ks),
        "mrr",
        f"ndcg@{NDCG_AT}",
        *(f"span_hit@{k}" for k in ks),
    ]


def mean_metrics(per_query, ks=DEFAULT_KS):
    """``{metric: mean over the queries where it is defined, or None}``."""
    means = {}
    for name in metric_names(ks):
        values = [q[name] for q in per_query if q.get(name) is not None]
        means[name] = sum(values) / len(values) if values else None
    return means
