"""Training LLM-Auction: the pCTR reward model and Iterative Reward-Preference Optimization (IRPO).

IRPO (full paper, §5; ``docs/llm-auction.md``) alternates, every epoch:

1. **Deploy and collect.** Bids are redrawn uniformly from ``{1..100}`` for every training query. The
   current LLM writes ``M`` replies per query (the shared backend, :mod:`adspace.models.llm`); the
   simulated user clicks (:mod:`.users`).
2. **Reward model.** A pCTR model is trained on every (reply, inserted ad, click) seen so far with binary
   cross-entropy (:class:`PCTRModel`).
3. **Preference alignment.** Reward of a reply ``= Σ_{i ∈ y} b_i·pCTR_i − λ·s_resp(y)`` (the Oracle
   variant uses the simulator's 0/1 clicks instead of pCTR). Per query the best reply is *chosen* and every
   reply whose reward is more than ``δ_th`` below it is *rejected*; TRL's ``DPOTrainer`` trains on those
   pairs. The DPO reference is the model at the start of the epoch: with LoRA the adapter is merged into
   the weights after each epoch and a fresh adapter is trained the next epoch, so the adapter-disabled
   model TRL uses as reference is always the current one (refreshed reference, as in the paper).

Checkpoints per epoch under ``out_dir/epoch_{k}``: the LoRA adapter (or the full model without LoRA), the
pCTR model's state dict, and ``metrics.json``. ``metrics.jsonl`` in ``out_dir`` collects every epoch.

The pCTR model follows the paper's architecture where it can on CPU: text embeddings of query and reply
(all-MiniLM-L6-v2, 384-d, instead of Qwen3-Embedding-0.6B's 1024-d), a 64-d user embedding and a 32-d ad
embedding, an MLP 128/64/32, Adam at 1e-3, batch 256. The paper learns user and ad embeddings by id; the
held-out queries here have unseen users, so the 64-d and 32-d embeddings are *learned projections* of the
sentence embeddings of the profile and the ad text (they generalise to new users and ads). Two counts,
ads and format errors in the reply, complete the input.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from adspace.experiments.llm_auction.data import AuctionQuery
from adspace.experiments.llm_auction.environment import Rollout, draw_bids, prompts_for, score_texts
from adspace.experiments.llm_auction.format import insert_ad_sentence, parse_reply, strip_markup
from adspace.experiments.llm_auction.users import ClickModel, UserSimulator
from adspace.mechanisms import llm_auction as gen

__all__ = [
    "IRPOConfig",
    "PCTRData",
    "PCTRModel",
    "check_device",
    "dpo_args",
    "off_device",
    "explore_replies",
    "preference_pairs",
    "run_irpo",
    "sample_replies",
]


def check_device(device: str) -> str:
    """``device`` if torch can place tensors there; ``ValueError`` naming ``device`` otherwise.

    ``"cpu"`` always; ``"cuda"`` / ``"cuda:N"`` only when CUDA is available (a GPU run asked for on a
    machine without one fails here, not halfway through training).
    """
    if not isinstance(device, str) or not device:
        raise ValueError(f"device: must be a torch device string such as 'cpu' or 'cuda', got {device!r}")
    import torch

    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise ValueError(f"device: {exc}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device: {device!r} was asked for but CUDA is not available on this machine")
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"device: only 'cpu' and 'cuda[:N]' are supported, got {device!r}")
    return device


@dataclass
class IRPOConfig:
    """Hyperparameters of IRPO. The defaults are the scaled-down CPU run; :meth:`paper` is the paper's."""

    epochs: int = 2
    samples: int = 4  # M replies per training query
    max_new_tokens: int = 48
    temperature: float = 0.7
    top_p: float = 0.8
    bid_low: int = 1
    bid_high: int = 100
    lam: float = 1.0
    ad_cost: float = gen.DEFAULT_AD_COST
    error_cost: float = gen.DEFAULT_ERROR_COST
    delta_th: float = 10.0
    reward: str = "pctr"  # or "oracle"
    short_prompt: bool = True  # condensed ad-writer rules (prompt length dominates CPU cost)
    explore: float = 0.5  # share of the M replies that get a candidate's markup inserted (see explore_replies)
    # DPO
    dpo_beta: float = 0.1
    learning_rate: float = 5e-3  # LoRA on few pairs: 5e-4 left sampled replies unchanged in a 2-epoch run
    lr_scheduler: str = "cosine"
    warmup_ratio: float = 0.1
    batch_size: int = 4
    grad_accum: int = 1
    dpo_epochs: int = 2  # passes over each epoch's pairs
    max_pairs: int | None = 12  # cap on pairs per epoch (CPU budget)
    use_lora: bool = True
    lora_r: int = 8
    lora_alpha: int = 16
    lora_targets: tuple[str, ...] = ("q_proj", "v_proj")
    bf16: bool = False
    constrained: bool = False  # sample (and align by DPO) the constrained ad-writer (see .constrained)
    candidate_reward: bool = True  # diagnostic: the policy's expected reward over its sampled replies, before/after DPO
    precompute_ref: bool = True  # reference log-probs computed once per epoch, not at every DPO step
    device: str = "cpu"  # one device for sampling, scoring, pCTR and DPO (the backend must be on it)
    # pCTR
    pctr_hidden: tuple[int, ...] = (128, 64, 32)
    pctr_user_dim: int = 64
    pctr_ad_dim: int = 32
    pctr_batch: int = 256
    pctr_lr: float = 1e-3
    pctr_steps: int = 200
    seed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.reward not in ("pctr", "oracle"):
            raise ValueError(f"reward: must be 'pctr' or 'oracle', got {self.reward!r}")
        for name in ("epochs", "samples", "max_new_tokens", "batch_size", "grad_accum", "dpo_epochs", "pctr_steps"):
            v = getattr(self, name)
            if int(v) != v or v < 1:
                raise ValueError(f"{name}: must be a positive integer, got {v!r}")
        if self.samples < 2:
            raise ValueError(f"samples: need at least 2 replies per query to form preference pairs, got {self.samples}")
        if self.delta_th < 0:
            raise ValueError(f"delta_th: must be >= 0, got {self.delta_th!r}")
        check_device(self.device)

    @classmethod
    def paper(cls, **kw: Any) -> IRPOConfig:
        """The paper's hyperparameters: M = 5, δ_th = 10, λ = 1, DPO β = 0.1, lr 1e-6 cosine with 10% warm-up,
        batch 64, bf16 full fine-tuning, replies up to 2,048 tokens at temperature 0.7 / top-p 0.8, pCTR batch
        256 at 1e-3. (The paper's 12,000 training queries and epoch count are the experiment's config.)"""
        base = dict(
            epochs=3,
            samples=5,
            max_new_tokens=2048,
            learning_rate=1e-6,
            batch_size=8,
            grad_accum=8,
            use_lora=False,
            dpo_epochs=1,
            max_pairs=None,
            bf16=True,
            short_prompt=False,
            explore=0.0,
            pctr_steps=2000,
        )
        base.update(kw)
        return cls(**base)


