"""The strict parser of ``@Ad Title@[Ad-ID]`` (adspace.experiments.llm_auction.format)."""

from __future__ import annotations

import string

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adspace.experiments.llm_auction.format import (
    ERROR_KINDS,
    Ad,
    check_candidates,
    insert_markup,
    parse_reply,
    strip_markup,
)

ADS = (
    Ad("Ad-0001", "Trail Runner 5", "Cushioned trail shoe"),
    Ad("Ad-0002", "City Bank Card", "Cash-back credit card"),
    Ad("Ad-0003", "Soup & Co. Kit", "Soup ingredients delivered"),
)


def kinds(text: str, ads=ADS) -> list[str]:
    return [e.kind for e in parse_reply(text, ads).errors]


def test_no_ads_no_errors():
    r = parse_reply("Run three times a week and rest on Sundays.", ADS)
    assert r.n_ads == 0 and r.n_errors == 0
    assert r.shown().tolist() == [False, False, False]
    assert r.s_resp() == 0.0


def test_empty_reply():
    r = parse_reply("", ADS)
    assert (r.n_ads, r.n_errors) == (0, 0)


def test_valid_insertions_in_order_of_appearance():
    text = "Pay with @City Bank Card@[Ad-0002]. For the trail: @Trail Runner 5@[Ad-0001]!"
    r = parse_reply(text, ADS)
    assert r.ad_ids == ("Ad-0002", "Ad-0001")
    assert r.indices == (1, 0)
    assert r.errors == ()
    assert r.shown().tolist() == [True, True, False]
    ins = r.insertions[0]
    assert text[ins.start : ins.end] == "@City Bank Card@[Ad-0002]"
    assert strip_markup(r) == "Pay with City Bank Card. For the trail: Trail Runner 5!"


def test_adjacent_insertions_without_space():
    r = parse_reply("@Trail Runner 5@[Ad-0001]@City Bank Card@[Ad-0002]", ADS)
    assert r.ad_ids == ("Ad-0001", "Ad-0002") and r.errors == ()


def test_unknown_id_is_flagged_and_not_shown():
    r = parse_reply("Try @Trail Runner 5@[Ad-9999] now.", ADS)
    assert r.n_ads == 0
    assert [e.kind for e in r.errors] == ["unknown_id"]
    assert "Ad-0001" in r.errors[0].detail  # the title belongs to a real candidate: the detail says which
    assert r.errors[0].text == "@Trail Runner 5@[Ad-9999]"


@pytest.mark.parametrize(
    "title",
    [
        "Trail Runner",  # truncated
        "trail runner 5",  # re-cased
        "Trail Runner 5 shoes",  # extended
        " Trail Runner 5",  # padded: matching is exact
        "City Bank Card",  # another candidate's title with this id
    ],
)
def test_altered_title_is_flagged(title):
    r = parse_reply(f"Try @{title}@[Ad-0001].", ADS)
    assert r.n_ads == 0
    assert kinds(f"Try @{title}@[Ad-0001].") == ["title_mismatch"]


def test_title_containing_at_is_recognised_when_copied_exactly():
    ads = ADS + (Ad("Ad-0004", "Deals @Home"),)
    r = parse_reply("Shop @Deals @Home@[Ad-0004] today.", ads)
    assert r.ad_ids == ("Ad-0004",) and r.errors == ()


def test_nested_at_is_flagged_once_and_the_inner_title_is_checked():
    # an '@' opening a title inside another insertion: the inner title is the one checked
    r = parse_reply("Get @Best @Trail Runner 5@[Ad-0001] shoes.", ADS)
    assert r.ad_ids == ("Ad-0001",)
    assert [e.kind for e in r.errors] == ["nested_at"]
    # nested markup whose outer part is an altered title
    r = parse_reply("Get @Trail @Runner 5@[Ad-0001] shoes.", ADS)
    assert r.n_ads == 0
    assert sorted(e.kind for e in r.errors) == ["nested_at", "title_mismatch"]


def test_nested_insertion_inside_a_title():
    r = parse_reply("@Trail @City Bank Card@[Ad-0002] Runner 5@[Ad-0001]", ADS)
    # the second marker has no opening '@' left after the first insertion
    assert r.ad_ids == ("Ad-0002",)
    assert sorted(e.kind for e in r.errors) == ["missing_title", "nested_at"]


def test_empty_and_missing_title():
    assert kinds("Try @@[Ad-0001].") == ["empty_title"]
    assert kinds("Try this @[Ad-0001].") == ["missing_title"]
    assert kinds("Try this\n@Trail Runner 5\n@[Ad-0001].") == ["stray_at", "missing_title"]


