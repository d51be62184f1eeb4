"""MOSAIC (Soumalias, Curry, Seuken, "Truthful Aggregation of LLMs with an Application to Online
Advertising", arXiv 2405.05905): one test per result of the paper, named after it.

What is random, and what each result claims
-------------------------------------------
Two things are random in MOSAIC: (1) the M candidates, drawn i.i.d. from the generating LLM
``π_gen`` (``π_ref`` or ``π_con``), which does not look at anyone's reward report; (2) the returned
reply, drawn from the candidates with the allocation of Algorithm 1.

* Theorem 1 is an *ex-interim* statement: for every fixed set of candidates and every ``β_{−i}``
  (others' reports, π_ref, π_gen), truth maximizes agent i's utility **in expectation over (2)**.
  It is not an ex-post statement (a misreport can do better for a particular returned reply, see
  ``test_theorem1_is_not_ex_post``). Because (1) does not depend on reports, the ex-interim
  inequality, holding for every candidate set, also holds in expectation over (1) (ex ante); we
  check that too, exactly, by enumerating every candidate tuple of a toy language model.
* Lemmas 1, EC.1, EC.2 are ex-interim identities/inequalities for fixed candidates.
* Corollary EC.1 and Theorem EC.1 / Corollary 1 are about the expectation over (1) (and (2)); we
  compute those expectations *exactly* on a toy LM with a finite set of sequences.
"""

from __future__ import annotations

import itertools
from math import comb, lgamma

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.optimize import minimize

from adspace.mechanisms import mosaic

SETTINGS = settings(max_examples=150, deadline=None)


# --------------------------------------------------------------------------------------------------
# Strategies: an auction instance with fixed candidates
# --------------------------------------------------------------------------------------------------


@st.composite
def instances(draw, max_n: int = 4, max_m: int = 16, scale: float = 30.0):
    n = draw(st.integers(1, max_n))
    m = draw(st.integers(1, max_m))
    fin = st.floats(-scale, scale, allow_nan=False, allow_infinity=False)
    rewards = draw(arrays(np.float64, (n, m), elements=fin))
    neg = st.floats(-scale, 0.0, allow_nan=False, allow_infinity=False)
    log_ref = draw(arrays(np.float64, (m,), elements=neg))
    log_gen = draw(arrays(np.float64, (m,), elements=neg))
    tau = draw(st.floats(0.05, 20.0))
    offset = draw(st.booleans())
    return rewards, log_ref, log_gen, tau, offset


def _tol(*arrays_) -> float:
    return 1e-9 * (1.0 + max(float(np.max(np.abs(a))) for a in arrays_))


def _u(i, report, rewards, log_ref, log_gen, tau, offset):
    return mosaic.utility_of_report(i, report, rewards, log_ref, log_gen, tau, offset)


# --------------------------------------------------------------------------------------------------
# Theorem 1: truthful reporting maximizes ex-interim expected utility, for every M
# --------------------------------------------------------------------------------------------------


@SETTINGS
@given(inst=instances(), data=st.data())
def test_theorem1_truthful_beats_random_misreports(inst, data):
    rewards, log_ref, log_gen, tau, offset = inst
    n, m = rewards.shape
    i = data.draw(st.integers(0, n - 1))
    truth = _u(i, rewards[i], rewards, log_ref, log_gen, tau, offset)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    r_i = rewards[i]
    misreports = [
        rng.normal(0.0, 30.0, m),  # arbitrary
        r_i * rng.uniform(0.0, 3.0),  # shade or exaggerate
        r_i + rng.normal(0.0, 1.0, m),  # jitter
        rng.permutation(r_i),  # swap preferences
        np.zeros(m),  # abstain in effect
        np.where(r_i == r_i.max(), r_i + 50.0, r_i),  # push the favourite
    ]
    for rep in misreports:
        mis = _u(i, rep, rewards, log_ref, log_gen, tau, offset)
        assert mis <= truth + _tol(rewards, rep, log_ref, log_gen), (rep, mis, truth)