# --------------------------------------------------------------------------------------------------
# pCTR reward model
# --------------------------------------------------------------------------------------------------


@dataclass
class PCTRData:
    """Training rows of the pCTR model: one per validly inserted ad in a reply."""

    query: list[str] = field(default_factory=list)
    reply: list[str] = field(default_factory=list)
    profile: list[str] = field(default_factory=list)
    ad: list[str] = field(default_factory=list)
    counts: list[tuple[float, float]] = field(default_factory=list)
    label: list[float] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.label)

    @staticmethod
    def rows(r: Rollout) -> list[tuple[str, str, str, str, tuple[float, float], float]]:
        clicked = r.clicked
        text = strip_markup(r.parsed)
        out = []
        for ins in r.parsed.insertions:
            ad = r.query.candidates[ins.index]
            out.append(
                (
                    r.query.text,
                    text,
                    r.query.profile,
                    ClickModel.ad_text(ad),
                    (float(r.parsed.n_ads), float(r.parsed.n_errors)),
                    float(clicked[ins.index]),
                )
            )
        return out

    def add(self, rollouts: Sequence[Rollout]) -> None:
        for r in rollouts:
            for q, y, h, a, c, lab in self.rows(r):
                self.query.append(q)
                self.reply.append(y)
                self.profile.append(h)
                self.ad.append(a)
                self.counts.append(c)
                self.label.append(lab)