def test_duplicates_counted_once_and_flagged():
    text = "@Trail Runner 5@[Ad-0001] is great; again, @Trail Runner 5@[Ad-0001]."
    r = parse_reply(text, ADS)
    assert r.ad_ids == ("Ad-0001",)
    assert [e.kind for e in r.errors] == ["duplicate"]
    assert r.shown().sum() == 1


def test_stray_unclosed_and_bare_ids_count_one_error_each():
    assert kinds("Try @Trail Runner 5 on rocky paths.") == ["stray_at"]
    assert kinds("Try @Trail Runner 5@[Ad-0001 on rocky paths.") == ["unclosed_id"]
    assert kinds("Try Trail Runner 5 [Ad-0001].") == ["bare_id"]
    assert kinds("Try @Trail Runner 5@ [Ad-0001].") == ["bare_id"]
    assert kinds("Try @Trail Runner 5@(Ad-0001).") == ["stray_at"]
    assert kinds("See [Ad-7777].") == ["bare_id"]


def test_ordinary_text_is_not_an_error():
    text = "Write to help@example.com; arrays like a[0] and [1, 2] are fine, so is [see above]."
    assert kinds(text) == []


def test_errors_do_not_hide_valid_ads():
    text = "@City Card@[Ad-0002], @Trail Runner 5@[Ad-0001] and @Soup & Co. Kit@[Ad-0003] or @Oops@[Ad-12]"
    r = parse_reply(text, ADS)
    assert r.ad_ids == ("Ad-0001", "Ad-0003")
    assert [e.kind for e in r.errors] == ["title_mismatch", "unknown_id"]
    assert r.s_resp(ad_cost=10, error_cost=100) == 2 * 10 + 2 * 100


def test_bad_candidates_name_the_field():
    with pytest.raises(ValueError, match=r"candidates\[1\]\.ad_id: duplicate"):
        check_candidates([Ad("Ad-1", "A"), Ad("Ad-1", "B")])
    with pytest.raises(ValueError, match=r"candidates\[0\]\.title"):
        check_candidates([Ad("Ad-1", "")])
    with pytest.raises(ValueError, match=r"candidates\[0\]\.ad_id"):
        check_candidates([Ad("Ad 1", "A")])
    with pytest.raises(ValueError, match=r"candidates\[0\]\.title: missing"):
        check_candidates([{"ad_id": "Ad-1"}])
    with pytest.raises(ValueError, match="text: must be a string"):
        parse_reply(None, ADS)  # type: ignore[arg-type]


def test_candidates_as_mappings_and_pairs():
    r = parse_reply("@A@[Ad-1] @B@[Ad-2]", [{"ad_id": "Ad-1", "title": "A"}, ("Ad-2", "B")])
    assert r.ad_ids == ("Ad-1", "Ad-2")


# --------------------------------------------------------------------------------------------------
# Properties: exactly the inserted ads come back, whatever the surrounding text
# --------------------------------------------------------------------------------------------------

_plain = st.text(alphabet=string.ascii_letters + string.digits + " .,;:!?-'\n", max_size=40)


@settings(max_examples=200, deadline=None)
@given(
    pieces=st.lists(_plain, min_size=1, max_size=6),
    choice=st.lists(st.integers(0, len(ADS) - 1), max_size=5, unique=True),
)
def test_property_valid_markup_round_trips(pieces, choice):
    parts = []
    for k, piece in enumerate(pieces):
        parts.append(piece)
        if k < len(choice):
            parts.append(ADS[choice[k]].markup())
    text = " ".join(parts)
    used = [ADS[c].ad_id for c in choice[: len(pieces)]]
    r = parse_reply(text, ADS)
    assert r.ad_ids == tuple(used)
    assert r.errors == ()
    assert r.s_resp(ad_cost=1, error_cost=0) == len(used)


@settings(max_examples=200, deadline=None)
@given(text=st.text(alphabet=string.ascii_letters + " @[]-\n0123456789", max_size=80))
def test_property_parser_total_and_consistent(text):
    r = parse_reply(text, ADS)
    assert all(e.kind in ERROR_KINDS for e in r.errors)
    assert len(set(r.ad_ids)) == r.n_ads
    for ins in r.insertions:
        assert text[ins.start : ins.end] == ADS[ins.index].markup()
    assert np.array_equal(np.flatnonzero(r.shown()), np.sort(r.indices))
    # every title-opening '@' (not right after a letter or digit) is accounted for by an insertion or an error
    for j, ch in enumerate(text):
        if ch == "@" and (j == 0 or not text[j - 1].isalnum()):
            assert any(i.start <= j < i.end for i in r.insertions) or any(e.start <= j < e.end for e in r.errors)


def test_insert_markup_helper():
    s = insert_markup("Good shoes help.", ADS[0])
    assert s == "Good shoes help @Trail Runner 5@[Ad-0001]."
    assert parse_reply(s, ADS).ad_ids == ("Ad-0001",)