@settings(max_examples=40, deadline=None)
@given(inst=instances(max_n=3, max_m=8, scale=10.0), data=st.data())
def test_theorem1_truthful_beats_optimized_misreports(inst, data):
    """A numerical optimizer searching over reports, from several starts, never beats the truth."""
    rewards, log_ref, log_gen, tau, offset = inst
    n, m = rewards.shape
    i = data.draw(st.integers(0, n - 1))
    truth = _u(i, rewards[i], rewards, log_ref, log_gen, tau, offset)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))

    def neg_u(rep):
        return -_u(i, rep, rewards, log_ref, log_gen, tau, offset)

    best = -np.inf
    for start in (rng.normal(0.0, 10.0, m), rewards[i] + rng.normal(0.0, 3.0, m), np.zeros(m)):
        res = minimize(neg_u, start, method="L-BFGS-B")
        best = max(best, -res.fun)
    assert best <= truth + _tol(rewards, log_ref, log_gen), (best, truth)


@SETTINGS
@given(inst=instances(max_n=3, max_m=8, scale=10.0), data=st.data())
def test_theorem1_truth_is_a_stationary_point(inst, data):
    """∂u_i(report)/∂report = (diag π − ππᵀ)(r_i − report)/τ vanishes at the truth (first-order condition)."""
    rewards, log_ref, log_gen, tau, offset = inst
    n, m = rewards.shape
    i = data.draw(st.integers(0, n - 1))
    h = 1e-5
    grad = np.empty(m)
    for j in range(m):
        e = np.zeros(m)
        e[j] = h
        grad[j] = (
            _u(i, rewards[i] + e, rewards, log_ref, log_gen, tau, offset)
            - _u(i, rewards[i] - e, rewards, log_ref, log_gen, tau, offset)
        ) / (2 * h)
    assert np.allclose(grad, 0.0, atol=1e-6 * (1 + np.abs(rewards).max()))


@pytest.mark.parametrize("offset", [True, False])
@pytest.mark.parametrize("m", [1, 2, 3, 4])
def test_theorem1_ex_ante_over_candidate_sampling(m, offset):
    """Candidates are random but independent of reports: truth also wins in expectation over them.

    Toy LM over K = 3 sequences; a misreport is a whole reward *function* on the sequences. We
    enumerate all K^M candidate tuples with their exact probabilities (no Monte Carlo).
    """
    rng = np.random.default_rng(100 + m)
    k, n, tau = 3, 2, 1.0
    log_ref = np.log(rng.dirichlet(np.ones(k)))
    log_gen = np.log(rng.dirichlet(np.ones(k)))
    reward_fn = rng.normal(0.0, 2.0, (n, k))
    for _ in range(20):
        mis_fn = reward_fn.copy()
        mis_fn[0] = rng.normal(0.0, 3.0, k)
        truth_ea = mis_ea = 0.0
        for tup in itertools.product(range(k), repeat=m):
            idx = np.array(tup)
            prob = float(np.exp(log_gen[idx].sum()))
            r = reward_fn[:, idx]
            truth = mosaic.utilities(r, log_ref[idx], log_gen[idx], tau, offset)[0]
            mis = mosaic.utility_of_report(0, mis_fn[0, idx], r, log_ref[idx], log_gen[idx], tau, offset)
            assert mis <= truth + 1e-12  # ex interim, for this candidate tuple
            truth_ea += prob * truth
            mis_ea += prob * mis
        assert mis_ea <= truth_ea + 1e-12  # ex ante