class PCTRModel:
    """pCTR: ``P(click | query, reply, user, ad)`` from sentence embeddings, an MLP trained with BCE."""

    def __init__(self, cfg: IRPOConfig, embedder=None):
        import torch
        from torch import nn

        if embedder is None:
            from adspace.models.embedder import get_embedder

            embedder = get_embedder()
        self.embedder = embedder
        self.cfg = cfg
        d = embedder.dim
        torch.manual_seed(cfg.seed)
        self.user = nn.Linear(d, cfg.pctr_user_dim)
        self.adp = nn.Linear(d, cfg.pctr_ad_dim)
        layers: list[nn.Module] = []
        width = 2 * d + cfg.pctr_user_dim + cfg.pctr_ad_dim + 2
        for h in cfg.pctr_hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        layers.append(nn.Linear(width, 1))
        self.mlp = nn.Sequential(*layers)
        self.modules = nn.ModuleList([self.user, self.adp, self.mlp]).to(cfg.device)
        self.device = cfg.device
        self.opt = torch.optim.Adam(self.modules.parameters(), lr=cfg.pctr_lr)

    def _inputs(self, query, reply, profile, ad, counts):
        import torch

        e = self.embedder.embed
        dev = self.device
        q, y, h, a = (torch.as_tensor(e(list(x)), dtype=torch.float32, device=dev) for x in (query, reply, profile, ad))
        c = torch.log1p(torch.as_tensor(np.asarray(counts, dtype=np.float32).reshape(-1, 2), device=dev))
        return q, y, h, a, c

    def _logits(self, q, y, h, a, c):
        import torch

        return self.mlp(torch.cat([q, y, self.user(h), self.adp(a), c], dim=1))[:, 0]

    def fit(self, data: PCTRData, steps: int | None = None) -> dict:
        """``steps`` Adam steps on mini-batches of ``pctr_batch`` rows; returns BCE before and after."""
        import torch

        if len(data) == 0:
            return {"rows": 0}
        x = self._inputs(data.query, data.reply, data.profile, data.ad, data.counts)
        y = torch.as_tensor(np.asarray(data.label, dtype=np.float32), device=self.device)
        loss_fn = torch.nn.BCEWithLogitsLoss()
        g = torch.Generator().manual_seed(self.cfg.seed + len(data))
        with torch.no_grad():
            before = float(loss_fn(self._logits(*x), y))
        for _ in range(steps or self.cfg.pctr_steps):
            idx = torch.randint(0, len(y), (min(self.cfg.pctr_batch, len(y)),), generator=g).to(self.device)
            self.opt.zero_grad()
            loss = loss_fn(self._logits(*(t[idx] for t in x)), y[idx])
            loss.backward()
            self.opt.step()
        with torch.no_grad():
            after = float(loss_fn(self._logits(*x), y))
        return {"rows": len(data), "positives": float(y.mean()), "bce_before": before, "bce_after": after}

    def predict(self, rollouts: Sequence[Rollout]) -> list[np.ndarray]:
        """``(n_candidates,)`` pCTR per reply (0 for ads not shown)."""
        import torch

        rows, where = [], []
        for k, r in enumerate(rollouts):
            for ins, row in zip(r.parsed.insertions, PCTRData.rows(r), strict=True):
                rows.append(row)
                where.append((k, ins.index))
        out = [np.zeros(len(r.query.candidates)) for r in rollouts]
        if rows:
            cols = list(zip(*rows, strict=True))
            with torch.no_grad():
                p = torch.sigmoid(self._logits(*self._inputs(*cols[:5]))).double().cpu().numpy()
            for (k, i), v in zip(where, p, strict=True):
                out[k][i] = float(v)
        return out

    def state_dict(self):
        return self.modules.state_dict()


