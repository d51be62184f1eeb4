"""The sampling distribution of the local backend, one kernel for sampling and for scoring.

The distribution a token is drawn from is ``softmax(logits / T)`` cut to the top-p nucleus (the nucleus
of ``transformers``' ``TopPLogitsWarper``: a token is kept iff the probability mass ranked strictly above
it is ``< top_p``; the most likely token is always kept). :func:`sample_tokens` draws from it and
:func:`token_logprobs` scores under it, with the same arithmetic, so a sampled reply scores exactly what
it was drawn with.

The nucleus can be found two ways, with the same result (same tokens, same order, same normalizer;
``tests/models/test_sampling_kernel.py``):

* ``"topk"`` (:func:`nucleus`): rank only the ``k`` largest logits, ``k`` grown x4 from 256 until they
  hold mass ``>= top_p``. Cheap on a CPU (a few hundred tokens ranked instead of a 49k-token sort), but
  deciding whether to grow reads a value back to the host: one synchronisation per decoding step on a GPU.
* ``"sort"`` (:func:`nucleus_sorted`): sort the whole vocabulary on the device. No data-dependent
  branch, so nothing is read back; on a GPU a (rows x 49k) sort is a small fraction of a decoding step,
  on a CPU it costs more than the top-k search.

:func:`nucleus_method_for` picks ``"sort"`` on CUDA and ``"topk"`` elsewhere.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "NUCLEUS_METHODS",
    "nucleus",
    "nucleus_method_for",
    "nucleus_sorted",
    "sample_tokens",
    "tempered",
    "token_logprobs",
]

NUCLEUS_METHODS = ("topk", "sort")
_NUCLEUS_K0 = 256  # first guess of the nucleus size for "topk"; grown x4 until it holds mass >= top_p


def path_for(device: Any, *, cuda: str, other: str, env: str, choices: tuple[str, ...]) -> str:
    """``cuda`` on a CUDA device, ``other`` elsewhere; the environment variable ``env`` (one of
    ``choices``) picks one for every device (a fallback should a path fail on some GPU)."""
    import os

    import torch

    forced = os.environ.get(env)
    if forced:
        if forced not in choices:
            raise ValueError(f"{env}: must be one of {', '.join(choices)}, got {forced!r}")
        return forced
    return cuda if torch.device(device).type == "cuda" else other


def nucleus_method_for(device: Any) -> str:
    """``"sort"`` on a CUDA device (no host synchronisation), ``"topk"`` elsewhere (fewer operations)."""
    import torch

    return "sort" if torch.device(device).type == "cuda" else "topk"


def tempered(logits: Any, temperature: float) -> Any:
    """``logits / temperature`` in float64: the scores the sampling distribution is the softmax of."""
    z = logits.double()
    return z / float(temperature) if temperature != 1.0 else z


def _cut(zk: Any, lse: Any, top_p: float) -> tuple[Any, Any]:
    """Given ``zk`` in descending order per row and the full ``logsumexp``: the kept mask and its normalizer."""
    import torch

    cum = torch.exp(zk - lse).cumsum(-1)
    above = torch.cat([torch.zeros_like(cum[:, :1]), cum[:, :-1]], dim=-1)  # mass ranked strictly above
    keep = above < top_p
    keep[:, 0] = True
    lse_kept = torch.logsumexp(zk.masked_fill(~keep, float("-inf")), dim=-1)
    return keep, lse_kept


def nucleus(z: Any, top_p: float) -> tuple[Any, Any, Any, Any]:
    """The top-p nucleus of ``softmax(z)`` per row, ranking only the top ``k`` logits (``"topk"``).

    Only the ``k`` largest logits are ranked (``torch.topk``), with ``k`` grown until they hold mass
    ``>= top_p``, which for a chat model's distribution is a few hundred tokens instead of a 49k-token
    sort.

    Returns ``(idx, zk, keep, lse_kept)``: (R, k) token ids in descending order, their values of ``z``,
    a (R, k) mask of the kept ones, and (R,) ``logsumexp`` of ``z`` over the kept tokens, so that a kept
    token's log-probability under the truncated distribution is ``z[token] - lse_kept``.
    """
    import torch

    lse = torch.logsumexp(z, dim=-1, keepdim=True)
    vocab = z.shape[-1]
    k = min(_NUCLEUS_K0, vocab)
    while True:
        zk, idx = torch.topk(z, k, dim=-1)
        if k == vocab or bool((torch.exp(zk - lse).cumsum(-1)[:, -1] >= top_p).all()):  # host sync on a GPU
            break
        k = min(vocab, 4 * k)
    keep, lse_kept = _cut(zk, lse, top_p)
    return idx, zk, keep, lse_kept


def nucleus_sorted(z: Any, top_p: float, order_by: Any = None) -> tuple[Any, Any, Any, Any]:
    """The same nucleus as :func:`nucleus`, from a full sort on the device (``"sort"``): no host sync.

    ``order_by`` (same shape as ``z``, e.g. the float32 logits ``z`` was tempered from) is sorted instead
    of ``z`` when given: dividing by a positive temperature and widening to float64 keep the order, and a
    float32 sort moves half the bytes. Same return values as :func:`nucleus`, with ``k`` = the vocabulary.
    """
    import torch

    key = z if order_by is None else order_by
    idx = torch.sort(key, dim=-1, descending=True).indices
    zk = z.gather(1, idx)
    keep, lse_kept = _cut(zk, torch.logsumexp(z, dim=-1, keepdim=True), top_p)
    return idx, zk, keep, lse_kept


def _find_nucleus(z: Any, top_p: float, method: str, order_by: Any = None) -> tuple[Any, Any, Any, Any]:
    if method == "topk":
        return nucleus(z, top_p)
    if method == "sort":
        return nucleus_sorted(z, top_p, order_by)
    raise ValueError(f"nucleus_method: must be one of {', '.join(NUCLEUS_METHODS)}, got {method!r}")


def token_logprobs(
    logits: Any, targets: Any, temperature: float = 1.0, top_p: float = 1.0, nucleus_method: str = "topk"
) -> Any:
    """(R,) float64 ``log q(target)`` per row, ``q = softmax(logits / temperature)`` cut to the top-p nucleus.

    ``-inf`` for a target outside the nucleus. At ``temperature = top_p = 1`` this is the model's own
    ``log π``. Same arithmetic as :func:`sample_tokens`, so a sampled reply scores exactly what it was
    drawn with.
    """
    import torch

    t = targets.to(logits.device)[:, None]
    if top_p >= 1.0:
        # the normalizer in the logits' own precision (float32: the model's logits carry no more), the
        # difference in float64; a double copy of (rows x vocab) logits would cost a fifth of scoring
        zf = logits if temperature == 1.0 else logits / float(temperature)
        return zf.gather(1, t)[:, 0].double() - torch.logsumexp(zf, dim=-1).double()
    z = tempered(logits, temperature)
    idx, zk, keep, lse_kept = _find_nucleus(z, top_p, nucleus_method, logits)
    inside = ((idx == t) & keep).any(dim=-1)
    out = z.gather(1, t)[:, 0] - lse_kept
    return out.masked_fill(~inside, float("-inf"))


def sample_tokens(
    logits: Any, temperature: float, top_p: float, generator: Any, nucleus_method: str = "topk"
) -> tuple[Any, Any, Any]:
    """Draw one token per row from ``softmax(logits / temperature)`` cut to the top-p nucleus.

    Inverse-CDF sampling with one uniform per row from ``generator``. Returns ``(tokens, log_q, log_own)``:
    the tokens, their log-probability under the distribution drawn from, and under the model's own
    (temperature 1, untruncated) distribution. Both nucleus methods list the kept tokens in the same
    order with the same weights, so with the same generator state they draw the same tokens (ties among
    logits aside). Nothing here reads a value back to the host except the ``"topk"`` nucleus search.
    """
    import torch

    own = logits.double()
    log_own_all = torch.logsumexp(own, dim=-1)
    z = tempered(own, temperature)
    if top_p >= 1.0:
        idx = None
        zk = z
        lse_kept = log_own_all if temperature == 1.0 else torch.logsumexp(z, dim=-1)
        w = torch.exp(z - lse_kept[:, None])
    else:
        idx, zk, keep, lse_kept = _find_nucleus(z, top_p, nucleus_method, logits)
        w = torch.exp(zk - lse_kept[:, None]).masked_fill(~keep, 0.0)
    cdf = w.cumsum(-1)
    u = torch.rand(w.shape[0], 1, generator=generator, dtype=torch.float64, device=w.device) * cdf[:, -1:]
    j = torch.searchsorted(cdf, u, right=True).clamp(max=w.shape[1] - 1)
    tok = j[:, 0] if idx is None else idx.gather(1, j)[:, 0]
    log_q = zk.gather(1, j)[:, 0] - lse_kept
    log_own = own.gather(1, tok[:, None])[:, 0] - log_own_all
    return tok, log_q, log_own