def test_theorem1_is_not_ex_post():
    """The guarantee is in expectation over the returned reply, not for each realized reply."""
    r = np.array([[1.0, 0.0]])
    lp = np.log([0.5, 0.5])
    pay_truth = mosaic.payments(r, lp, lp, 1.0)[0]
    pay_zero = mosaic.payments(np.zeros((1, 2)), lp, lp, 1.0)[0]
    # Realized utility if y_1 is returned: misreporting zero pays less and gets the same reward.
    assert 1.0 - pay_zero > 1.0 - pay_truth
    # ... but in expectation truth is strictly better.
    assert mosaic.utility_of_report(0, [0.0, 0.0], r, lp, lp, 1.0) < mosaic.utilities(r, lp, lp, 1.0)[0]


@SETTINGS
@given(inst=instances(), shift=st.floats(-100.0, 100.0), data=st.data())
def test_theorem1_reports_matter_only_up_to_a_constant(inst, shift, data):
    """``r_i + c`` gives the same allocation, payment and utility (the ``Z_i(x)`` of EC.5 is irrelevant)."""
    rewards, log_ref, log_gen, tau, offset = inst
    i = data.draw(st.integers(0, rewards.shape[0] - 1))
    shifted = rewards.copy()
    shifted[i] += shift
    tol = 1e-9 * (1 + np.abs(shifted).max() + np.abs(log_ref).max() + np.abs(log_gen).max())
    assert np.allclose(mosaic.allocate(shifted, log_ref, log_gen, tau), mosaic.allocate(rewards, log_ref, log_gen, tau))
    p0 = mosaic.payments(rewards, log_ref, log_gen, tau, offset)
    p1 = mosaic.payments(shifted, log_ref, log_gen, tau, offset)
    assert abs(p0[i] - p1[i]) <= tol


# --------------------------------------------------------------------------------------------------
# Cyclic monotonicity (Rochet 1987): the interim allocation is the gradient of a convex utility
# --------------------------------------------------------------------------------------------------


@SETTINGS
@given(inst=instances(max_m=10), k=st.integers(2, 6), data=st.data())
def test_cyclic_monotonicity(inst, k, data):
    """For every cycle of agent i's reports r⁰→r¹→…→r^{k−1}→r⁰: Σ_t π(rᵗ)·(rᵗ⁺¹ − rᵗ) ≤ 0."""
    rewards, log_ref, log_gen, tau, _ = inst
    n, m = rewards.shape
    i = data.draw(st.integers(0, n - 1))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    cycle = [rng.normal(0.0, 20.0, m) for _ in range(k)]
    allocs = []
    for rep in cycle:
        prof = rewards.copy()
        prof[i] = rep
        allocs.append(mosaic.allocate(prof, log_ref, log_gen, tau))
    total = sum(allocs[t] @ (cycle[(t + 1) % k] - cycle[t]) for t in range(k))
    assert total <= 1e-9 * (1 + sum(np.abs(c).sum() for c in cycle))


@SETTINGS
@given(inst=instances(max_n=3, max_m=8, scale=10.0), data=st.data())
def test_cyclic_monotonicity_allocation_is_gradient_of_utility(inst, data):
    """π_int(r_i; β_{−i}) = ∇_{r_i} U_C(r_i; β_{−i}) (eq. EC.2 / EC.3), checked by central differences."""
    rewards, log_ref, log_gen, tau, offset = inst
    n, m = rewards.shape
    i = data.draw(st.integers(0, n - 1))
    pi = mosaic.allocate(rewards, log_ref, log_gen, tau)
    h = 1e-5
    grad = np.empty(m)
    for j in range(m):
        up, dn = rewards.copy(), rewards.copy()
        up[i, j] += h
        dn[i, j] -= h
        grad[j] = (
            mosaic.utilities(up, log_ref, log_gen, tau, offset)[i]
            - mosaic.utilities(dn, log_ref, log_gen, tau, offset)[i]
        ) / (2 * h)
    assert np.allclose(grad, pi, atol=1e-6)


# --------------------------------------------------------------------------------------------------
# Lemma 1 (eq. 5), Lemma EC.1, Lemma EC.2
# --------------------------------------------------------------------------------------------------