# --------------------------------------------------------------------------------------------------
# Preference pairs
# --------------------------------------------------------------------------------------------------


def preference_pairs(rewards: Sequence[float], delta_th: float) -> list[tuple[int, int]]:
    """``(chosen, rejected)`` index pairs: the best reply against every reply more than ``delta_th`` worse.

    >>> preference_pairs([5.0, -20.0, 3.0, -6.0], 10.0)
    [(0, 1), (0, 3)]
    >>> preference_pairs([1.0, 1.0], 0.0)
    []
    """
    r = np.asarray(rewards, dtype=np.float64)
    if r.ndim != 1 or r.size == 0:
        raise ValueError(f"rewards: must be a non-empty 1-D sequence, got shape {r.shape}")
    best = int(np.argmax(r))
    return [(best, j) for j in range(r.size) if r[best] - r[j] > delta_th]


def explore_replies(
    texts: Sequence[Sequence[str]], queries: Sequence[AuctionQuery], share: float, rng: np.random.Generator
) -> list[list[str]]:
    """Exploration for small models: in a ``share`` of the sampled replies, insert one candidate ad as
    ``"<connective> @Title@[Ad-ID]."`` at the start of the reply or after its first sentence
    (:func:`~adspace.experiments.llm_auction.format.insert_ad_sentence`).

    A 135M model seldom writes the markup by itself, so on-policy replies would mostly have reward 0
    and give few preference pairs. The edited replies are off-policy data for DPO (which does not require
    on-policy samples); they let the preference signal (relevance, nativeness, bid) reach the model.
    The candidates are stratified within a query: the edited replies of one query take the candidates in a
    random order, one each, before any candidate repeats, so that the replies DPO compares differ in
    *which* ad they carry (relevance and bid), not only in whether they carry one. Only an ad the reply
    does not carry yet is inserted (a second insertion of the same ad would be a format error, which
    constrained decoding never writes). ``share = 0`` is the paper's purely on-policy IRPO.
    """
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"explore: must be in [0, 1], got {share!r}")
    out = []
    for q, row in zip(queries, texts, strict=True):
        order = [int(k) for k in rng.permutation(len(q.candidates))]
        new = []
        for t in row:
            if share > 0 and rng.random() < share:
                have = parse_reply(t, q.candidates).indices
                fresh = [k for k in order if k not in have]
                if not fresh:
                    new.append(t)
                    continue
                k = fresh[0]
                order.remove(k)
                order.append(k)  # the next edited reply of this query takes another candidate first
                t = insert_ad_sentence(t, q.candidates[k], rng)
            new.append(t)
        out.append(new)
    return out


def _reply_rewards(rows: Sequence[Rollout], cfg: IRPOConfig, pctr: PCTRModel | None) -> list[float]:
    if cfg.reward == "oracle" or pctr is None:
        ctrs = [r.clicked.astype(float) for r in rows]
    else:
        ctrs = pctr.predict(rows)
    return [
        gen.reply_reward(
            r.bids, c, r.parsed.shown(), r.parsed.n_errors, lam=cfg.lam, ad_cost=cfg.ad_cost, error_cost=cfg.error_cost
        )
        for r, c in zip(rows, ctrs, strict=True)
    ]


def _writable_pairs(backend, pairs: list[dict], msgs, queries) -> tuple[list[dict], int]:
    """The pairs whose two replies the constrained ad-writer could have written, and how many were not."""
    from adspace.experiments.llm_auction.constrained import MarkupConstraint, completion_ids, token_table

    table = token_table(backend.tokenizer)
    cons = {backend.render(m): MarkupConstraint(table, q.candidates) for m, q in zip(msgs, queries, strict=True)}
    keep = []
    for p in pairs:
        con = cons[p["prompt"]]
        sides = (completion_ids(backend.tokenizer, p["prompt"], p[k]) for k in ("chosen", "rejected"))
        if all(con.writable(ids, eos=backend.eos_id) for ids in sides):
            keep.append(p)
    return keep, len(pairs) - len(keep)


