"""Teacher-forced scoring for the local backend: two paths, the same log-probabilities.

MOSAIC scores every candidate under 2-3 prompts (``π_ref`` and the advertisers' LLMs): many (prompt,
reply) pairs, few distinct prompts. Two ways to run them, chosen by device (:func:`scoring_path_for`):

* ``"cached"`` (CPU default): each distinct prompt runs once; its key/value cache is repeated for its
  replies, which run in batches of ``batch_size``. Fewest multiply-adds (a prompt is never recomputed),
  but one small forward per (prompt, batch): on a GPU that is a long row of sequential, mostly idle
  launches (a MOSAIC batch of 25 instances has 75 distinct prompts).
* ``"padded"`` (CUDA default): all distinct prompts prefilled in one left-padded forward, then all
  replies, sorted by length and cut into buckets whose padded size (rows x (prompt width + longest
  reply)) stays within a token budget per forward (:func:`padded_token_budget`, from the device's free
  memory), each row continuing its prompt's key/value cache. A batch of the experiment is then a
  handful of large forwards, and no prompt is computed twice (running whole (prompt, reply) sequences
  instead would recompute each prompt once per reply).

Either way the LM head is applied only at reply positions, in chunks, and each position's
log-probability comes from :func:`adspace.models.kernels.token_logprobs`.
``tests/models/test_llm_local.py`` checks that both paths give the same numbers.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import numpy as np

from adspace.models.kernels import path_for, token_logprobs

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
    """``"padded"`` on a CUDA device (few large forwards), ``"cached"`` elsewhere (fewest multiply-adds);
    ``$ADSPACE_SCORING`` (a path's name) picks one for every device."""
    return path_for(device, cuda="padded", other="cached", env="ADSPACE_SCORING", choices=SCORING_PATHS)


def padded_token_budget(model: Any, device: Any) -> int:
    """Tokens (rows x padded width) per forward of the ``"padded"`` path.

    On CUDA: a quarter of the free device memory divided by an estimate of the float32 bytes a token
    holds: transient activations inside one decoder layer (residual, normed input, q/k/v/o, attention
    output: about 6 x hidden; gate, up and their product: 3 x intermediate), the final hidden state kept
    for the LM head, and its keys and values in every layer (the prompt's cache, selected per row, and
    the reply's); clamped to [4,096, 262,144]. This is a memory model, not a measurement. On a CPU:
    8,192 (memory is not the limit there, and larger forwards gain nothing).
    """
    import torch

    dev = torch.device(device)
    if dev.type != "cuda":
        return 8192
    cfg = model.config
    per_token = 4 * (6 * cfg.hidden_size + 3 * getattr(cfg, "intermediate_size", 4 * cfg.hidden_size))
    per_token += 4 * cfg.hidden_size
    heads = getattr(cfg, "num_key_value_heads", None) or cfg.num_attention_heads
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    per_token += 4 * 2 * cfg.num_hidden_layers * heads * head_dim
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
    """``log q(reply | prompt)`` per pair in a few large padded forwards (``"padded"``).

    The distinct prompts are prefilled together, left-padded so that they end at the same column (in
    chunks of at most ``token_budget`` tokens); then the replies run in length buckets of at most
    ``token_budget`` tokens (rows x (prompt width + reply width)), each row on its prompt's key/value
    cache (selected by index), right-padded, with the prompt's padding masked and position ids that
    continue the prompt's own. No prompt is run twice.
    """
    import torch

    out = np.zeros(len(pairs), dtype=np.float64)
    live = [k for k, (_, rid) in enumerate(pairs) if rid]  # an empty reply scores 0
    index: dict[tuple[int, ...], int] = {}
    for k in live:
        index.setdefault(tuple(pairs[k][0]), len(index))
    prompts = list(index)
    if any(not p for p in prompts):
        raise ValueError("prompts: a rendered prompt has no tokens")
    dev = device
    for chunk in length_buckets([len(p) for p in prompts], token_budget):
        local = {prompts[i]: j for j, i in enumerate(chunk)}
        wp = max(len(prompts[i]) for i in chunk)
        ids = torch.full((len(chunk), wp), pad_id, dtype=torch.long)
        attn = torch.zeros((len(chunk), wp), dtype=torch.long)
        for j, i in enumerate(chunk):
            ids[j, wp - len(prompts[i]) :] = torch.tensor(prompts[i])
            attn[j, wp - len(prompts[i]) :] = 1
        attn = attn.to(dev)
        plen = attn.sum(-1)
        first = model.model(
            input_ids=ids.to(dev), attention_mask=attn, position_ids=(attn.cumsum(-1) - 1).clamp(min=0), use_cache=True
        )
        h_last = first.last_hidden_state[:, -1]  # predicts each reply's first token
        cache = first.past_key_values
        members = [k for k in live if tuple(pairs[k][0]) in local]
        for group in length_buckets([wp + len(pairs[k][1]) - 1 for k in members], token_budget):
            batch = [members[g] for g in group]
            owner_prompt = torch.tensor([local[tuple(pairs[k][0])] for k in batch], device=dev)
            rlen = torch.tensor([len(pairs[k][1]) for k in batch], device=dev)
            wr = max(len(pairs[k][1]) for k in batch)
            targets = torch.full((len(batch), wr), pad_id, dtype=torch.long)
            for b, k in enumerate(batch):
                targets[b, : len(pairs[k][1])] = torch.tensor(pairs[k][1])
            targets = targets.to(dev)
            hs = h_last[owner_prompt][:, None]  # (rows, 1, hidden)
            if wr > 1:  # inputs: every reply token but the last, right-padded after the prompt
                c = copy.deepcopy(cache)
                c.batch_select_indices(owner_prompt)
                inp = targets[:, :-1]
                mask = torch.cat([attn[owner_prompt], (torch.arange(wr - 1, device=dev) < rlen[:, None] - 1).long()], 1)
                pos = plen[owner_prompt][:, None] + torch.arange(wr - 1, device=dev)
                hidden = model.model(
                    input_ids=inp, attention_mask=mask, past_key_values=c, position_ids=pos, use_cache=True
                ).last_hidden_state
                hs = torch.cat([hs, hidden], dim=1)
            predicts = torch.arange(wr, device=dev)[None, :] < rlen[:, None]
            lp = _head_logprobs(model, hs[predicts], targets[predicts], temperature, top_p, head_chunk, nucleus_method)
            sums = torch.zeros(len(batch), dtype=torch.float64, device=lp.device)
            sums.index_add_(0, predicts.nonzero()[:, 0], lp)
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
