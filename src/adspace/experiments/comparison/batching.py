"""Many episodes' replies in few decoding batches: how the harness's mechanisms sample.

Sampling one reply per call leaves a language model on a CPU idle between tiny matrix products (one row
per step) and prefills the same prompt again for every replicate of a query. :func:`sample_grouped`
takes every request of one mechanism for a whole evaluation, groups the requests that share a prompt
(the replicates of one query, which have the same bids), prefills each distinct prompt once and decodes
up to ``batch_rows`` rows together.

A batch draws from one generator, seeded by the seed of its first request, so a request's reply
depends on the requests batched with it. The batches are a function of the request list only (its
order, prompts and seeds), so the same episodes give the same replies whichever command evaluates
them, and a mechanism evaluated alone gets the replies it gets among others.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["BATCH_ROWS", "sample_grouped"]

#: decoding rows per batch (prompts × replies each); 128 keeps a CPU's key/value cache near 3 GB at
#: ~450-token prompts of SmolLM2-135M and is past the point where larger batches still pay on a CPU.
BATCH_ROWS = 128


def sample_grouped(
    sampler: Callable[..., list[list[Any]]],
    requests: Sequence[tuple[Sequence[dict], int, Any]],
    *,
    per: int = 1,
    batch_rows: int = BATCH_ROWS,
) -> list[list[Any]]:
    """``per`` replies for each request ``(prompt, seed, extra)``, aligned with ``requests``.

    ``sampler(prompts, n, extras, seed)`` returns ``n`` replies per prompt (``out[p][k]``); ``extra`` is
    passed through per distinct prompt (e.g. the candidates of the constrained sampler). Requests with
    the same prompt form a group (first appearance first); a batch of groups asks ``n = per × (largest
    group)`` replies per prompt, and request ``i`` of a group gets replies ``i·per .. (i+1)·per − 1``.
    """
    if int(per) != per or per < 1:
        raise ValueError(f"per: must be a positive integer, got {per!r}")
    if int(batch_rows) != batch_rows or batch_rows < 1:
        raise ValueError(f"batch_rows: must be a positive integer, got {batch_rows!r}")
    groups: dict[str, list[int]] = {}
    for i, (prompt, _seed, _extra) in enumerate(requests):
        groups.setdefault(json.dumps(prompt, sort_keys=True), []).append(i)
    order = list(groups.values())
    out: list[list[Any]] = [[] for _ in requests]
    start = 0
    while start < len(order):
        # as many groups as fit in batch_rows (at least one)
        stop, widest = start + 1, len(order[start])
        while stop < len(order) and per * max(widest, len(order[stop])) * (stop + 1 - start) <= batch_rows:
            widest = max(widest, len(order[stop]))
            stop += 1
        chunk = order[start:stop]
        first = chunk[0][0]
        replies = sampler(
            [requests[g[0]][0] for g in chunk],
            per * widest,
            [requests[g[0]][2] for g in chunk],
            int(requests[first][1]),
        )
        for g, row in zip(chunk, replies, strict=True):
            for k, i in enumerate(g):
                out[i] = list(row[k * per : (k + 1) * per])
        start = stop
    return out