@SETTINGS
@given(inst=instances(scale=20.0))
def test_lemma1_utility_with_offset(inst):
    """U_i = τ·log Σ_j exp(r_ij/τ)·π_int(y_j|x; r_{−i}) with π_int = softmax(β_{−i}) (eq. 5)."""
    rewards, log_ref, log_gen, tau, _ = inst
    u = mosaic.utilities(rewards, log_ref, log_gen, tau, offset=True)
    pi_minus = mosaic.interim_allocation(rewards, log_ref, log_gen, tau)
    # Independent evaluation: shift by the row maximum, then plain exp/log.
    z = rewards / tau
    zmax = z.max(axis=1, keepdims=True)
    expected = tau * (np.log(np.sum(np.exp(z - zmax) * pi_minus, axis=1)) + zmax[:, 0])
    assert np.allclose(u, expected, rtol=1e-9, atol=1e-9)
    # Consequence: U_i lies between agent i's smallest and largest reward on the candidates.
    assert np.all(u >= rewards.min(axis=1) - 1e-9 * (1 + np.abs(rewards).max()))
    assert np.all(u <= rewards.max(axis=1) + 1e-9 * (1 + np.abs(rewards).max()))


@SETTINGS
@given(inst=instances(), data=st.data())
def test_lemmaEC1_zero_reward_means_zero_utility(inst, data):
    """r_i ≡ 0 on the candidates ⇒ payment 0 and utility deterministically 0, whatever the others report."""
    rewards, log_ref, log_gen, tau, _ = inst
    i = data.draw(st.integers(0, rewards.shape[0] - 1))
    rewards = rewards.copy()
    rewards[i] = 0.0
    pay = mosaic.payments(rewards, log_ref, log_gen, tau, offset=True)
    assert abs(pay[i]) <= 1e-9 * (1 + np.abs(rewards).max() + np.abs(log_ref).max() + np.abs(log_gen).max())
    for j in range(rewards.shape[1]):  # every reply that can be returned: realized utility r_ij − p_i
        assert abs(rewards[i, j] - pay[i]) <= 1e-9 * (1 + np.abs(rewards).max() + np.abs(log_ref - log_gen).max())
    assert abs(mosaic.utilities(rewards, log_ref, log_gen, tau, offset=True)[i]) <= 1e-9 * (
        1 + np.abs(rewards).max() + np.abs(log_ref - log_gen).max()
    )


@SETTINGS
@given(inst=instances(), data=st.data())
def test_lemmaEC2_positive_rewards_mean_positive_utility(inst, data):
    """r_i ≥ 0 (resp. > 0) on all candidates ⇒ ex-interim utility ≥ 0 (resp. > 0), for all others' reports."""
    rewards, log_ref, log_gen, tau, _ = inst
    i = data.draw(st.integers(0, rewards.shape[0] - 1))
    rewards = rewards.copy()
    rewards[i] = np.abs(rewards[i])
    u = mosaic.utilities(rewards, log_ref, log_gen, tau, offset=True)[i]
    assert u >= -1e-9 * (1 + np.abs(rewards).max() + np.abs(log_ref - log_gen).max())
    rewards[i] += 0.5
    assert mosaic.utilities(rewards, log_ref, log_gen, tau, offset=True)[i] > 0.0


def test_lemmaEC2_needs_the_offset():
    """Without the §5.3 offset an agent with positive rewards can have negative utility (C = 0)."""
    r = np.array([[1.0, 1.0], [0.0, 0.0]])
    log_ref = np.array([-20.0, -25.0])  # candidates π_ref finds unlikely ...
    log_gen = np.array([-1.0, -2.0])  # ... drawn from a context-aware π_con
    assert mosaic.utilities(r, log_ref, log_gen, 1.0, offset=False)[0] < 0.0
    assert mosaic.utilities(r, log_ref, log_gen, 1.0, offset=True)[0] > 0.0


# --------------------------------------------------------------------------------------------------
# Toy language model with a known finite distribution over sequences: exact expectations over the
# candidates by enumerating multinomial count vectors.
# --------------------------------------------------------------------------------------------------


