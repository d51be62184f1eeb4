"""The ad-writer stage: a supervised warm start that teaches a small model the ``@Title@[Ad-ID]`` markup.

SmolLM2-135M-Instruct, given the ad-writer prompt, answers the question but almost never writes a
candidate's markup by itself, so on-policy IRPO would see no ad and no reward. The paper's pre-trained
model (a multi-billion-parameter instruct model) is already an ad-writer; this stage makes the small one one, before IRPO:

1. **Replies the project writes.** For each warm-start query (disjoint from the held-out queries) the
   model answers under the ad-writer prompt (its own words, so the target stays in its distribution);
   any stray ``@`` or ``[`` is removed from the answer, and the candidate most relevant to the query
   (cosine of sentence embeddings of the query and the ad's title and description; ties by bid) is
   inserted as ``"<connective> @Title@[Ad-ID]."`` at the start of the answer or after its first sentence,
   so that it falls inside a short reply. A share ``no_ad`` of the examples keep the answer without an
   ad (the rules allow none).
2. **Supervised fine-tuning.** LoRA on the attention projections, cross-entropy on the reply tokens only
   (the prompt is context), AdamW, a few passes; the adapter is merged into the weights, so IRPO and
   every evaluation start from the warm-started model.

:func:`writer_figures` gives the stage's own figures on held-out queries: the insertion rate (share of
replies with at least one valid insertion) and the format-error rate (share of replies with at least
one format error), before and after.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from adspace.experiments.llm_auction.data import AuctionQuery
from adspace.experiments.llm_auction.environment import prompts_for
from adspace.experiments.llm_auction.format import Ad, insert_ad_sentence, parse_reply
from adspace.experiments.llm_auction.users import ClickModel

__all__ = ["WarmStartConfig", "ad_integrated_reply", "pick_ad", "warm_start", "warm_start_examples", "writer_figures"]


@dataclass(frozen=True)
class WarmStartConfig:
    """Size of the warm start (the defaults fit a 2-core CPU in about two minutes)."""

    max_new_tokens: int = 40  # length of the model's own answers that the ads are written into
    no_ad: float = 0.15  # share of examples without an ad
    steps: int = 16
    batch_size: int = 4
    learning_rate: float = 3e-3
    lora_r: int = 8
    lora_alpha: int = 16
    lora_targets: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")
    temperature: float = 0.7
    top_p: float = 0.8
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("max_new_tokens", "steps", "batch_size", "lora_r"):
            v = getattr(self, name)
            if int(v) != v or v < 1:
                raise ValueError(f"{name}: must be a positive integer, got {v!r}")
        if not 0.0 <= self.no_ad < 1.0:
            raise ValueError(f"no_ad: must be in [0, 1), got {self.no_ad!r}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate: must be > 0, got {self.learning_rate!r}")


def pick_ad(query: AuctionQuery, bids: Sequence[float], embed) -> int:
    """Index of the candidate most relevant to the query (embedding cosine), ties broken by the higher bid."""
    vecs = np.asarray(embed([query.text] + [ClickModel.ad_text(a) for a in query.candidates]), dtype=np.float64)
    vecs /= np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)
    rel = vecs[1:] @ vecs[0]
    return int(max(range(len(rel)), key=lambda k: (round(float(rel[k]), 6), float(bids[k]))))


def ad_integrated_reply(answer: str, ad: Ad, rng: np.random.Generator) -> str:
    """``answer`` (stray ``@`` and ``[`` removed) with ``ad``'s markup in a short connective sentence, at the
    start or after a first sentence of at most 120 characters.

    >>> ad_integrated_reply("Rest well. Then run.", Ad("Ad-1", "Soup Kit"), np.random.default_rng(1))
    'A good option is @Soup Kit@[Ad-1]. Rest well. Then run.'
    """
    text = " ".join(answer.replace("@", " ").replace("[", "(").replace("]", ")").split())
    return insert_ad_sentence(text, ad, rng, max_first_sentence=120)


def warm_start_examples(
    backend, queries: Sequence[AuctionQuery], bids: np.ndarray, cfg: WarmStartConfig, *, short: bool = True
) -> list[dict]:
    """``{"prompt": messages, "reply": text}`` per query: the model's own answer with an ad written in."""
    from adspace.models.embedder import get_embedder

    embed = get_embedder().embed
    rng = np.random.default_rng(cfg.seed)
    msgs = prompts_for(queries, bids, short=short)
    answers = backend.sample(
        msgs, 1, max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature, top_p=cfg.top_p, seed=cfg.seed
    )
    out = []
    for q, b, m, (a,) in zip(queries, bids, msgs, answers, strict=True):
        if rng.random() < cfg.no_ad:
            reply = " ".join(a.text.replace("@", " ").replace("[", "(").replace("]", ")").split())
        else:
            reply = ad_integrated_reply(a.text, q.candidates[pick_ad(q, b, embed)], rng)
        if parse_reply(reply, q.candidates).n_errors:  # pragma: no cover - the writer above cannot make one
            raise RuntimeError(f"warm-start reply with a format error: {reply!r}")
        out.append({"prompt": m, "reply": reply})
    return out


def warm_start(backend, examples: Sequence[dict], cfg: WarmStartConfig) -> dict:
    """Fine-tune ``backend.model`` (LoRA, merged in place) on ``examples``; returns losses and timings."""
    import torch
    from peft import LoraConfig, get_peft_model

    if not examples:
        raise ValueError("examples: need at least one warm-start example")
    t0 = time.perf_counter()
    tok = backend.tokenizer
    seqs = []
    for ex in examples:
        p = backend.prompt_ids(ex["prompt"])
        r = list(tok(ex["reply"], add_special_tokens=False)["input_ids"]) + [backend.eos_id]
        seqs.append((p, r))
    torch.manual_seed(cfg.seed)
    model = get_peft_model(
        backend.model,
        LoraConfig(
            r=cfg.lora_r,
            lora_alpha=cfg.lora_alpha,
            lora_dropout=0.0,
            target_modules=list(cfg.lora_targets),
            task_type="CAUSAL_LM",
        ),
    )
    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.learning_rate)
    rng = np.random.default_rng(cfg.seed)
    dev = backend.device
    losses = []
    order: list[int] = []
    for step in range(cfg.steps):
        if len(order) < cfg.batch_size:
            order += rng.permutation(len(seqs)).tolist()
        batch, order = order[: cfg.batch_size], order[cfg.batch_size :]
        for g in opt.param_groups:
            g["lr"] = cfg.learning_rate * 0.5 * (1 + np.cos(np.pi * step / cfg.steps))  # cosine decay
        opt.zero_grad()
        total = 0.0
        for k in batch:
            p, r = seqs[k]
            # the prompt runs once without a graph (its keys and values, LoRA included, are exact; the
            # gradient flows through the reply's positions only): on a CPU the prompt is most of the tokens
            with torch.no_grad():
                cache = model(input_ids=torch.tensor([p], device=dev), use_cache=True).past_key_values
            ids = torch.tensor([[p[-1]] + r[:-1]], device=dev)
            pos = torch.arange(len(p) - 1, len(p) + len(r) - 1, device=dev)[None, :]
            cache.crop(-1)
            logits = model(input_ids=ids, past_key_values=cache, position_ids=pos, use_cache=True).logits[0]
            loss = torch.nn.functional.cross_entropy(logits.float(), torch.tensor(r, device=dev))
            (loss / len(batch)).backward()
            total += float(loss.detach()) / len(batch)
        opt.step()
        losses.append(total)
    backend.model = model.merge_and_unload().eval()
    return {"examples": len(seqs), "steps": cfg.steps, "losses": losses, "seconds": time.perf_counter() - t0}


def writer_figures(rollouts: Sequence[Sequence[Any]]) -> dict:
    """Insertion rate and format-error rate (shares of replies) of sampled ad-writer replies."""
    flat = [r for row in rollouts for r in row]
    if not flat:
        raise ValueError("rollouts: no replies")
    return {
        "insertion_rate": float(np.mean([r.parsed.n_ads > 0 for r in flat])),
        "format_error_rate": float(np.mean([r.parsed.n_errors > 0 for r in flat])),
        "ads_per_reply": float(np.mean([r.parsed.n_ads for r in flat])),
        "replies": len(flat),
    }