def _candidate_reward(backend, prompts, texts, rewards) -> float:
    """Mean over queries of ``Σ_j softmax_j(log π(y_j|x))·r_j`` over the query's sampled replies: the
    policy's expected reward restricted to those replies (teacher-forced, deterministic)."""
    flat_p = [p for p, row in zip(prompts, texts, strict=True) for _ in row]
    flat_t = [t for row in texts for t in row]
    lp = backend.score(flat_p, flat_t)
    out, k = [], 0
    for row, rw in zip(texts, rewards, strict=True):
        x = lp[k : k + len(row)]
        k += len(row)
        w = np.exp(x - x.max())
        out.append(float(w @ np.asarray(rw) / w.sum()))
    return float(np.mean(out))


# --------------------------------------------------------------------------------------------------
# DPO step (TRL)
# --------------------------------------------------------------------------------------------------


def off_device(module, device: str) -> list[str]:
    """The devices other than ``device`` that hold a parameter or buffer of ``module`` (empty when none)."""
    import torch

    want = torch.device(device)
    seen = set()
    for t in list(module.parameters()) + list(module.buffers()):
        d = t.device
        if d.type != want.type or (want.index is not None and d.index != want.index):
            seen.add(str(d))
    return sorted(seen)


def dpo_args(cfg: IRPOConfig, output_dir: str | Path, n_pairs: int, epoch: int = 1):
    """TRL's ``DPOConfig`` for one IRPO epoch, on ``cfg.device`` and nowhere else.

    ``use_cpu`` follows ``cfg.device``, not ``torch.cuda.is_available()``: a CPU run on a machine with a
    GPU trains on the CPU, where the backend samples (TRL would otherwise move the model to CUDA behind
    the sampler's back). With ``cfg.precompute_ref`` the reference log-probabilities of every pair are
    computed once before training (with LoRA the reference is the adapter-disabled model), not again at
    every step of every pass.
    """
    from trl import DPOConfig

    dev = check_device(cfg.device)
    steps_per_epoch = math.ceil(n_pairs / (cfg.batch_size * cfg.grad_accum))
    return DPOConfig(
        output_dir=str(output_dir),
        beta=cfg.dpo_beta,
        learning_rate=cfg.learning_rate,
        lr_scheduler_type=cfg.lr_scheduler,
        warmup_steps=max(0, int(round(cfg.warmup_ratio * steps_per_epoch * cfg.dpo_epochs))),
        per_device_train_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum,
        num_train_epochs=cfg.dpo_epochs,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        use_cpu=dev.startswith("cpu"),
        bf16=cfg.bf16,
        seed=cfg.seed + epoch,
        disable_tqdm=True,
        max_length=None,
        dataset_num_proc=None,
        precompute_ref_log_probs=cfg.precompute_ref,
        gradient_checkpointing=False,  # TRL turns it on by default: recomputation costs time, memory is no issue here
    )


def sample_replies(backend, msgs, queries: Sequence[AuctionQuery], n: int, cfg: IRPOConfig, seed: int):
    """``n`` replies per prompt from the ad-writer, constrained (:mod:`.constrained`) when ``cfg.constrained``."""
    kw = dict(max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature, top_p=cfg.top_p, seed=seed)
    if cfg.constrained:
        from adspace.experiments.llm_auction.constrained import sample_constrained

        return sample_constrained(backend, msgs, [q.candidates for q in queries], n, **kw)
    return backend.sample(msgs, n, **kw)


