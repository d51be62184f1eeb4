"""Teacher-forced scoring for the local backend: two paths, the same log-probabilities.

MOSAIC scores every candidate under 2-3 prompts (``π_ref`` and the advertisers' LLMs): many (prompt,
reply) pairs, few distinct prompts. Two ways to run them, chosen by device (:func:`scoring_path_for`):

* ``"cached"`` (CPU default): each distinct prompt runs once; its key/value cache is repeated for its
  replies, which run in batches of ``batch_size``. Fewest multiply-adds (a prompt is never recomputed),
  but one small forward per (prompt, batch): on a GPU that is a long row of sequential, mostly idle
  launches (75 per batch of 25 instances in the H100 measurement of 2026-11-26).
* ``"padded"`` (CUDA default): every pair as one whole sequence, sorted by length and cut into buckets
  whose padded size (rows x longest sequence) stays within a token budget per forward
  (:func:`padded_token_budget`, from the device's free memory), so a batch of the experiment is a
  handful of large forwards. Right padding needs no attention mask (a causal model never looks ahead
  at the pads), so the attention runs its fused causal kernel.

Either way the LM head is applied only at reply positions, in chunks, and each position's
log-probability comes from :func:`adspace.models.kernels.token_logprobs`.
``tests/models/test_llm_local.py`` checks that both paths give the same numbers.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import numpy as np

from adspace.models.kernels import token_logprobs

__all__ = [
    "SCORING_PATHS",
    "length_buckets",
    "padded_token_budget",
    "score_padded",
    "score_prompt_cached",
    "scoring_path_for",
]

SCORING_PATHS = ("cached", "padded")
Pair = tuple[list[int], list[int]]  # (prompt token ids, reply token ids)


def scoring_path_for(device: Any) -> str:
    """``"padded"`` on a CUDA device (few large forwards), ``"cached"`` elsewhere (fewest multiply-adds)."""
    import torch

    return "padded" if torch.device(device).type == "cuda" else "cached"


def padded_token_budget(model: Any, device: Any) -> int:
    """Tokens (rows x padded width) per forward of the ``"padded"`` path.

    On CUDA: a quarter of the free device memory divided by an estimate of the transient float32
    activations per token inside one decoder layer (residual, normed input, q/k/v/o, attention output:
    about 6 x hidden; gate, up and their product: 3 x intermediate) plus the final hidden state kept
    for the LM head; clamped to [4,096, 262,144]. This is a memory model, not a measurement. On a CPU:
    8,192 (memory is not the limit there, and larger forwards gain nothing).
    """
    import torch

    dev = torch.device(device)
    if dev.type != "cuda":
        return 8192
    cfg = model.config
    per_token = 4 * (6 * cfg.hidden_size + 3 * getattr(cfg, "intermediate_size", 4 * cfg.hidden_size))
    per_token += 4 * cfg.hidden_size
    free, _ = torch.cuda.mem_get_info(dev)
    return int(min(262_144, max(4096, free // 4 // per_token)))


def length_buckets(lengths: Sequence[int], token_budget: int) -> list[list[int]]:
    """Indices grouped into forwards: ascending length, each group's ``rows x max length <= token_budget``.

    A sequence longer than the budget gets a group of its own. Sorting first keeps padding small
    (neighbours have similar lengths).
    """
    if token_budget < 1:
        raise ValueError(f"token_budget: must be >= 1, got {token_budget}")
    order = sorted(range(len(lengths)), key=lambda k: lengths[k])
    groups: list[list[int]] = []
    cur: list[int] = []
    for k in order:
        if cur and (len(cur) + 1) * lengths[k] > token_budget:
            groups.append(cur)
            cur = []
        cur.append(k)
    if cur:
        groups.append(cur)
    return groups


def _head_logprobs(model, h, targets, temperature, top_p, chunk, nucleus_method):
    """``log q(target)`` at each hidden state (LM head applied in chunks of ``chunk`` rows)."""
    import torch

    parts = []
    for lo in range(0, h.shape[0], chunk):
        logits = model.lm_head(h[lo : lo + chunk])
        parts.append(token_logprobs(logits, targets[lo : lo + chunk], temperature, top_p, nucleus_method))
    return torch.cat(parts) if parts else torch.zeros(0, dtype=torch.float64, device=h.device)


def score_padded(
    model: Any,
    pairs: Sequence[Pair],
    temperature: float,
    top_p: float,
    *,
    pad_id: int,
    device: Any,
    token_budget: int,
    head_chunk: int,
    nucleus_method: str,
) -> np.ndarray:
    """``log q(reply | prompt)`` per pair, whole sequences right-padded in length buckets (``"padded"``)."""
    import torch

    out = np.zeros(len(pairs), dtype=np.float64)
    live = [k for k, (pid, rid) in enumerate(pairs) if rid]  # an empty reply scores 0
    if any(not pairs[k][0] for k in live):
        raise ValueError("prompts: a rendered prompt has no tokens")
    lengths = [len(pairs[k][0]) + len(pairs[k][1]) for k in live]
    for group in length_buckets(lengths, token_budget):
        batch = [live[g] for g in group]
        width = max(lengths[g] for g in group)
        ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
        predicts = torch.zeros((len(batch), width), dtype=torch.bool)  # position j predicts reply token j+1
        for b, k in enumerate(batch):
            pid, rid = pairs[k]
            ids[b, : len(pid) + len(rid)] = torch.tensor(pid + rid)
            predicts[b, len(pid) - 1 : len(pid) + len(rid) - 1] = True
        ids = ids.to(device)
        predicts = predicts.to(device)
        # right padding: a causal model's positions never see the pads after them, so no attention mask
        hidden = model.model(input_ids=ids, use_cache=False).last_hidden_state
        h = hidden[predicts]  # row-major: all of row 0's reply positions, then row 1's, ...
        targets = ids[:, 1:][predicts[:, :-1]]
        owner = predicts.nonzero()[:, 0]
        lp = _head_logprobs(model, h, targets, temperature, top_p, head_chunk, nucleus_method)
        sums = torch.zeros(len(batch), dtype=torch.float64, device=lp.device).index_add_(0, owner, lp)
        out[batch] = sums.cpu().numpy()
    return out


def score_prompt_cached(
    model: Any,
    pairs: Sequence[Pair],
    temperature: float,
    top_p: float,
    *,
    pad_id: int,
    device: Any,
    batch_size: int,
    head_chunk: int,
    nucleus_method: str,
) -> np.ndarray:
    """``log q(reply | prompt)`` per pair, each distinct prompt run once and its cache reused (``"cached"``)."""
    import torch

    out = np.zeros(len(pairs), dtype=np.float64)
    groups: dict[tuple[int, ...], list[int]] = {}
    for k, (pid, _) in enumerate(pairs):
        groups.setdefault(tuple(pid), []).append(k)
    dev = device
    for pid, members in groups.items():
        members = sorted(members, key=lambda k: len(pairs[k][1]))
        if not any(pairs[k][1] for k in members):
            continue
        if not pid:
            raise ValueError("prompts: a rendered prompt has no tokens")
        first = model.model(input_ids=torch.tensor([pid], device=dev), use_cache=True)
        h_last = first.last_hidden_state[0, -1]  # predicts every reply's first token
        cache = first.past_key_values
        lp_len = len(pid)
        for lo in range(0, len(members), batch_size):
            batch = [k for k in members[lo : lo + batch_size] if pairs[k][1]]
            if not batch:
                continue
            width = max(len(pairs[k][1]) for k in batch) - 1  # inputs: reply tokens but the last
            hs, targets, owner = [], [], []
            if width > 0:
                inp = torch.full((len(batch), width), pad_id, dtype=torch.long)
                mask = torch.zeros((len(batch), lp_len + width), dtype=torch.long)
                mask[:, :lp_len] = 1
                for b, k in enumerate(batch):
                    rid = pairs[k][1]
                    inp[b, : len(rid) - 1] = torch.tensor(rid[:-1])
                    mask[b, lp_len : lp_len + len(rid) - 1] = 1
                c = copy.deepcopy(cache)
                c.batch_repeat_interleave(len(batch))
                pos = torch.arange(lp_len, lp_len + width, device=dev)[None, :].expand(len(batch), -1)
                hidden = model.model(
                    input_ids=inp.to(dev), attention_mask=mask.to(dev), past_key_values=c, position_ids=pos
                ).last_hidden_state
            for b, k in enumerate(batch):
                rid = pairs[k][1]
                hs.append(h_last[None, :])
                if len(rid) > 1:
                    hs.append(hidden[b, : len(rid) - 1])
                targets.extend(rid)
                owner.extend([b] * len(rid))
            t = torch.tensor(targets, device=dev)
            tok_lp = _head_logprobs(model, torch.cat(hs, dim=0), t, temperature, top_p, head_chunk, nucleus_method)
            sums = torch.zeros(len(batch), dtype=torch.float64, device=tok_lp.device)
            sums.index_add_(0, torch.tensor(owner, device=tok_lp.device), tok_lp)
            out[batch] = sums.cpu().numpy()
    return out
