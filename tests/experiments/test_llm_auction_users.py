"""LLM-Auction simulation inputs and users: profiles, queries, prompts, the click model, the judge's validation."""

from __future__ import annotations

import json
import logging
from importlib import resources

import numpy as np
import pytest

from adspace.experiments.llm_auction.data import AuctionQuery, load_queries, split
from adspace.experiments.llm_auction.format import Ad, insert_markup, parse_reply
from adspace.experiments.llm_auction.profiles import generate_profiles, load_profiles, profile_text
from adspace.experiments.llm_auction.prompts import ad_writer_messages, user_judge_messages
from adspace.experiments.llm_auction.users import Click, ClickModel, LLMJudgeUser, clicked_vector, parse_judge_output

# --------------------------------------------------------------------------------------------------
# Profiles and queries
# --------------------------------------------------------------------------------------------------


def test_shipped_profiles_are_the_generator_output():
    doc = json.loads(resources.files("adspace").joinpath("data", "llm_auction_profiles.json").read_text())
    assert doc["profiles"] == generate_profiles(len(doc["profiles"]), seed=doc["seed"])
    assert load_profiles() == doc["profiles"]
    assert len({p["profile_id"] for p in doc["profiles"]}) == len(doc["profiles"])


def test_profiles_reproducible_by_seed_and_differ_across_seeds():
    assert generate_profiles(20, seed=3) == generate_profiles(20, seed=3)
    assert generate_profiles(20, seed=3) != generate_profiles(20, seed=4)
    with pytest.raises(ValueError, match="profile.interests: missing"):
        profile_text({})


def test_demo_queries_reproducible_and_well_formed():
    a = load_queries(8, demo=True, n_candidates=3, seed=1)
    b = load_queries(8, demo=True, n_candidates=3, seed=1)
    assert a == b
    for q in a:
        assert len(q.candidates) == 3 and len({c.ad_id for c in q.candidates}) == 3
        assert q.profile and q.text
    train, test = split(a, 3)
    assert len(train) == 5 and test == a[5:]
    with pytest.raises(ValueError, match="n_test"):
        split(a, 8)
    with pytest.raises(ValueError, match="n_candidates"):
        load_queries(2, demo=True, n_candidates=0)
    with pytest.raises(ValueError, match="data: no such folder"):
        load_queries(2, data="/nonexistent/webis")


def test_webis_queries_have_their_judged_relevant_ads_among_candidates(webis_root):
    qs = load_queries(30, data=webis_root, n_candidates=4, n_relevant=2, seed=0)
    assert len(qs) == 30
    for q in qs:
        ids = {c.ad_id for c in q.candidates}
        assert len(ids) == 4 and q.relevant and q.relevant <= ids and len(q.relevant) <= 2
        assert q.topic in {"banking", "car", "gaming", "healthcare", "real_estate", "restaurant",
                           "shopping", "streaming", "vacation", "workout"}  # fmt: skip


def test_prompts_carry_the_rules_the_ads_and_the_bids():
    ads = [Ad("Ad-0001", "Soup Kit", "Fresh soup ingredients"), Ad("Ad-0002", "Trail Runner 5", "Shoes")]
    msgs = ad_writer_messages("What should I cook?", "Age 30, chef", ads, [17, 3])
    assert [m["role"] for m in msgs] == ["system", "user"]
    assert '"@Ad Title@[Ad ID]"' in msgs[0]["content"]
    assert "@Soup Kit@[Ad-0001]: Fresh soup ingredients (bid 17)" in msgs[1]["content"]
    assert "What should I cook?" in msgs[1]["content"] and "Age 30, chef" in msgs[1]["content"]
    with pytest.raises(ValueError, match="bids: must have one bid per candidate"):
        ad_writer_messages("q", "p", ads, [1])
    j = user_judge_messages("q?", "profile", "reply text")
    assert "strict JSON list" in j[0]["content"] and "reply text" in j[1]["content"]