def _dpo_epoch(
    backend, pairs: list[dict], cfg: IRPOConfig, out_dir: Path, epoch: int, candidates: dict | None = None
) -> dict:
    """Train the backend's model with DPO on ``pairs``; reference = the model as it is now.

    ``candidates`` (prompt token ids -> candidate ads) makes DPO use the constrained distribution's
    log-probabilities (:class:`~.constrained.ConstrainedLogProbs`) for policy and reference alike.
    """
    from datasets import Dataset
    from transformers.utils import logging as hf_logging
    from trl import DPOTrainer as _DPOTrainer

    hf_logging.set_verbosity_error()
    import datasets

    datasets.disable_progress_bars()
    model = backend.model
    tok = backend.tokenizer
    if off_device(model, cfg.device):
        raise ValueError(
            f"device: the IRPO config says {cfg.device!r} but the backend's model has tensors on "
            f"{off_device(model, cfg.device)} (build the backend with LocalLLM(device=cfg.device))"
        )
    args = dpo_args(cfg, out_dir / f"epoch_{epoch}" / "trainer", len(pairs), epoch)

    def _constrain(trainer) -> None:
        # after TRL's fused LM head is added, before any log-probability (the precomputed reference included)
        if not candidates or getattr(trainer, "_adspace_constrained", False):
            return
        from peft import PeftModel

        from adspace.experiments.llm_auction.constrained import ConstrainedLogProbs

        m = trainer.model
        ConstrainedLogProbs(tok, candidates).patch(m.get_base_model() if isinstance(m, PeftModel) else m)
        if trainer.ref_model is not None:
            ConstrainedLogProbs(tok, candidates).patch(trainer.ref_model)
        trainer._adspace_constrained = True

    class DPOTrainer(_DPOTrainer):
        def _precompute_ref_logps(self, *a, **kw):
            _constrain(self)
            return super()._precompute_ref_logps(*a, **kw)

    model.train()
    if cfg.use_lora:
        from peft import LoraConfig, get_peft_model

        peft_model = get_peft_model(
            model,
            LoraConfig(
                r=cfg.lora_r,
                lora_alpha=cfg.lora_alpha,
                lora_dropout=0.0,
                target_modules=list(cfg.lora_targets),
                task_type="CAUSAL_LM",
            ),
        )
        trainer = DPOTrainer(
            model=peft_model, ref_model=None, args=args, train_dataset=Dataset.from_list(pairs), processing_class=tok
        )
    else:
        import copy

        ref = copy.deepcopy(model).eval()
        trainer = DPOTrainer(
            model=model, ref_model=ref, args=args, train_dataset=Dataset.from_list(pairs), processing_class=tok
        )
    _constrain(trainer)
    trainer.train()
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    margins = [h.get("rewards/margins") for h in trainer.state.log_history if "rewards/margins" in h]
    ckpt = out_dir / f"epoch_{epoch}"
    if cfg.use_lora:
        peft_model.save_pretrained(ckpt / "adapter")
        backend.model = peft_model.merge_and_unload()
    else:
        model.save_pretrained(ckpt / "model")
    backend.model.eval()
    moved = off_device(backend.model, cfg.device)
    if moved:  # pragma: no cover - would be a TRL/accelerate regression; dpo_args pins the device
        raise RuntimeError(f"DPO moved the model off {cfg.device!r} to {moved}")
    return {"dpo_losses": losses, "dpo_margins": margins, "dpo_steps": len(losses)}


# --------------------------------------------------------------------------------------------------
# The IRPO loop
# --------------------------------------------------------------------------------------------------


