"""Constrained decoding for the ad-writer: valid ``@Title@[Ad-ID]`` markup by construction.

Once the model opens an insertion (an ``@`` where the parser of :mod:`.format` reads markup), decoding
continues only along the exact ``Title@[Ad-ID]`` strings of the candidate ads not inserted yet (a trie
over their UTF-8 bytes, walked token by token), until one is complete (the token that writes its closing ``]`` may go on with plain text, as ``].`` does,
so a reply tokenized afresh, as TRL's DPO tokenizes it, stays writable). Outside an insertion every token
is allowed except those that would start a format error: a token holding ``[`` (a bare ``[Ad-…]``), or
an ``@`` that does not open a candidate's markup (an e-mail-style ``@`` after a letter is also refused:
the rule is simpler and a reply loses nothing by it). So every reply parses with zero format errors; a
reply whose insertion is still open at ``max_new_tokens`` keeps decoding, inside the trie only, until
the insertion closes (at most the markup's length in tokens more). A candidate whose title starts with
``[`` can never be written validly (``@[`` is the id marker) and is never offered.

The constrained distribution at a step is the model's ``softmax(logits / T)`` restricted to the allowed
tokens and renormalised, then cut to the top-p nucleus: the masked logits go through the project's one
sampling kernel (:func:`adspace.models.llm.sample_tokens` / :func:`~adspace.models.llm.token_logprobs`).
So a :class:`~adspace.models.llm.Reply` from :func:`sample_constrained` carries, per token, ``log q_t``
of the distribution it was **actually drawn from**; its ``model_token_logprobs`` are the constrained
model's own (``T = 1``, no nucleus). :func:`score_constrained` gives the same numbers teacher-forced,
for importance weights and for DPO (:class:`ConstrainedLogProbs`).

Byte-level tokenizers (SmolLM2's, GPT-2 style) are handled exactly: every token's bytes are known, and
the reply's text is the UTF-8 decoding of the concatenated bytes, as the tokenizer decodes it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from adspace.experiments.llm_auction.format import Ad, check_candidates

__all__ = [
    "ConstrainedLogProbs",
    "MarkupConstraint",
    "MarkupState",
    "TokenTable",
    "completion_ids",
    "mask_rows",
    "sample_constrained",
    "score_constrained",
    "token_table",
]

_AT, _LB = ord("@"), ord("[")


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible map from bytes to printable characters (how byte-level BPE spells tokens)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs), strict=True))


def _opens_markup(prev: int | None) -> bool:
    """An ``@`` after byte ``prev`` is markup for the parser unless ``prev`` is a letter or digit; a
    non-ASCII ``prev`` (which may belong to a letter) is treated as one."""
    return prev is None or (prev < 0x80 and not chr(prev).isalnum())


class TokenTable:
    """The bytes of every token id of a tokenizer, and the indexes the constraint looks tokens up in."""

    def __init__(self, tokenizer: Any):
        vocab = len(tokenizer)
        special = set(getattr(tokenizer, "all_special_ids", []) or [])
        for t in getattr(tokenizer, "added_tokens_decoder", {}) or {}:
            special.add(int(t))
        decoder = {c: b for b, c in _bytes_to_unicode().items()}
        pieces = tokenizer.convert_ids_to_tokens(list(range(vocab)))
        self.vocab = vocab
        self.special = frozenset(special)
        self.bytes: list[bytes] = []
        for i, p in enumerate(pieces):
            if i in special or p is None:
                self.bytes.append(b"")
            elif all(ch in decoder for ch in p):
                self.bytes.append(bytes(decoder[ch] for ch in p))
            else:  # not byte-level BPE: fall back to the decoded text
                self.bytes.append(tokenizer.decode([i]).encode("utf-8"))
        self.by_bytes: dict[bytes, list[int]] = {}
        for i, b in enumerate(self.bytes):
            if b:
                self.by_bytes.setdefault(b, []).append(i)
        self.max_len = max(len(b) for b in self.bytes)
        #: tokens that hold '@' or '[' (refused outside an insertion unless they open one)
        self.risky = [i for i, b in enumerate(self.bytes) if _AT in b or _LB in b]
        #: risky tokens that could open an insertion: one '@', no '[' before it
        self.openers = []
        for i in self.risky:
            b = self.bytes[i]
            k = b.find(b"@")
            if k >= 0 and _AT not in b[:k] and _LB not in b[:k]:
                self.openers.append(i)
        #: tokens that close an insertion and go on with plain text, by the part that closes it: a token
        #: ``…]`` + ``s`` with ``s`` non-empty and free of '@' and '[' (e.g. ``].`` or ``],``, which a
        #: byte-level BPE writes for ``…@[Ad-0001].``), indexed under its bytes up to that ``]``
        self.closers: dict[bytes, list[int]] = {}
        for i, b in enumerate(self.bytes):
            k = b.find(b"]")
            while 0 <= k < len(b) - 1:
                rest = b[k + 1 :]
                if _AT not in rest and _LB not in rest:
                    self.closers.setdefault(b[: k + 1], []).append(i)
                k = b.find(b"]", k + 1)

    def text(self, ids: Sequence[int]) -> str:
        """The text of ``ids`` (special tokens dropped), as the tokenizer decodes it."""
        return b"".join(self.bytes[i] for i in ids).decode("utf-8", errors="replace")


_TABLES: dict[int, TokenTable] = {}


def token_table(tokenizer: Any) -> TokenTable:
    """The :class:`TokenTable` of ``tokenizer`` (built once per tokenizer object)."""
    key = id(tokenizer)
    if key not in _TABLES:
        _TABLES[key] = TokenTable(tokenizer)
    return _TABLES[key]


@dataclass
class MarkupState:
    """Where one reply stands: outside an insertion (``pending is None``) or ``pending`` bytes into one."""

    prev: int | None = None  # last byte written (None at the start)
    pending: bytes | None = None  # bytes of the open insertion after its '@'
    used: set[int] = field(default_factory=set)  # candidates already inserted

    @property
    def open(self) -> bool:
        return self.pending is not None


class MarkupConstraint:
    """The allowed next tokens for one query's candidate ads (see the module docstring)."""

    def __init__(self, table: TokenTable, candidates: Sequence[Any]):
        self.table = table
        self.ads: tuple[Ad, ...] = check_candidates(candidates)
        # what follows the opening '@'; None for an ad that cannot be written (title starting with '[', or a
        # byte the tokenizer has no single-byte token for, so the trie could get stuck)
        self.bodies: list[bytes | None] = []
        for a in self.ads:
            body = f"{a.title}@[{a.ad_id}]".encode()
            ok = not a.title.startswith("[") and all(bytes([c]) in table.by_bytes for c in body)
            self.bodies.append(body if ok else None)
        self._free: dict[tuple[frozenset[int], bool], np.ndarray] = {}

    def _alive(self, st: MarkupState) -> list[int]:
        p = st.pending or b""
        return [k for k, b in enumerate(self.bodies) if b is not None and k not in st.used and b.startswith(p)]

    def banned_free(self, st: MarkupState) -> np.ndarray:
        """Token ids refused outside an insertion (the risky ones that do not open a candidate's markup)."""
        key = (frozenset(st.used), _opens_markup(st.prev))
        if key not in self._free:
            bodies = [b for k, b in enumerate(self.bodies) if b is not None and k not in st.used]
            ok = set()
            for i in self.table.openers:
                b = self.table.bytes[i]
                k = b.find(b"@")
                before, after = b[:k], b[k + 1 :]
                prev = before[-1] if before else st.prev
                if _opens_markup(prev) and any(body.startswith(after) for body in bodies):
                    ok.add(i)
            self._free[key] = np.array([i for i in self.table.risky if i not in ok], dtype=np.int64)
        return self._free[key]

    def allowed_open(self, st: MarkupState) -> np.ndarray:
        """Token ids allowed inside an open insertion: non-empty prefixes of what remains of a live body, and
        tokens that write all of what remains and go on with plain text (:attr:`TokenTable.closers`)."""
        p = st.pending or b""
        out: set[int] = set()
        for k in self._alive(st):
            rest = self.bodies[k][len(p) :]  # type: ignore[index]
            for n in range(1, min(len(rest), self.table.max_len) + 1):
                out.update(self.table.by_bytes.get(rest[:n], ()))
            out.update(self.table.closers.get(rest, ()))
        return np.array(sorted(out), dtype=np.int64)

    def advance(self, st: MarkupState, token: int) -> MarkupState:
        """The state after writing ``token`` (which must be allowed in ``st``)."""
        b = self.table.bytes[token]
        if not b:
            return st
        if st.pending is None:
            k = b.find(b"@")
            if k < 0:
                return MarkupState(b[-1], None, st.used)
            st = MarkupState(_AT, b"", st.used)
            b = b[k + 1 :]
            if not b:
                return st
        pending = (st.pending or b"") + b
        for k, body in enumerate(self.bodies):
            if body is not None and k not in st.used and pending.startswith(body):
                # the insertion closes; what the token writes after its ']' is plain text
                return MarkupState(pending[-1], None, st.used | {k})
        return MarkupState(pending[-1], pending, st.used)

    def mask_logits(self, logits: Any, st: MarkupState) -> Any:
        """``logits`` (a 1-D tensor, changed in place) with every refused token set to ``-inf``."""
        import torch

        if st.open:
            keep = torch.as_tensor(self.allowed_open(st), device=logits.device)
            vals = logits[keep].clone()
            logits.fill_(float("-inf"))
            logits[keep] = vals
        else:
            ban = self.banned_free(st)
            if ban.size:
                logits[torch.as_tensor(ban, device=logits.device)] = float("-inf")
        return logits

    def allows(self, st: MarkupState, token: int) -> bool:
        """Whether ``token`` is allowed in ``st`` (an empty-byte token, e.g. end-of-turn, only outside an
        insertion)."""
        if st.open:
            return bool(np.isin(token, self.allowed_open(st)))
        return not bool(np.isin(token, self.banned_free(st)))

    def writable(self, ids: Sequence[int], eos: int | None = None) -> bool:
        """Whether the constraint could have written ``ids``: every token allowed where it stands, and an
        end-of-turn token ``eos`` (last) only outside an insertion."""
        ids = [int(t) for t in ids]
        finished = eos is not None and bool(ids) and ids[-1] == eos
        st = MarkupState()
        for t in ids[:-1] if finished else ids:
            if not self.allows(st, t):
                return False
            st = self.advance(st, t)
        return not (finished and st.open)

    def states(self, ids: Sequence[int]) -> list[MarkupState]:
        """The state before each token of ``ids`` (teacher forcing)."""
        st = MarkupState()
        out = []
        for t in ids:
            out.append(st)
            st = self.advance(st, int(t))
        return out


