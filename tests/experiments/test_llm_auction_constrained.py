"""Constrained decoding of the ad markup (adspace.experiments.llm_auction.constrained)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adspace.experiments.llm_auction.constrained import (
    ConstrainedLogProbs,
    MarkupConstraint,
    MarkupState,
    mask_rows,
    sample_constrained,
    score_constrained,
    token_table,
)
from adspace.experiments.llm_auction.format import Ad, parse_reply
from adspace.models.llm import sample_tokens, token_logprobs


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    from adspace.models.llm import smollm2_fp32_path

    return AutoTokenizer.from_pretrained(smollm2_fp32_path())


TITLE = st.text(alphabet=st.sampled_from(list("abcXYZ 09&.,-'@é[]")), min_size=1, max_size=14).filter(
    lambda t: t == t.strip() and "@[" not in t
)


def _ads(titles):
    return [Ad(f"Ad-{k:04d}", t) for k, t in enumerate(titles)]


def _decode(con: MarkupConstraint, gen: torch.Generator, steps: int, top_p: float, boost: float):
    """Random logits (risky tokens boosted so insertions open often) through the mask and the shared kernel."""
    table = con.table
    st_, ids, lps = MarkupState(), [], []
    t = 0
    while t < steps or st_.open:
        z = torch.randn(table.vocab, generator=gen, dtype=torch.float32) * 3
        z[table.risky] += boost
        con.mask_logits(z, st_)
        tok, log_q, _ = sample_tokens(z[None, :], 1.0, top_p, gen)
        k = int(tok[0])
        assert np.isfinite(float(log_q[0]))
        ids.append(k)
        lps.append(float(log_q[0]))
        st_ = con.advance(st_, k)
        t += 1
        assert t < steps + 200, "an insertion never closed"
    return ids, st_


# few examples, derandomized: each runs the constraint over the full 49k-token vocabulary (CI has 2 cores)
FEW = settings(
    max_examples=6, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@FEW
@given(
    titles=st.lists(TITLE, min_size=1, max_size=4, unique=True),
    seed=st.integers(0, 2**31 - 1),
    top_p=st.sampled_from([1.0, 0.9, 0.5]),
    boost=st.sampled_from([6.0, 12.0]),
)
def test_theorem_every_constrained_reply_parses_without_format_errors(tokenizer, titles, seed, top_p, boost):
    ads = _ads(titles)
    con = MarkupConstraint(token_table(tokenizer), ads)
    ids, _ = _decode(con, torch.Generator().manual_seed(seed), 20, top_p, boost)
    text = con.table.text(ids)
    assert text == tokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)
    parsed = parse_reply(text, ads)
    assert parsed.n_errors == 0, (text, parsed.errors)


@FEW
@given(
    titles=st.lists(TITLE.filter(lambda t: not t.startswith("[")), min_size=1, max_size=3, unique=True),
    seed=st.integers(0, 2**31 - 1),
    cuts=st.lists(st.integers(-2, 12), min_size=1, max_size=6),
)
def test_theorem_batched_mask_equals_the_mask_of_each_row(tokenizer, titles, seed, cuts):
    """``mask_rows`` (one indexed write per kind of row, the sampler's path) gives every row exactly what
    ``mask_logits`` gives it alone; an ended row keeps only the padding token. Rows: -2 ended, -1 outside
    an insertion, k >= 0 k bytes into an insertion."""
    ads = _ads(titles)
    table = token_table(tokenizer)
    con = MarkupConstraint(table, ads)
    states, active = [], []
    for k, cut in enumerate(cuts):
        st_ = MarkupState()
        if cut >= 0:
            st_ = con.advance(st_, table.by_bytes[b" @"][0])
            body = con.bodies[(seed + k) % len(ads)]
            for b in body[: cut % len(body)]:
                st_ = con.advance(st_, table.by_bytes[bytes([b])][0])
        states.append(st_)
        active.append(cut != -2)
    z = torch.randn(len(cuts), table.vocab, generator=torch.Generator().manual_seed(seed))
    got = mask_rows(z.clone(), [con] * len(cuts), states, active, pad_id=7)
    for r in range(len(cuts)):
        want = z[r].clone()
        if active[r]:
            con.mask_logits(want, states[r])
        else:
            want.fill_(float("-inf"))
            want[7] = 0.0
        assert torch.equal(got[r], want), r


@FEW
@given(
    titles=st.lists(TITLE.filter(lambda t: not t.startswith("[")), min_size=1, max_size=3, unique=True),
    seed=st.integers(0, 2**31 - 1),
    cut=st.integers(0, 12),
    temperature=st.sampled_from([1.0, 0.7]),
    top_p=st.sampled_from([1.0, 0.8]),
)
def test_theorem_constrained_distribution_is_normalised(tokenizer, titles, seed, cut, temperature, top_p):
    """Inside an open insertion: the allowed tokens carry all the mass, the refused ones none."""
    ads = _ads(titles)
    table = token_table(tokenizer)
    con = MarkupConstraint(table, ads)
    body = con.bodies[seed % len(ads)]
    st_ = con.advance(MarkupState(), table.by_bytes[b" @"][0])
    for b in body[: cut % len(body)]:
        st_ = con.advance(st_, table.by_bytes[bytes([b])][0])
    assert st_.open
    allowed = con.allowed_open(st_)
    assert allowed.size >= 1
    z = torch.randn(table.vocab, generator=torch.Generator().manual_seed(seed), dtype=torch.float32) * 4
    con.mask_logits(z, st_)
    lp = token_logprobs(z[None, :].expand(allowed.size, -1), torch.as_tensor(allowed), temperature, top_p)
    assert float(torch.logsumexp(lp, 0)) == pytest.approx(0.0, abs=1e-6)  # float32 logits
    refused = torch.as_tensor(np.setdiff1d(np.arange(200, 260), allowed))
    lr = token_logprobs(z[None, :].expand(refused.numel(), -1), refused, temperature, top_p)
    assert bool(torch.isinf(lr).all())


@FEW
@given(
    titles=st.lists(TITLE.filter(lambda t: not t.startswith("[")), min_size=1, max_size=3, unique=True),
    lead=st.sampled_from(["", "Consider ", "Try (", "Rest well. A good option is "]),
    tail=st.sampled_from(["", ".", ",", "!", ").", "), then rest.", ". Then rest.", "; or not"]),
)
def test_theorem_markup_tokenized_afresh_is_writable(tokenizer, titles, lead, tail):
    """A reply with valid markup, tokenized as one text (as TRL's DPO does, where ``]`` merges with the
    punctuation after it into one token such as ``].``), is one the constrained ad-writer could have written:
    its log-probability under the constrained distribution is finite, so DPO can align it."""
    ads = _ads(titles)
    con = MarkupConstraint(token_table(tokenizer), ads)
    text = f"{lead}{ads[-1].markup()}{tail}"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    assert con.writable(ids, eos=tokenizer.eos_token_id), [tokenizer.convert_ids_to_tokens(i) for i in ids]
    st_ = MarkupState()
    for t in ids[:-1]:
        st_ = con.advance(st_, t)
    assert not st_.open and st_.used == {len(ads) - 1}
    # an insertion left open at the end of the turn, or a bare bracket, cannot be written
    cut = tokenizer(f"{lead}@{ads[-1].title}", add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    assert not con.writable(cut, eos=tokenizer.eos_token_id)
    assert not con.writable(tokenizer("see [Ad-0000] here", add_special_tokens=False)["input_ids"])


def test_free_text_refuses_brackets_and_stray_at_but_opens_candidates(tokenizer):
    table = token_table(tokenizer)
    ads = _ads(["Soup Kit"])
    con = MarkupConstraint(table, ads)
    ban = set(con.banned_free(MarkupState()).tolist())
    assert table.by_bytes[b"["][0] in ban
    assert table.by_bytes[b" @"][0] not in ban  # opens "@Soup Kit@[Ad-0000]"
    used = MarkupState(used={0})
    assert table.by_bytes[b" @"][0] in set(con.banned_free(used).tolist())  # nothing left to insert
    after_letter = MarkupState(prev=ord("x"))
    assert table.by_bytes[b"@"][0] in set(con.banned_free(after_letter).tolist())  # e-mail style: refused


@pytest.mark.slow
def test_constrained_sampler_logprobs_are_those_of_the_distribution_sampled(tokenizer):
    """Real model: replies parse cleanly, and teacher-forced constrained scores equal the sampled log-probs."""
    from adspace.models.llm import LocalLLM

    llm = LocalLLM()
    ads = [Ad("Ad-0001", "Trail Runner 5", "running shoe"), Ad("Ad-0002", "Soup Kit", "soup delivered")]
    prompts = [[{"role": "user", "content": "Shoes? Ads: @Trail Runner 5@[Ad-0001] @Soup Kit@[Ad-0002]"}]]
    out = sample_constrained(llm, prompts, [ads], 3, max_new_tokens=8, temperature=0.7, top_p=0.8, seed=3)
    replies = out[0]
    for r in replies:
        assert parse_reply(r.text, ads).n_errors == 0
        assert len(r.token_logprobs) == len(r.token_ids) + int(r.finished)
    q = score_constrained(llm, prompts * 3, [ads] * 3, replies, temperature=0.7, top_p=0.8)
    own = score_constrained(llm, prompts * 3, [ads] * 3, replies)
    np.testing.assert_allclose(q, [r.logprob for r in replies], atol=1e-4)
    np.testing.assert_allclose(own, [r.model_logprob for r in replies], atol=1e-4)
    # the constrained distribution is the model's renormalised: at least as likely as unconstrained
    assert np.all(own >= llm.score(prompts * 3, replies) - 1e-4)


@pytest.mark.slow
def test_dpo_sees_the_constrained_logprobs(tokenizer):
    """The patched fused LM head (TRL's DPO path) gives the same sequence log-probability as the scorer."""
    from trl.trainer.utils import add_fused_lm_head

    from adspace.models.llm import LocalLLM

    llm = LocalLLM()
    ads = [Ad("Ad-0001", "Trail Runner 5", "running shoe")]
    prompt = [{"role": "user", "content": "Shoes for a marathon? Ad: @Trail Runner 5@[Ad-0001]"}]
    reply = "Try the @Trail Runner 5@[Ad-0001] for long runs."
    pid = llm.prompt_ids(prompt)
    rid = llm._reply_ids(reply)
    add_fused_lm_head(llm.model)
    clp = ConstrainedLogProbs(llm.tokenizer, {tuple(pid): ads})
    clp.patch(llm.model)
    ids = torch.tensor([pid + rid])
    labels = ids.clone()
    labels[0, : len(pid)] = -100
    out = llm.model(input_ids=ids, attention_mask=torch.ones_like(ids), labels=labels, fused_lm_head=True)
    assert clp.calls == 1
    want = score_constrained(llm, [prompt], [ads], [reply])[0]
    assert float(out.log_probs.detach().sum()) == pytest.approx(want, abs=1e-3)
    assert want > llm.score([prompt], [reply])[0]  # the trie makes the copied markup near-certain