def _compositions(m: int, k: int):
    """All count vectors (n_1..n_k) with Σ n = m."""
    for bars in itertools.combinations(range(m + k - 1), k - 1):
        prev, counts = -1, []
        for b in bars:
            counts.append(b - prev - 1)
            prev = b
        counts.append(m + k - 1 - prev - 1)
        yield counts


def _log_multinomial(counts, log_p):
    m = sum(counts)
    out = lgamma(m + 1)
    for c, lp in zip(counts, log_p, strict=True):
        if c:
            out += c * lp - lgamma(c + 1)
    return out


def returned_distribution(log_ref, log_gen, reward_fn, tau, m, *, log_weight_gen=None):
    """Exact distribution of the reply Algorithm 1 returns with M = m candidates drawn from π_gen.

    Candidates of the same sequence share one logit, so given the count vector ``n`` of the M
    candidates the allocation puts ``n_k·w_k / Σ_l n_l·w_l`` on sequence k, with
    ``w = exp(Σ_i r_i/τ + log π_ref − log π_told)``. Averaging over ``n ∼ Multinomial(M, π_gen)`` with
    ``1/S = ∫_0^∞ e^{−tS} dt`` and the multinomial generating function ``G(t) = Σ_l p_l e^{−t w_l}``:

        π_{θ,M}(k) = M·p_k·w_k ∫_0^∞ e^{−t w_k} G(t)^{M−1} dt,

    a one-dimensional integral evaluated by adaptive quadrature (any M, in milliseconds).
    ``test_toy_integral_is_the_mechanism`` checks it against running :func:`mosaic.allocate` on every
    candidate list. ``log_weight_gen`` is the log π_gen the mechanism is *told* (default: the true one).
    """
    from scipy.integrate import quad

    told = log_gen if log_weight_gen is None else log_weight_gen
    support = np.flatnonzero(np.isfinite(log_gen))
    logw = reward_fn[:, support].sum(axis=0) / tau + log_ref[support] - told[support]
    w = np.exp(logw - logw.max())
    p = np.exp(log_gen[support])
    p /= p.sum()

    def integrand(t, k):
        g = float(p @ np.exp(-t * w))
        return np.exp(-t * w[k] + (m - 1) * np.log(g)) if g > 0 else 0.0

    out = np.zeros(log_ref.size)
    for k, s in enumerate(support):
        val, _ = quad(integrand, 0.0, np.inf, args=(k,), epsabs=1e-14, epsrel=1e-12, limit=500)
        out[s] = m * p[k] * w[k] * val
    return out


def returned_distribution_by_allocate(log_ref, log_gen, reward_fn, tau, m):
    """The same expectation, running :func:`mosaic.allocate` on every candidate list (small M only)."""
    support = np.flatnonzero(np.isfinite(log_gen))
    out = np.zeros(log_ref.size)
    for counts in _compositions(m, support.size):
        counts = np.array(counts)
        idx = np.repeat(support[counts > 0], counts[counts > 0])  # the candidate list y_1..y_M
        probs = mosaic.allocate(reward_fn[:, idx], log_ref[idx], log_gen[idx], tau)
        np.add.at(out, idx, np.exp(_log_multinomial(counts, log_gen[support])) * probs)
    return out


@pytest.mark.parametrize("m", [1, 2, 3, 6])
def test_toy_integral_is_the_mechanism(m):
    log_ref, log_con, reward_fn = _toy()
    a = returned_distribution(log_ref, log_con, reward_fn, 1.0, m)
    b = returned_distribution_by_allocate(log_ref, log_con, reward_fn, 1.0, m)
    assert np.allclose(a, b, atol=1e-10)
    assert abs(b.sum() - 1.0) < 1e-12
    assert abs(a.sum() - 1.0) < 1e-9