def mask_rows(
    z: Any, row_con: Sequence[MarkupConstraint], states: Sequence[MarkupState], active: Sequence[bool], pad_id: int
) -> Any:
    """``z`` (``(rows, vocab)``, changed in place) masked row by row as :meth:`MarkupConstraint.mask_logits`
    does, and an ended row (``active`` false) reduced to ``pad_id``, in three indexed writes for the whole
    batch (one per kind of row) rather than a few per row: on a GPU each write is a kernel launch and a
    host-to-device copy, which row by row cost more than the model's decoding step."""
    import torch

    ban_r, ban_t, keep_r, keep_t, opened, idle = [], [], [], [], [], []
    for r, (con, st) in enumerate(zip(row_con, states, strict=True)):
        if not active[r]:
            idle.append(r)
        elif st.open:
            a = con.allowed_open(st)
            opened.append(r)
            keep_r.append(np.full(a.size, r, dtype=np.int64))
            keep_t.append(a)
        else:
            b = con.banned_free(st)
            if b.size:
                ban_r.append(np.full(b.size, r, dtype=np.int64))
                ban_t.append(b)
    dev = z.device

    def on(parts: list) -> Any:
        return torch.as_tensor(np.concatenate(parts), device=dev)

    if ban_r:
        z[on(ban_r), on(ban_t)] = float("-inf")
    if opened:
        rr, tt = on(keep_r), on(keep_t)
        vals = z[rr, tt]  # advanced indexing copies
        z[torch.as_tensor(opened, device=dev)] = float("-inf")
        z[rr, tt] = vals
    if idle:
        ir = torch.as_tensor(idle, device=dev)
        z[ir] = float("-inf")
        z[ir, pad_id] = 0.0
    return z


