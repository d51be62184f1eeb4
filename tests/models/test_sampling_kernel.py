"""The sampling kernel of the local backend (temperature, then the top-p nucleus), on random logits.

``nucleus`` ranks only the top-k logits instead of sorting the vocabulary; ``nucleus_sorted`` (the
GPU's, no host synchronisation) sorts it on the device. Both must keep exactly the tokens that
transformers' ``TopPLogitsWarper`` keeps, and ``sample_tokens`` must draw, with either, from the
distribution whose log-probabilities it reports (MOSAIC's importance weight depends on it). Everything
runs on the CPU: the method is selected explicitly.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers.generation.logits_process import TemperatureLogitsWarper, TopPLogitsWarper

from adspace.models.kernels import nucleus_method_for, nucleus_sorted
from adspace.models.llm import nucleus, sample_tokens, token_logprobs

METHODS = ("topk", "sort")


def _hf_logprobs(logits: torch.Tensor, temperature: float, top_p: float) -> torch.Tensor:
    z = logits.double()
    if temperature != 1.0:
        z = TemperatureLogitsWarper(temperature)(None, z)
    if top_p < 1.0:
        z = TopPLogitsWarper(top_p)(None, z)
    return torch.log_softmax(z, dim=-1)


@pytest.mark.parametrize(("seed", "method"), [(s, "topk") for s in range(6)] + [(s, "sort") for s in range(3)])
@pytest.mark.parametrize(("temperature", "top_p"), [(1.0, 1.0), (0.8, 0.95), (0.7, 0.8), (1.3, 0.5), (0.5, 0.999)])
def test_token_logprobs_equal_transformers_warpers(seed, temperature, top_p, method):
    """Same support and same log-probabilities as TopPLogitsWarper, for flat and peaked rows, any vocab size."""
    rng = np.random.default_rng(seed)
    vocab = int(rng.choice([7, 300, 5000]))
    scale = rng.choice([0.1, 1.0, 4.0], size=(9, 1))  # flat rows need a nucleus larger than the first guess
    logits = torch.tensor(rng.normal(size=(9, vocab)) * scale, dtype=torch.float32)
    ref = _hf_logprobs(logits, temperature, top_p)
    for tok in range(0, vocab, max(1, vocab // 50)):
        targets = torch.full((9,), tok, dtype=torch.long)
        ours = token_logprobs(logits, targets, temperature, top_p, method)
        theirs = ref[:, tok]
        assert torch.equal(torch.isinf(ours), torch.isinf(theirs))
        finite = torch.isfinite(theirs)
        assert torch.allclose(ours[finite], theirs[finite], atol=1e-9)


def test_nucleus_always_keeps_the_top_token_and_reaches_the_mass():
    z = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05], [0.97, 0.01, 0.01, 0.01]], dtype=torch.float64))
    for top_p, kept in [(0.4, [1, 1]), (0.7, [2, 1]), (0.85, [3, 1]), (0.995, [4, 4])]:
        idx, _, keep, lse_kept = nucleus(z, top_p)
        assert keep.sum(dim=-1).tolist() == kept
        assert idx[:, 0].tolist() == [0, 0]
        mass = torch.exp(z).gather(1, idx).masked_fill(~keep, 0).sum(-1)
        assert torch.all(mass >= top_p - 1e-12)
        assert torch.allclose(lse_kept, torch.log(mass))


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(("temperature", "top_p"), [(1.0, 1.0), (0.8, 0.9), (1.5, 0.6)])
def test_sample_tokens_draws_from_the_reported_distribution(temperature, top_p, method):
    """Empirical frequencies of 40,000 draws match exp(log q) (5-sigma band), and log q matches the warpers."""
    rng = np.random.default_rng(3)
    logits = torch.tensor(rng.normal(size=(1, 12)) * 1.5, dtype=torch.float32)
    draws = 40_000
    gen = torch.Generator().manual_seed(0)
    tok, log_q, log_own = sample_tokens(logits.expand(draws, -1), temperature, top_p, gen, method)
    q = _hf_logprobs(logits, temperature, top_p)[0].exp().numpy()
    freq = np.bincount(tok.numpy(), minlength=12) / draws
    band = 5 * np.sqrt(q * (1 - q) / draws) + 1e-12
    assert np.all(np.abs(freq - q) <= band)
    assert np.all(q[tok.numpy()] > 0)  # never outside the nucleus
    assert torch.allclose(log_q, torch.log(torch.tensor(q, dtype=torch.float64))[tok], atol=1e-9)
    own = torch.log_softmax(logits.double(), dim=-1)[0]
    assert torch.allclose(log_own, own[tok], atol=1e-12)


def test_sample_tokens_is_reproducible_from_the_generator():
    logits = torch.randn(5, 100, generator=torch.Generator().manual_seed(1))
    a = sample_tokens(logits, 0.8, 0.95, torch.Generator().manual_seed(7))[0]
    b = sample_tokens(logits, 0.8, 0.95, torch.Generator().manual_seed(7))[0]
    assert torch.equal(a, b)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("top_p", [0.3, 0.8, 0.95, 0.999])
def test_sorted_nucleus_equals_the_topk_nucleus(seed, top_p):
    """Same kept tokens, same values in the same (descending) order, same normalizer: the sort finds the
    nucleus the grown top-k search finds, including rows that need the search to grow past its first
    guess. Tied logits may be listed in another order (float32 logits of a flat row do tie)."""
    rng = np.random.default_rng(seed)
    scale = rng.choice([0.05, 1.0, 4.0], size=(7, 1))
    logits = torch.tensor(rng.normal(size=(7, 2000)) * scale, dtype=torch.float32)
    z = logits.double() / 0.8
    idx_a, zk_a, keep_a, lse_a = nucleus(z, top_p)
    idx_b, zk_b, keep_b, lse_b = nucleus_sorted(z, top_p, order_by=logits)
    k = idx_a.shape[1]
    assert torch.equal(keep_a.sum(-1), keep_b.sum(-1))
    assert not keep_b[:, k:].any()
    for r in range(z.shape[0]):
        ka, kb = keep_a[r], keep_b[r, :k]
        assert torch.equal(zk_a[r][ka], zk_b[r, :k][kb])
        assert sorted(idx_a[r][ka].tolist()) == sorted(idx_b[r, :k][kb].tolist())
    assert torch.allclose(lse_a, lse_b, atol=1e-12)


@pytest.mark.parametrize(("temperature", "top_p"), [(1.0, 1.0), (0.8, 0.95), (1.3, 0.5)])
def test_both_nucleus_methods_draw_the_same_tokens(temperature, top_p):
    """From the same generator state both methods draw the same token per row with the same log q, so
    switching the GPU to the sort-based nucleus changes no reply, only where the work is done (float64
    logits here, so that no two tie: tied tokens have equal probability but may swap places)."""
    logits = torch.randn(64, 3000, generator=torch.Generator().manual_seed(5), dtype=torch.float64) * 2.0
    a = sample_tokens(logits, temperature, top_p, torch.Generator().manual_seed(9), "topk")
    b = sample_tokens(logits, temperature, top_p, torch.Generator().manual_seed(9), "sort")
    assert torch.equal(a[0], b[0])
    assert torch.allclose(a[1], b[1], atol=1e-12) and torch.allclose(a[2], b[2], atol=1e-12)


def test_nucleus_method_by_device_and_unknown_method():
    assert nucleus_method_for("cpu") == "topk"
    assert nucleus_method_for("cuda") == "sort"
    assert nucleus_method_for("cuda:1") == "sort"
    with pytest.raises(ValueError, match="nucleus_method: must be one of topk, sort"):
        sample_tokens(torch.zeros(2, 5), 1.0, 0.5, torch.Generator(), "bisect")