def _pi_r(log_ref, reward_fn, tau):
    logits = log_ref + reward_fn.sum(axis=0) / tau
    return np.exp(logits - np.logaddexp.reduce(logits))


def _tv(p, q):
    return 0.5 * float(np.abs(p - q).sum())


TOY_K = 5


def _toy(seed=7):
    rng = np.random.default_rng(seed)
    log_ref = np.log(np.array([0.55, 0.25, 0.12, 0.06, 0.02]))
    # π_con puts more mass where the advertisers' rewards are (like "try to mention ...").
    log_con = np.log(np.array([0.15, 0.15, 0.2, 0.25, 0.25]))
    reward_fn = np.array([[-1.0, 0.0, 0.5, 2.5, 1.0], [-0.5, -0.5, 1.5, 0.5, 2.0]]) + rng.normal(0, 0.05, (2, TOY_K))
    return log_ref, log_con, reward_fn


def test_toy_enumeration_matches_sampling():
    """The exact enumeration agrees with running the mechanism (mosaic.run) on sampled candidates."""
    log_ref, log_con, reward_fn = _toy()
    m = 4
    exact = returned_distribution(log_ref, log_con, reward_fn, 1.0, m)
    assert abs(exact.sum() - 1.0) < 1e-12
    rng = np.random.default_rng(0)
    trials = 6_000
    counts = np.zeros(TOY_K)
    p_con = np.exp(log_con)
    for _ in range(trials):
        idx = rng.choice(TOY_K, size=m, p=p_con)
        out = mosaic.run(reward_fn[:, idx], log_ref[idx], log_con[idx], 1.0, rng=rng)
        counts[idx[out.index]] += 1
    assert _tv(counts / trials, exact) < 0.035  # expected TV of 6k draws is ~0.012


@pytest.mark.parametrize("generator", ["ref", "con"])
def test_theoremEC1_returned_distribution_converges_to_pi_r(generator):
    """Theorem EC.1: lim_{M→∞} π_{θ,M} = π_r (eq. 2); measured TV shrinks ~1/M, for π_gen = π_ref or π_con."""
    log_ref, log_con, reward_fn = _toy()
    log_gen = log_ref if generator == "ref" else log_con
    target = _pi_r(log_ref, reward_fn, 1.0)
    ms = [1, 2, 4, 8, 16, 32, 64, 128, 256, 1024]
    tvs = [_tv(returned_distribution(log_ref, log_gen, reward_fn, 1.0, m), target) for m in ms]
    # monotone decrease, and at least a 100x reduction from M = 1 to M = 1024
    assert all(b <= a + 1e-9 for a, b in zip(tvs, tvs[1:], strict=False)), tvs
    assert tvs[-1] < tvs[0] / 100, tvs
    # the self-normalized importance-sampling bias is O(1/M): M·TV stays bounded
    assert tvs[-1] * 1024 < 2 * tvs[4] * 16, tvs


def test_theoremEC1_context_aware_converges_faster():
    """§4: with π_con closer to π_r than π_ref is, fewer candidates reach the same TV (Figure 1a's finding)."""
    log_ref, log_con, reward_fn = _toy()
    target = _pi_r(log_ref, reward_fn, 1.0)
    for m in (2, 4, 8):
        tv_ref = _tv(returned_distribution(log_ref, log_ref, reward_fn, 1.0, m), target)
        tv_con = _tv(returned_distribution(log_ref, log_con, reward_fn, 1.0, m), target)
        assert tv_con < tv_ref


def test_theoremEC1_needs_the_true_sampling_log_prob():
    """The importance weight must be log π_gen of the distribution actually sampled from.

    Telling the mechanism the candidates came from π_ref while they came from π_con converges to
    ∝ π_con·exp(r/τ), not π_r: the TV to π_r stays large however many candidates are drawn.
    """
    log_ref, log_con, reward_fn = _toy()
    target = _pi_r(log_ref, reward_fn, 1.0)
    right = _tv(returned_distribution(log_ref, log_con, reward_fn, 1.0, 1024), target)
    wrong = _tv(returned_distribution(log_ref, log_con, reward_fn, 1.0, 1024, log_weight_gen=log_ref), target)
    assert right < 0.001 < 0.1 < wrong