def sample_constrained(
    backend,
    prompts: Sequence[Sequence[dict]],
    candidates: Sequence[Sequence[Any]],
    n: int,
    *,
    max_new_tokens: int = 64,
    temperature: float = 1.0,
    top_p: float = 1.0,
    seed: int | None = None,
):
    """``n`` constrained replies per prompt from a :class:`~adspace.models.llm.LocalLLM` (``out[p][k]``).

    The decode loop of :meth:`LocalLLM.sample` (each prompt prefilled once, its key/value cache repeated
    for its ``n`` rows) with :meth:`MarkupConstraint.mask_logits` applied before the shared kernel
    :func:`~adspace.models.llm.sample_tokens` draws each token.
    """
    import torch

    from adspace.models.llm import Reply, _check_prompts, _check_sampling, sample_tokens
    from adspace.models.local_decode import prefill

    prompts = _check_prompts(prompts)
    _check_sampling(n, max_new_tokens, temperature, top_p)
    if len(candidates) != len(prompts):
        raise ValueError(f"candidates: need one candidate list per prompt ({len(prompts)}), got {len(candidates)}")
    if not prompts:
        return []
    table = token_table(backend.tokenizer)
    cons = [MarkupConstraint(table, c) for c in candidates]
    n = int(n)
    rows = len(prompts) * n
    row_con = [cons[r // n] for r in range(rows)]
    states = [MarkupState() for _ in range(rows)]
    toks: list[list[int]] = [[] for _ in range(rows)]
    lps: list[list[float]] = [[] for _ in range(rows)]
    owns: list[list[float]] = [[] for _ in range(rows)]
    finished = [False] * rows
    active = [True] * rows
    dev = backend.device
    input_ids, attn = backend.left_padded(prompts)
    limit = int(max_new_tokens) + max(1, max((len(b or b"") for c in cons for b in c.bodies), default=1))
    with backend._lock, torch.inference_mode():
        rng = torch.Generator(device=dev)
        rng.manual_seed(int(seed)) if seed is not None else rng.seed()
        cache, logits = prefill(backend.model, input_ids, attn, n, dev)
        mask = attn.repeat_interleave(n, dim=0).to(dev)
        nxt = mask.sum(-1)
        for t in range(limit):
            z = mask_rows(logits.float().clone(), row_con, states, active, backend.pad_id)
            tok, log_q, log_own = sample_tokens(z, temperature, top_p, rng)
            tok_l, q_l, o_l = tok.tolist(), log_q.tolist(), log_own.tolist()
            for r in range(rows):
                if not active[r]:
                    continue
                k = tok_l[r]
                lps[r].append(q_l[r])
                owns[r].append(o_l[r])
                if k == backend.eos_id:
                    finished[r], active[r] = True, False
                    continue
                toks[r].append(k)
                states[r] = row_con[r].advance(states[r], k)
                if t + 1 >= max_new_tokens and not states[r].open:
                    active[r] = False  # cut at the length cap, never inside an insertion
            if not any(active):
                break
            step_tok = torch.tensor([tk if a else backend.pad_id for tk, a in zip(tok_l, active, strict=True)])
            mask = torch.cat([mask, torch.ones((rows, 1), dtype=mask.dtype, device=dev)], dim=1)
            step = backend.model(
                input_ids=step_tok[:, None].to(dev),
                attention_mask=mask,
                position_ids=nxt[:, None],
                past_key_values=cache,
                use_cache=True,
            )
            cache = step.past_key_values
            logits = step.logits[:, -1]
            nxt = nxt + 1
    out = []
    for p in range(len(prompts)):
        row = []
        for k in range(n):
            r = p * n + k
            row.append(
                Reply(
                    text=table.text(toks[r]),
                    token_logprobs=np.asarray(lps[r], dtype=np.float64),
                    finished=finished[r],
                    token_ids=tuple(toks[r]),
                    model_token_logprobs=np.asarray(owns[r], dtype=np.float64),
                )
            )
        out.append(row)
    return out


def completion_ids(tokenizer: Any, prompt: str, reply: str) -> list[int]:
    """The reply's token ids as TRL's ``DPOTrainer`` (non-conversational) makes them: ``prompt + reply +
    eos`` tokenized as one text, cut where it stops agreeing with the tokenized prompt."""
    eos = tokenizer.eos_token
    text = reply if reply.endswith(eos) else reply + eos
    p = tokenizer(text=prompt)["input_ids"]
    full = tokenizer(text=prompt + text)["input_ids"]
    k = 0
    while k < min(len(p), len(full)) and p[k] == full[k]:
        k += 1
    return list(full[k:])


def _final_state(con: MarkupConstraint, ids: Sequence[int]) -> MarkupState:
    st = MarkupState()
    for t in ids:
        st = con.advance(st, int(t))
    return st


def score_constrained(
    backend,
    prompts: Sequence[Sequence[dict]],
    candidates: Sequence[Sequence[Any]],
    replies: Sequence[Any],
    *,
    temperature: float = 1.0,
    top_p: float = 1.0,
) -> np.ndarray:
    """Teacher-forced ``log q(reply | prompt)`` under the constrained distribution, one per pair.

    ``-inf`` for a reply the constraint could not have written (e.g. one with a malformed insertion).
    With the sampling ``temperature`` / ``top_p`` this equals the sum of the reply's ``token_logprobs``
    from :func:`sample_constrained`; with the defaults, its ``model_token_logprobs``.
    """
    import torch

    from adspace.models.llm import token_logprobs

    if not (len(prompts) == len(candidates) == len(replies)):
        raise ValueError(
            f"prompts/candidates/replies: must pair one-to-one, got {len(prompts)}, {len(candidates)}, {len(replies)}"
        )
    table = token_table(backend.tokenizer)
    out = np.zeros(len(replies), dtype=np.float64)
    with backend._lock, torch.inference_mode():
        for j, (p, c, r) in enumerate(zip(prompts, candidates, replies, strict=True)):
            pid = backend.prompt_ids(p)
            rid = list(backend._reply_ids(r))
            finished = bool(rid) and rid[-1] == backend.eos_id
            body = rid[:-1] if finished else rid
            if not rid:
                continue
            seq = torch.tensor([pid + rid], device=backend.device)
            h = backend.model.model(input_ids=seq).last_hidden_state[0, len(pid) - 1 : len(pid) + len(rid) - 1]
            logits = backend.model.lm_head(h).float()
            con = MarkupConstraint(table, c)
            states = con.states(body) + ([_final_state(con, body)] if finished else [])
            for t, st in enumerate(states):
                con.mask_logits(logits[t], st)
            lp = token_logprobs(logits, torch.tensor(rid), temperature, top_p)
            out[j] = float(lp.sum())
    return out


class ConstrainedLogProbs:
    """Per-token log-probabilities of the constrained distribution for TRL's DPO (see training).

    TRL's ``DPOTrainer`` asks the model for ``log π(y_t | y_<t)`` at the completion positions (its fused LM
    head, ``model(..., labels=labels, fused_lm_head=True).log_probs``). :meth:`patch` wraps that forward so
    that, for a row whose prompt is a known ad-writer prompt, each position's log-probability is taken under
    the constrained distribution (the logits masked by the constraint state, renormalised): policy and
    reference alike, so DPO aligns the distribution the sampler draws from.
    """

    def __init__(self, tokenizer: Any, prompt_candidates: dict[tuple[int, ...], Sequence[Any]]):
        self.table = token_table(tokenizer)
        self.cons = {k: MarkupConstraint(self.table, v) for k, v in prompt_candidates.items()}
        self.eos = tokenizer.eos_token_id
        self.calls = 0

    def states_for(self, prompt: tuple[int, ...], reply: Sequence[int]) -> list[MarkupState] | None:
        """Constraint state before each reply token (``None`` for an unknown prompt: unconstrained)."""
        con = self.cons.get(prompt)
        if con is None:
            return None
        finished = bool(reply) and reply[-1] == self.eos
        body = list(reply[:-1]) if finished else list(reply)
        return con.states(body) + ([_final_state(con, body)] if finished else [])

    def patch(self, model: Any) -> None:
        """Replace ``model.forward``'s fused-LM-head path (TRL's) by one over the constrained distribution.

        One backbone pass for the batch; the LM head only at completion positions; each position's logits
        masked by its constraint state before the softmax. Rows with an unknown prompt are unconstrained.
        Without ``fused_lm_head`` the forward is the previous one (generation is unchanged).
        """
        import torch
        from trl.trainer.utils import FusedCausalLMOutput

        inner = model.forward
        me = self

        def forward(*args, fused_lm_head=False, labels=None, **kwargs):
            ids = kwargs.get("input_ids")
            if not fused_lm_head or labels is None or ids is None or args:
                if labels is not None:
                    kwargs["labels"] = labels
                return inner(*args, fused_lm_head=fused_lm_head, **kwargs)
            kwargs.pop("use_cache", None)
            kwargs.pop("num_items_in_batch", None)
            kwargs.pop("shift_labels", None)
            backbone = getattr(model, model.base_model_prefix)
            hidden = backbone(**kwargs, use_cache=False).last_hidden_state[:, :-1]
            lab = labels[:, 1:]
            mask = lab != -100
            rows, cols = mask.nonzero(as_tuple=True)
            logits = model.get_output_embeddings()(hidden[rows, cols]).float()
            bias = torch.zeros_like(logits)
            attn = kwargs.get("attention_mask")
            for b in range(ids.shape[0]):
                sel = (rows == b).nonzero()[:, 0]
                if sel.numel() == 0:
                    continue
                start = int(cols[sel[0]]) + 1  # first completion token
                keep = attn[b, :start].bool() if attn is not None else torch.ones(start, dtype=torch.bool)
                prompt = tuple(int(x) for x in ids[b, :start][keep.to(ids.device)].tolist())
                states = me.states_for(prompt, [int(x) for x in lab[b, cols[sel]].tolist()])
                if states is None:
                    continue
                con = me.cons[prompt]
                for j, st in zip(sel.tolist(), states, strict=True):
                    con.mask_logits(bias[j], st)
                tg = lab[b, cols[sel]].to(bias.device)
                if bool(torch.isinf(bias[sel, tg]).any()):
                    raise ValueError(
                        "pairs: a completion the constraint could not have written reached DPO (its "
                        "log-probability would be -inf); filter pairs with MarkupConstraint.writable first"
                    )
                me.calls += 1
            z = logits + bias
            logp_all = torch.log_softmax(z, dim=-1)
            tgt = lab[rows, cols]
            lp = logp_all.gather(1, tgt[:, None])[:, 0]
            shape = lab.shape

            def scatter(v, dtype=None):
                o = torch.zeros(shape, dtype=dtype or v.dtype, device=v.device)
                return o.index_put((rows, cols), v.to(o.dtype))

            with torch.no_grad():
                p_all = logp_all.exp()
                ent = -(p_all * logp_all.masked_fill(p_all == 0, 0.0)).sum(-1)
                mean_logits = logits.mean(-1)
                top1 = z.argmax(-1) == tgt
            log_probs = scatter(lp)
            return FusedCausalLMOutput(
                loss=-lp.sum() / max(1, int(mask.sum())),
                log_probs=log_probs,
                entropy=scatter(ent),
                mean_logits=scatter(mean_logits),
                is_top1=scatter(top1, torch.bool),
                label_mask=mask,
            )

        model.forward = forward
