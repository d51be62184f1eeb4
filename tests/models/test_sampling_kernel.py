"""The sampling kernel of the local backend (temperature, then the top-p nucleus), on random logits.

``nucleus`` ranks only the top-k logits instead of sorting the vocabulary; it must keep exactly the
tokens that transformers' ``TopPLogitsWarper`` keeps, and ``sample_tokens`` must draw from the
distribution whose log-probabilities it reports (MOSAIC's importance weight depends on it).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers.generation.logits_process import TemperatureLogitsWarper, TopPLogitsWarper

from adspace.models.llm import nucleus, sample_tokens, token_logprobs


def _hf_logprobs(logits: torch.Tensor, temperature: float, top_p: float) -> torch.Tensor:
    z = logits.double()
    if temperature != 1.0:
        z = TemperatureLogitsWarper(temperature)(None, z)
    if top_p < 1.0:
        z = TopPLogitsWarper(top_p)(None, z)
    return torch.log_softmax(z, dim=-1)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize(("temperature", "top_p"), [(1.0, 1.0), (0.8, 0.95), (0.7, 0.8), (1.3, 0.5), (0.5, 0.999)])
def test_token_logprobs_equal_transformers_warpers(seed, temperature, top_p):
    """Same support and same log-probabilities as TopPLogitsWarper, for flat and peaked rows, any vocab size."""
    rng = np.random.default_rng(seed)
    vocab = int(rng.choice([7, 300, 5000]))
    scale = rng.choice([0.1, 1.0, 4.0], size=(9, 1))  # flat rows need a nucleus larger than the first guess
    logits = torch.tensor(rng.normal(size=(9, vocab)) * scale, dtype=torch.float32)
    ref = _hf_logprobs(logits, temperature, top_p)
    for tok in range(0, vocab, max(1, vocab // 50)):
        targets = torch.full((9,), tok, dtype=torch.long)
        ours = token_logprobs(logits, targets, temperature, top_p)
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


@pytest.mark.parametrize(("temperature", "top_p"), [(1.0, 1.0), (0.8, 0.9), (1.5, 0.6)])
def test_sample_tokens_draws_from_the_reported_distribution(temperature, top_p):
    """Empirical frequencies of 40,000 draws match exp(log q) (5-sigma band), and log q matches the warpers."""
    rng = np.random.default_rng(3)
    logits = torch.tensor(rng.normal(size=(1, 12)) * 1.5, dtype=torch.float32)
    draws = 40_000
    gen = torch.Generator().manual_seed(0)
    tok, log_q, log_own = sample_tokens(logits.expand(draws, -1), temperature, top_p, gen)
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