def test_theoremEC1_truncated_sampler_converges_to_pi_r_on_its_support():
    """Top-p truncation: π_gen = 0 outside the nucleus, so the limit is π_r conditioned on that support."""
    log_ref, _, reward_fn = _toy()
    # A temperature-0.8 + top-p style sampler: sharpen, drop the tail sequence, renormalize.
    tempered = log_ref / 0.8
    tempered -= np.logaddexp.reduce(tempered)
    keep = np.array([True, True, True, True, False])
    log_gen = np.where(keep, tempered, -np.inf)
    log_gen[keep] -= np.logaddexp.reduce(log_gen[keep])
    got = returned_distribution(log_ref, log_gen, reward_fn, 1.0, 1024)
    full = _pi_r(log_ref, reward_fn, 1.0)
    on_support = np.where(keep, full, 0.0) / full[keep].sum()
    assert got[~keep].sum() == 0.0
    assert _tv(got, on_support) < 0.01
    assert _tv(got, full) > full[~keep].sum() - 0.01


def _objective(p, log_ref, reward_fn, tau):
    """J(π) of eq. (1)."""
    nz = p > 0
    kl = float(np.sum(p[nz] * (np.log(p[nz]) - log_ref[nz])))
    return float(p @ reward_fn.sum(axis=0)) - tau * kl


@pytest.mark.parametrize("tau", [0.5, 1.0, 3.0])
def test_corollary1_limit_maximizes_kl_regularized_objective(tau):
    """Corollary 1: π_r = argmax J(π); and J(π_{θ,M}) climbs toward J(π_r) as M grows."""
    log_ref, log_con, reward_fn = _toy()
    target = _pi_r(log_ref, reward_fn, tau)
    best = _objective(target, log_ref, reward_fn, tau)
    rng = np.random.default_rng(1)
    for _ in range(200):
        q = rng.dirichlet(np.full(TOY_K, 0.5))
        assert _objective(q, log_ref, reward_fn, tau) <= best + 1e-12
    js = [
        _objective(returned_distribution(log_ref, log_con, reward_fn, tau, m), log_ref, reward_fn, tau)
        for m in (1, 4, 16, 256)
    ]
    assert all(j <= best + 1e-12 for j in js)
    assert js[-1] > js[0]
    assert best - js[-1] < 0.1 * (best - js[0]) + 1e-12


# --------------------------------------------------------------------------------------------------
# Corollary EC.1: ex-ante positive utility when π_con only generates sequences the agent likes
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("m", [1, 2, 4, 8])
def test_corollaryEC1_ex_ante_positive_utility(m):
    """π_con supported where r_i > 0 (r_i < 0 elsewhere) ⇒ E_candidates[U_i] > 0, computed exactly."""
    log_ref, _, _ = _toy()
    reward_fn = np.array([[-3.0, -1.0, 0.4, 1.2, 0.7], [1.0, 0.5, -2.0, 0.3, -0.5]])
    log_con = np.log(np.array([0.0, 0.0, 0.3, 0.3, 0.4]) + 1e-300)
    log_con[:2] = -np.inf
    support = np.flatnonzero(np.isfinite(log_con))
    ex_ante = 0.0
    for counts in _compositions(m, support.size):
        counts = np.array(counts)
        idx = np.repeat(support[counts > 0], counts[counts > 0])
        u = mosaic.utilities(reward_fn[:, idx], log_ref[idx], log_con[idx], 1.0, offset=True)
        assert u[0] > 0.0  # Lemma EC.2 for every candidate set
        ex_ante += np.exp(_log_multinomial(counts, log_con[support])) * u[0]
    assert ex_ante > 0.0
    assert comb(m + support.size - 1, support.size - 1) > 0
