"""benchmarks/relevance_webis.py: parsing and scoring on a tiny data folder written here (no model,
not the real data)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "relevance_webis.py"


@pytest.fixture(scope="module")
def rw():
    spec = importlib.util.spec_from_file_location("relevance_webis", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def _write(root: Path) -> Path:
    ads, qs = root / "advertisements", root / "queries"
    ads.mkdir(parents=True)
    qs.mkdir()
    (ads / "banking_qualities.csv").write_text(
        "advertisement,type,qualities\n"
        'Chase,brand,"credit cards, mortgage loans"\n'
        "Ally Bank,brand,online savings\n"
        "Nike,brand,shoes\n",
        encoding="utf-8",
    )
    (ads / "food_qualities.csv").write_text(
        "advertisement,type,qualities\nArby\u2019s,brand,roast beef\nNike,brand,sports drinks\nPizza Hut,brand,pizza\n",
        encoding="utf-8",
    )
    (qs / "banking_queries.txt").write_text(
        "chase credit card\nally bank savings rate\n\nbest mortgage\nno pairs here\n"
    )
    (qs / "food_queries.txt").write_text("arby's near me\npizza hut or arby's\nnike drink\n")
    (ads / "banking_query_pairs.csv").write_text(
        "query,advertisement\n"
        "chase credit card,Chase\n"
        "chase credit card,Chase\n"  # duplicate pair
        "ally bank savings rate,Ally Bank\n"
        "best mortgage,Chase\n"
        "best mortgage,Sega\n"  # not an advertiser anywhere
        "unknown query,Chase\n",  # query not in banking_queries.txt
        encoding="utf-8",
    )
    (ads / "food_query_pairs.csv").write_text(
        "query,advertisement\n"
        "arby's near me,Arby's\n"  # straight apostrophe vs the advertiser's curly one
        "pizza hut or arby's,Pizza Hut\n"
        "nike drink,Nike\n"
        "nike drink,Ally Bank\n",  # an advertiser of another topic
        encoding="utf-8",
    )
    return root


def test_normalize_name(rw):
    assert rw.normalize_name("  Arby\u2019s   ROAST ") == "arby's roast"
    assert rw.normalize_name("Ｎｉｋｅ") == "nike"  # NFKC folds full-width letters


def test_load_webis(rw, tmp_path):
    data = rw.load_webis(_write(tmp_path / "webis"))
    assert data.topics == ["banking", "food"]
    assert [a.name for a in data.ads] == ["Chase", "Ally Bank", "Nike", "Arby\u2019s", "Nike", "Pizza Hut"]
    assert data.ads[0].text == "Chase: credit cards, mortgage loans"
    assert data.queries[:4] == [
        ("banking", "chase credit card"),
        ("banking", "ally bank savings rate"),
        ("banking", "best mortgage"),
        ("banking", "no pairs here"),
    ]
    assert len(data.queries) == 7  # the blank line is skipped
    q = {text: i for i, (_, text) in enumerate(data.queries)}
    assert data.judged == {
        q["chase credit card"]: {"chase"},
        q["ally bank savings rate"]: {"ally bank"},
        q["best mortgage"]: {"chase", "sega"},
        q["arby's near me"]: {"arby's"},
        q["pizza hut or arby's"]: {"pizza hut"},
        q["nike drink"]: {"nike", "ally bank"},
    }
    assert data.pairs == 10 and data.duplicate_pairs == 1
    assert data.pairs_unknown_query == [("banking", "unknown query")]
    assert data.pairs_advertiser_not_found == [("banking", "Sega")]
    assert data.pairs_advertiser_other_topic == [("food", "Ally Bank")]
    summary = rw._summary(data)
    assert summary["judged_queries"] == 6 and summary["distinct_advertiser_names"] == 5


def test_load_webis_errors(rw, tmp_path):
    with pytest.raises(FileNotFoundError, match="no \\*_qualities.csv"):
        rw.load_webis(tmp_path)
    root = _write(tmp_path / "w")
    (root / "queries" / "food_queries.txt").unlink()
    with pytest.raises(FileNotFoundError, match="food_queries.txt"):
        rw.load_webis(root)


def test_keyword_matrix_whole_words(rw):
    keys = ["chase", "ally bank", "nike", "arby's", "nike"]
    m = rw.keyword_matrix(["Chase credit card", "purchase a bike", "ALLY BANK rates", "arby\u2019s and nike"], keys)
    assert m.tolist() == [
        [True, False, False, False, False],
        [False, False, False, False, False],  # "purchase" does not contain the word "chase"
        [False, True, False, False, False],
        [False, False, True, True, True],  # both Nike entries match
    ]


def test_evaluate_with_planted_embeddings(rw, tmp_path):
    """Queries planted on a chosen advertiser's center: VCG rates, random and keyword baselines are exact."""
    data = rw.load_webis(_write(tmp_path / "webis"))
    n = len(data.ads)
    ad_emb = np.eye(n)
    # Each query's embedding sits on one advertiser (indices into data.ads).
    target = {
        "chase credit card": 0,  # Chase: relevant
        "ally bank savings rate": 2,  # Nike (banking): not relevant
        "best mortgage": 0,  # Chase: relevant
        "no pairs here": 1,
        "arby's near me": 3,  # Arby's: relevant
        "pizza hut or arby's": 3,  # Arby's: not relevant (Pizza Hut is)
        "nike drink": 1,  # Ally Bank: relevant, but in the other topic
    }
    q_emb = np.stack([ad_emb[target[text]] for _, text in data.queries])
    res = rw.evaluate(data, q_emb, ad_emb)
    all_, own = res["overall"]["all_1000"], res["overall"]["own_topic"]
    assert all_["queries"] == own["queries"] == 6
    assert all_["vcg_winner_relevant"] == pytest.approx(round(4 / 6, 4))
    # Restricted to its own topic, "nike drink" cannot pick Ally Bank; the nearest food advertiser is
    # the first of the equidistant ones (Arby's, lowest index), which is not relevant.
    assert own["vcg_winner_relevant"] == pytest.approx(round(3 / 6, 4))
    # Random: relevant advertisers in the pool / pool size, averaged over the 6 judged queries.
    rand_all = np.mean([1 / 6, 1 / 6, 1 / 6, 1 / 6, 1 / 6, 3 / 6])  # nike drink: Nike twice + Ally Bank
    rand_own = np.mean([1 / 3, 1 / 3, 1 / 3, 1 / 3, 1 / 3, 1 / 3])
    assert all_["random_winner_expected"] == pytest.approx(round(rand_all, 4))
    assert own["random_winner_expected"] == pytest.approx(round(rand_own, 4))
    # Keyword: matches on chase credit card (Chase), ally bank savings rate (Ally Bank), arby's near me,
    # pizza hut or arby's (Arby's and Pizza Hut: a tie, half relevant), nike drink (Nike twice across
    # topics; one in the food topic). No match on "best mortgage".
    kw = all_["keyword"]
    assert kw["coverage"] == pytest.approx(round(5 / 6, 4))
    assert kw["rate_on_covered"] == pytest.approx(round((1 + 1 + 1 + 0.5 + 1) / 5, 4))
    assert kw["rate_no_match_counts_as_miss"] == pytest.approx(round((1 + 1 + 1 + 0.5 + 1) / 6, 4))
    assert kw["rate_random_fallback_on_no_match"] == pytest.approx(round((1 + 1 + 1 + 0.5 + 1 + 1 / 6) / 6, 4))
    assert kw["vcg_rate_on_uncovered"] == 1.0  # best mortgage -> Chase
    assert own["keyword"]["coverage"] == pytest.approx(round(5 / 6, 4))
    assert set(res["per_topic"]) == {"banking", "food"}
    assert res["per_topic"]["banking"]["all_1000"]["queries"] == 3
    assert res["per_topic"]["food"]["own_topic"]["vcg_winner_relevant"] == pytest.approx(round(1 / 3, 4))
    assert res["all_queries"]["queries"] == 7
