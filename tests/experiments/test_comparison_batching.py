"""Batched sampling in the comparison harness: grouping, batch sizes, and replies that do not depend on
which other mechanisms are evaluated."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adspace.experiments.comparison.batching import sample_grouped
from adspace.experiments.comparison.harness import episodes_from, evaluate

from .test_comparison import queries, setup

COMPUTE = ("seconds", "cpu_seconds", "llm_passes", "embedder_texts")


class Recorder:
    """A sampler that labels each reply by (call, prompt, k) and records the calls."""

    def __init__(self):
        self.calls = []

    def __call__(self, prompts, n, extras, seed):
        self.calls.append((list(prompts), n, list(extras), seed))
        c = len(self.calls) - 1
        return [[(c, p[0]["content"], k) for k in range(n)] for p in prompts]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(0, 5), min_size=1, max_size=30),
    st.integers(1, 3),
    st.integers(1, 16),
)
def test_grouped_sampling_gives_every_request_its_own_replies_of_its_prompt(which, per, batch_rows):
    reqs = [([{"role": "user", "content": f"p{w}"}], 100 + i, f"x{w}") for i, w in enumerate(which)]
    rec = Recorder()
    out = sample_grouped(rec, reqs, per=per, batch_rows=batch_rows)
    assert [len(o) for o in out] == [per] * len(reqs)
    for (prompt, _seed, _x), replies in zip(reqs, out, strict=True):
        assert all(r[1] == prompt[0]["content"] for r in replies)  # replies of its own prompt
    flat = [r for o in out for r in o]
    assert len(set(flat)) == len(flat)  # no reply given to two requests
    for prompts, n, extras, seed in rec.calls:
        assert len({p[0]["content"] for p in prompts}) == len(prompts)  # each prompt prefilled once per batch
        assert extras == [f"x{p[0]['content'][1:]}" for p in prompts]
        # a batch holds batch_rows rows, unless one group alone is wider
        assert len(prompts) * n <= batch_rows or len(prompts) == 1
        assert seed >= 100
    # the batches are a function of the requests: the same list gives the same replies
    assert sample_grouped(Recorder(), reqs, per=per, batch_rows=batch_rows) == out


def test_grouped_sampling_rejects_bad_sizes():
    with pytest.raises(ValueError, match="per"):
        sample_grouped(Recorder(), [], per=0)
    with pytest.raises(ValueError, match="batch_rows"):
        sample_grouped(Recorder(), [], batch_rows=0)


def test_a_mechanisms_rows_do_not_depend_on_the_others_evaluated_with_it():
    eps = episodes_from(queries(), seed=3, replicates=2)
    *_, mechs, judge = setup()
    together = evaluate(mechs, eps, judge)
    for k in range(len(mechs)):
        *_, alone_mechs, alone_judge = setup()
        alone = evaluate([alone_mechs[k]], eps, alone_judge)
        name = alone_mechs[k].name
        strip = [{f: v for f, v in r.items() if f not in COMPUTE} for r in alone[name]]
        assert strip == [{f: v for f, v in r.items() if f not in COMPUTE} for r in together[name]], name


def test_replicates_of_a_query_share_one_prompt_and_get_different_replies():
    eps = episodes_from(queries(3), seed=1, replicates=4)
    llm, _clicks, _answers, (*_, la), judge = setup()
    calls = []
    sample = llm.sample

    def spy(prompts, n, **kw):
        calls.append((len(prompts), n))
        return sample(prompts, n, **kw)

    llm.sample = spy
    rows = evaluate([la], eps, judge, shading=None)["llm-auction"]
    # 3 queries x 4 replicates: one batch of 3 prompts x 4 replies for the policy (and one for the
    # plain answers the judge needs)
    assert (3, 4) in calls and sum(p * n for p, n in calls) == 2 * 12
    for j in range(3):
        replies = [rows[j + 3 * r]["reply"] for r in range(4)]
        assert len(set(replies)) > 1
    assert all(r["seconds"] > 0 for r in rows)  # the batch's time, shared by the episodes
    assert np.isclose(sum(r["llm_passes"] for r in rows), 0)  # a model-free backend: no transformer passes
