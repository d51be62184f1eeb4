"""Simulated users of LLM-Auction: one interface, two implementations.

A user simulator reads a query, its user's profile and a parsed reply, and says which of the validly
inserted ads it clicks (:class:`Click`, one per inserted ad, in order). Implementations:

* :class:`ClickModel`: fast and deterministic, for CPU-scale runs and tests. Click probability of an
  inserted ad ``i`` (``E(·)`` = unit sentence embedding, ``cos`` = inner product)::

      rel_q  = cos(E(query),   E(ad))              relevance to the question
      rel_h  = cos(E(profile), E(ad))              match with the user's identity and interests
      nat    = cos(E(context), E(ad))              nativeness: does the text around the insertion
                                                   (±``context_chars``, all markup removed) talk
                                                   about what the ad offers?
      logit  = a0 + w_q·rel_q + w_h·rel_h + w_n·nat − c_ads·(n_ads − 1) − c_err·n_errors
      p      = sigmoid(logit), and p = 0 when the reply is flooded (n_ads > max_ads) or padded
               (ad markup is more than ``max_ad_share`` of the reply's characters)

  with ``ad = "<title>: <description>"`` and defaults ``a0 = −4, w_q = 6, w_h = 2, w_n = 4,
  c_ads = 0.5, c_err = 1, max_ads = 3, max_ad_share = 0.5``. On all-MiniLM-L6-v2 a judged-relevant ad
  written into a reply about it gets ``p ≈ 0.6-0.8``, an unrelated ad dropped into unrelated text
  ``p ≈ 0.05``. The click itself is ``u < p`` with ``u`` a uniform number hashed from (seed, query id,
  ad id, reply text): the same reply always gets the same clicks, different replies independent draws.
* :class:`LLMJudgeUser`: the LLM-as-judge of the paper. The user prompt of Zhao et al. (arXiv 2512.10551) (question, profile,
  reply) through a chat backend, strict JSON output ``[{"ad_id", "clicked", "reason"}]`` validated by
  :func:`parse_judge_output` (a list, exactly one entry per inserted ad, no extra ids, booleans for
  ``clicked``), up to ``max_retries`` retries, then a logged fallback (the click model, or no clicks).

Both see only validly inserted ads (an ad with a wrong title or id is not a clickable link).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from adspace.experiments.llm_auction.data import AuctionQuery
from adspace.experiments.llm_auction.format import ParsedReply
from adspace.experiments.llm_auction.prompts import user_judge_messages

__all__ = [
    "Click",
    "ClickModel",
    "LLMJudgeUser",
    "UserSimulator",
    "parse_judge_output",
]

log = logging.getLogger(__name__)

_MARKUP = re.compile(r"@[^@\n]*@\[[^\[\]\n]*\]")


@dataclass(frozen=True)
class Click:
    """Feedback on one inserted ad."""

    ad_id: str
    clicked: bool
    reason: str = ""


class UserSimulator(Protocol):
    """Anything that turns (query, parsed reply) pairs into clicks on the inserted ads."""

    def feedback(self, items: Sequence[tuple[AuctionQuery, ParsedReply]]) -> list[list[Click]]: ...


def clicked_vector(clicks: Sequence[Click], query: AuctionQuery) -> np.ndarray:
    """``(n_candidates,)`` bool: which candidates were clicked."""
    ids = [a.ad_id for a in query.candidates]
    out = np.zeros(len(ids), dtype=bool)
    for c in clicks:
        if c.clicked:
            out[ids.index(c.ad_id)] = True
    return out


def _uniform(*parts: str) -> float:
    h = hashlib.blake2b("\x1f".join(parts).encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(h, "little") / 2.0**64


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


@dataclass
class ClickModel:
    """The deterministic embedding click model (formula in the module docstring)."""

    a0: float = -4.0
    w_q: float = 6.0
    w_h: float = 2.0
    w_n: float = 4.0
    c_ads: float = 0.5
    c_err: float = 1.0
    max_ads: int = 3
    max_ad_share: float = 0.5
    context_chars: int = 200
    seed: int = 0
    embedder: object | None = None

    def _embed(self, texts: list[str]) -> np.ndarray:
        if self.embedder is None:
            from adspace.models.embedder import get_embedder

            self.embedder = get_embedder()
        return self.embedder.embed(texts)  # type: ignore[attr-defined]

    @staticmethod
    def ad_text(ad) -> str:
        return f"{ad.title}: {ad.description}" if ad.description else ad.title

    def context(self, parsed: ParsedReply, k: int) -> str:
        """Text around insertion ``k`` with all markup removed (what nativeness is measured on)."""
        ins = parsed.insertions[k]
        lo = max(0, ins.start - self.context_chars)
        hi = min(len(parsed.text), ins.end + self.context_chars)
        ctx = _MARKUP.sub(" ", parsed.text[lo:hi])
        return " ".join(ctx.split()) or "."

    def probabilities(self, items: Sequence[tuple[AuctionQuery, ParsedReply]]) -> list[np.ndarray]:
        """Click probability of every candidate of every item, ``(n_candidates,)`` each (0 when not shown)."""
        texts: list[str] = []
        idx: dict[str, int] = {}

        def slot(t: str) -> int:
            if t not in idx:
                idx[t] = len(texts)
                texts.append(t)
            return idx[t]

        plan = []
        for q, p in items:
            rows = []
            for k, ins in enumerate(p.insertions):
                ad = q.candidates[ins.index]
                rows.append((ins.index, slot(self.ad_text(ad)), slot(self.context(p, k))))
            plan.append((slot(q.text), slot(q.profile), rows))
        emb = self._embed(texts) if texts else np.zeros((0, 1))
        out = []
        for (q, p), (qi, hi, rows) in zip(items, plan, strict=True):
            prob = np.zeros(len(q.candidates))
            share = sum(i.end - i.start for i in p.insertions) / max(1, len(p.text))
            if rows and p.n_ads <= self.max_ads and share <= self.max_ad_share:
                ai = np.array([r[1] for r in rows])
                ci = np.array([r[2] for r in rows])
                rel_q = emb[ai] @ emb[qi]
                rel_h = emb[ai] @ emb[hi]
                nat = np.einsum("ij,ij->i", emb[ai], emb[ci])
                logit = (
                    self.a0
                    + self.w_q * rel_q
                    + self.w_h * rel_h
                    + self.w_n * nat
                    - self.c_ads * (p.n_ads - 1)
                    - self.c_err * p.n_errors
                )
                prob[[r[0] for r in rows]] = _sigmoid(logit)
            out.append(prob)
        return out

    def feedback(self, items: Sequence[tuple[AuctionQuery, ParsedReply]]) -> list[list[Click]]:
        res = []
        for (q, p), prob in zip(items, self.probabilities(items), strict=True):
            clicks = []
            for ins in p.insertions:
                u = _uniform(str(self.seed), q.query_id, ins.ad_id, p.text)
                pr = float(prob[ins.index])
                clicks.append(Click(ins.ad_id, bool(u < pr), f"click model p={pr:.3f}"))
            res.append(clicks)
        return res


def parse_judge_output(text: str, expected_ids: Sequence[str]) -> list[Click]:
    """Validate the judge's reply: a JSON list with exactly one entry per inserted ad.

    Allowed around the list: whitespace and a Markdown code fence. Each entry must be an object with
    ``ad_id`` (str, one of ``expected_ids``), ``clicked`` (bool) and ``reason`` (str). Returns the clicks in
    the order of ``expected_ids``. Raises ``ValueError`` saying what is wrong.

    >>> parse_judge_output('[{"ad_id": "Ad-1", "clicked": true, "reason": "fits"}]', ["Ad-1"])
    [Click(ad_id='Ad-1', clicked=True, reason='fits')]
    >>> parse_judge_output("[]", [])
    []
    """
    s = text.strip()
    fence = re.fullmatch(r"```(?:json)?\s*(.*?)\s*```", s, flags=re.S)
    if fence:
        s = fence.group(1)
    try:
        obj = json.loads(s)
    except json.JSONDecodeError as exc:
        raise ValueError(f"judge output: not valid JSON ({exc.msg} at char {exc.pos})") from None
    if not isinstance(obj, list):
        raise ValueError(f"judge output: must be a JSON list, got {type(obj).__name__}")
    got: dict[str, Click] = {}
    for k, e in enumerate(obj):
        if not isinstance(e, dict):
            raise ValueError(f"judge output[{k}]: must be an object, got {type(e).__name__}")
        if set(e) != {"ad_id", "clicked", "reason"}:
            raise ValueError(f"judge output[{k}]: keys must be ad_id, clicked, reason; got {sorted(e)}")
        if not isinstance(e["ad_id"], str):
            raise ValueError(f"judge output[{k}].ad_id: must be a string")
        if not isinstance(e["clicked"], bool):
            raise ValueError(f"judge output[{k}].clicked: must be true or false, got {e['clicked']!r}")
        if not isinstance(e["reason"], str):
            raise ValueError(f"judge output[{k}].reason: must be a string")
        if e["ad_id"] not in expected_ids:
            raise ValueError(f"judge output[{k}].ad_id: {e['ad_id']!r} is not an inserted ad {list(expected_ids)}")
        if e["ad_id"] in got:
            raise ValueError(f"judge output[{k}].ad_id: {e['ad_id']!r} appears twice")
        got[e["ad_id"]] = Click(e["ad_id"], e["clicked"], e["reason"])
    missing = [i for i in expected_ids if i not in got]
    if missing:
        raise ValueError(f"judge output: no feedback for inserted ads {missing}")
    return [got[i] for i in expected_ids]


ChatFn = Callable[[list[list[dict]], float, int], list[str]]


@dataclass
class LLMJudgeUser:
    """The LLM-as-judge user of Zhao et al. (arXiv 2512.10551), over a chat function.

    Parameters
    ----------
    chat : callable ``(list of message lists, temperature, max_new_tokens) -> list of replies``
        A batch chat completion; :func:`adspace.experiments.llm_auction.environment.chat_fn` makes one from
        the shared LLM backend (local model or OpenAI-compatible server).
    temperature : the paper's 0.3.
    max_retries : extra attempts for items whose output fails validation.
    fallback : simulator used (and logged) for items that still fail; ``None`` means no clicks.
    """

    chat: ChatFn
    temperature: float = 0.3
    max_new_tokens: int = 256
    max_retries: int = 2
    fallback: UserSimulator | None = None
    fallbacks: int = 0
    calls: int = 0

    def feedback(self, items: Sequence[tuple[AuctionQuery, ParsedReply]]) -> list[list[Click]]:
        out: list[list[Click] | None] = [None] * len(items)
        todo = []
        for j, (_, p) in enumerate(items):
            if p.n_ads == 0:
                out[j] = []  # nothing to click: the judge would return [] (not asked)
            else:
                todo.append(j)
        last_error: dict[int, str] = {}
        for _attempt in range(1 + self.max_retries):
            if not todo:
                break
            msgs = [user_judge_messages(items[j][0].text, items[j][0].profile, items[j][1].text) for j in todo]
            self.calls += len(msgs)
            replies = self.chat(msgs, self.temperature, self.max_new_tokens)
            still = []
            for j, r in zip(todo, replies, strict=True):
                try:
                    out[j] = parse_judge_output(r, items[j][1].ad_ids)
                except ValueError as exc:
                    last_error[j] = str(exc)
                    still.append(j)
            todo = still
        if todo:
            fb = self.fallback.feedback([items[j] for j in todo]) if self.fallback is not None else None
            for n, j in enumerate(todo):
                self.fallbacks += 1
                log.warning(
                    "LLM judge: invalid output for %s after %d attempts (%s); using %s",
                    items[j][0].query_id,
                    1 + self.max_retries,
                    last_error.get(j, "?"),
                    "the fallback simulator" if fb is not None else "no clicks",
                )
                out[j] = (
                    fb[n]
                    if fb is not None
                    else [Click(i, False, "fallback: no valid judge output") for i in items[j][1].ad_ids]
                )
        return [o if o is not None else [] for o in out]