# --------------------------------------------------------------------------------------------------
# The click model
# --------------------------------------------------------------------------------------------------

Q = AuctionQuery(
    query_id="Q-1",
    text="best running shoes for a marathon",
    topic="workout",
    profile_id="U-1",
    profile="Age 25-34, nurse; interested in running and fitness.",
    candidates=(
        Ad("Ad-0001", "Trail Runner 5", "running shoe: cushioned, light, for long distances"),
        Ad("Ad-0002", "City Bank Card", "credit card: cash back, no annual fee"),
        Ad("Ad-0003", "Soup Kit", "meal kit: soup ingredients delivered"),
        Ad("Ad-0004", "Road Racer", "running shoe: fast, responsive"),
    ),
)
NATIVE = "For marathon training pick a cushioned, light running shoe such as"


@pytest.fixture(scope="module")
def cm():
    return ClickModel()


def _p(cm, text):
    r = parse_reply(text, Q.candidates)
    return cm.probabilities([(Q, r)])[0], r


def test_click_model_relevant_native_ad_beats_irrelevant(cm):
    p_rel, _ = _p(cm, insert_markup(NATIVE + " this one.", Q.candidates[0]))
    p_irr, _ = _p(cm, insert_markup("Cash back on every purchase with", Q.candidates[1]))
    assert p_rel[0] > 0.5 > p_irr[1]
    assert p_rel[1:].sum() == 0 and p_irr[[0, 2, 3]].sum() == 0  # unshown ads are never clicked


def test_click_model_nativeness_counts(cm):
    native, _ = _p(cm, insert_markup(NATIVE, Q.candidates[0]))
    hard, _ = _p(cm, insert_markup("The weather tomorrow is mild. Ad:", Q.candidates[0]))
    assert native[0] > hard[0]


def test_click_model_more_ads_and_errors_lower_each_click(cm):
    one, _ = _p(cm, insert_markup(NATIVE, Q.candidates[0]))
    two, r2 = _p(cm, insert_markup(NATIVE, Q.candidates[0]) + " Or " + Q.candidates[3].markup())
    assert r2.n_ads == 2 and two[0] < one[0]
    err, r3 = _p(cm, insert_markup(NATIVE, Q.candidates[0]) + " @Soup@[Ad-0003]")
    assert r3.n_errors == 1 and err[0] < one[0]


def test_click_model_flooded_or_padded_reply_gets_no_clicks(cm):
    flooded, r = _p(cm, NATIVE + " " + " ".join(a.markup() for a in Q.candidates))
    assert r.n_ads == 4 and flooded.sum() == 0
    padded, r = _p(cm, "Try " + Q.candidates[0].markup())
    assert r.n_ads == 1 and padded.sum() == 0


def test_click_model_deterministic_and_consistent(cm):
    text = insert_markup(NATIVE, Q.candidates[0]) + " Or " + Q.candidates[3].markup()
    r = parse_reply(text, Q.candidates)
    a = cm.feedback([(Q, r)])[0]
    b = ClickModel().feedback([(Q, r)])[0]
    assert a == b and [c.ad_id for c in a] == ["Ad-0001", "Ad-0004"]
    assert clicked_vector(a, Q).sum() == sum(c.clicked for c in a)
    # click frequencies over many distinct replies follow the probabilities
    rng = np.random.default_rng(0)
    base = insert_markup(NATIVE, Q.candidates[0])
    items = [(Q, parse_reply(base + f" ({int(k)})", Q.candidates)) for k in rng.integers(0, 10**9, 300)]
    probs = np.array([p[0] for p in cm.probabilities(items)])
    freq = np.mean([c[0].clicked for c in cm.feedback(items)])
    assert abs(freq - probs.mean()) < 4 * np.sqrt(probs.mean() * (1 - probs.mean()) / len(items))