def run_irpo(
    backend,
    queries: Sequence[AuctionQuery],
    cfg: IRPOConfig,
    out_dir: str | Path,
    *,
    user: UserSimulator | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict:
    """Train ``backend.model`` (a :class:`adspace.models.llm.LocalLLM`, modified in place) by IRPO.

    Returns ``{"epochs": [metrics per epoch], "pctr": PCTRModel | None}``; writes checkpoints and
    ``metrics.jsonl`` under ``out_dir``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    user = user if user is not None else ClickModel(seed=cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    pctr = PCTRModel(cfg) if cfg.reward == "pctr" else None
    data = PCTRData()
    history = []
    say = progress or (lambda s: None)
    for epoch in range(cfg.epochs):
        t0 = time.perf_counter()
        bids = draw_bids(len(queries), len(queries[0].candidates), rng, cfg.bid_low, cfg.bid_high)
        msgs = prompts_for(queries, bids, short=cfg.short_prompt)
        say(f"epoch {epoch + 1}/{cfg.epochs}: sampling {cfg.samples} replies x {len(queries)} queries")
        replies = sample_replies(backend, msgs, queries, cfg.samples, cfg, seed=cfg.seed * 1000 + epoch)
        texts = explore_replies([[r.text for r in row] for row in replies], queries, cfg.explore, rng)
        rolls = score_texts(queries, bids, msgs, texts, user)
        t_sample = time.perf_counter() - t0
        for row in rolls:
            data.add(row)
        pctr_stats = pctr.fit(data) if pctr is not None else {}
        rewards = [_reply_rewards(row, cfg, pctr) for row in rolls]
        pairs = []
        for m, row, rw in zip(msgs, rolls, rewards, strict=True):
            prompt = backend.render(m)
            for c, r in preference_pairs(rw, cfg.delta_th):
                pairs.append({"prompt": prompt, "chosen": row[c].text, "rejected": row[r].text})
        unwritable = 0
        if cfg.constrained:
            # DPO aligns the constrained distribution: a pair with a reply it gives probability 0 (as TRL
            # tokenizes it) has no finite log-ratio; such pairs are dropped and counted
            pairs, unwritable = _writable_pairs(backend, pairs, msgs, queries)
        if cfg.max_pairs is not None and len(pairs) > cfg.max_pairs:
            keep = rng.choice(len(pairs), size=cfg.max_pairs, replace=False)
            pairs = [pairs[int(k)] for k in sorted(keep)]
        realised = [
            [r.reward(lam=cfg.lam, ad_cost=cfg.ad_cost, error_cost=cfg.error_cost) for r in row] for row in rolls
        ]
        metrics: dict[str, Any] = {
            "epoch": epoch + 1,
            "pairs": len(pairs),
            "pairs_unwritable": unwritable,
            "sampled_reward_model": float(np.mean([np.mean(r) for r in rewards])),
            "sampled_reward_clicks": float(np.mean([np.mean(r) for r in realised])),
            "sampled_revenue": float(np.mean([r.revenue() for row in rolls for r in row])),
            "ads_per_reply": float(np.mean([r.parsed.n_ads for row in rolls for r in row])),
            "format_errors_per_reply": float(np.mean([r.parsed.n_errors for row in rolls for r in row])),
            "pctr": pctr_stats,
            "seconds_sampling": t_sample,
        }
        if pairs:
            say(f"epoch {epoch + 1}/{cfg.epochs}: DPO on {len(pairs)} pairs")
            before = _candidate_reward(backend, msgs, texts, rewards) if cfg.candidate_reward else None
            t1 = time.perf_counter()
            cands = {tuple(backend.prompt_ids(m)): q.candidates for m, q in zip(msgs, queries, strict=True)}
            metrics.update(_dpo_epoch(backend, pairs, cfg, out, epoch + 1, cands if cfg.constrained else None))
            metrics["seconds_dpo"] = time.perf_counter() - t1
            metrics["candidate_reward_before"] = before
            if cfg.candidate_reward:
                metrics["candidate_reward_after"] = _candidate_reward(backend, msgs, texts, rewards)
        else:
            metrics.update({"dpo_losses": [], "dpo_steps": 0})
        ckpt = out / f"epoch_{epoch + 1}"
        ckpt.mkdir(parents=True, exist_ok=True)
        if pctr is not None:
            import torch

            torch.save(pctr.state_dict(), ckpt / "pctr.pt")
        metrics["seconds"] = time.perf_counter() - t0
        (ckpt / "metrics.json").write_text(json.dumps(metrics, indent=1))
        with (out / "metrics.jsonl").open("a") as f:
            f.write(json.dumps(metrics) + "\n")
        history.append(metrics)
    (out / "config.json").write_text(json.dumps(asdict(cfg), indent=1, default=list))
    return {"epochs": history, "pctr": pctr}


def scaled(cfg: IRPOConfig, **kw: Any) -> IRPOConfig:
    """A copy of ``cfg`` with fields replaced (validated again)."""
    return replace(cfg, **kw)