# --------------------------------------------------------------------------------------------------
# The judge's strict JSON
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad, msg",
    [
        ("Sure! Here you go: []", "not valid JSON"),
        ('{"ad_id": "Ad-1", "clicked": true, "reason": ""}', "must be a JSON list"),
        ('[{"ad_id": "Ad-1", "clicked": "yes", "reason": ""}]', r"\[0\]\.clicked: must be true or false"),
        ('[{"ad_id": "Ad-1", "clicked": true}]', "keys must be"),
        ('[{"ad_id": "Ad-9", "clicked": true, "reason": ""}]', "is not an inserted ad"),
        (
            '[{"ad_id": "Ad-1", "clicked": true, "reason": ""}, {"ad_id": "Ad-1", "clicked": false, "reason": ""}]',
            "twice",
        ),
        ("[]", r"no feedback for inserted ads \['Ad-1'\]"),
    ],
)
def test_parse_judge_output_rejects(bad, msg):
    with pytest.raises(ValueError, match=msg):
        parse_judge_output(bad, ["Ad-1"])


def test_parse_judge_output_accepts_fenced_json_in_expected_order():
    out = parse_judge_output(
        '```json\n[{"ad_id": "Ad-2", "clicked": false, "reason": "no"}, {"ad_id": "Ad-1", "clicked": true, "reason": "yes"}]\n```',
        ["Ad-1", "Ad-2"],
    )
    assert out == [Click("Ad-1", True, "yes"), Click("Ad-2", False, "no")]


def test_judge_retries_then_falls_back_with_a_log(caplog):
    """Validation, retries and the logged fallback, with a scripted chat function (the judge's input)."""
    r_ok = parse_reply(insert_markup(NATIVE, Q.candidates[0]), Q.candidates)
    r_none = parse_reply("No ads.", Q.candidates)
    answers = iter(
        [
            ["not json", "still not json"],  # attempt 1: both items fail
            ['[{"ad_id": "Ad-0001", "clicked": true, "reason": "fits"}]', "[]"],  # attempt 2: item 0 ok
            ["[]"],  # attempt 3: item 1 fails again -> fallback
        ]
    )
    seen = []

    def chat(batch, temperature, max_new_tokens):
        seen.append(len(batch))
        assert temperature == 0.3
        return next(answers)

    judge = LLMJudgeUser(chat, max_retries=2)
    with caplog.at_level(logging.WARNING):
        out = judge.feedback([(Q, r_ok), (Q, r_none), (Q, r_ok)])
    assert seen == [2, 2, 1]  # the reply without ads is never sent
    assert out[0] == [Click("Ad-0001", True, "fits")]
    assert out[1] == []
    assert out[2] == [Click("Ad-0001", False, "fallback: no valid judge output")]
    assert judge.fallbacks == 1 and "invalid output for Q-1" in caplog.text


@pytest.mark.slow
def test_llm_judge_on_the_local_model_returns_valid_feedback_or_logs_a_fallback(caplog):
    """The judge on the real local backend: each inserted ad gets exactly one Click, from validated JSON
    or, when the 135M model's output fails validation after the retries, from the logged fallback."""
    from adspace.experiments.llm_auction.environment import chat_fn
    from adspace.models.llm import get_local_llm

    r = parse_reply(insert_markup(NATIVE, Q.candidates[0]) + " Or " + Q.candidates[3].markup(), Q.candidates)
    judge = LLMJudgeUser(chat_fn(get_local_llm(), seed=0), max_new_tokens=40, max_retries=0, fallback=ClickModel())
    with caplog.at_level(logging.WARNING):
        (out,) = judge.feedback([(Q, r)])
    assert [c.ad_id for c in out] == ["Ad-0001", "Ad-0004"]
    assert all(isinstance(c.clicked, bool) for c in out)
    assert judge.calls == 1
    if judge.fallbacks:
        assert "invalid output for Q-1" in caplog.text
        assert out == ClickModel().feedback([(Q, r)])[0]
