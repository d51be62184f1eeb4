"""The market loader (adspace.marketfiles): parsing, validation messages, building, conversations.

No model is loaded here: descriptions are embedded by a small deterministic stand-in, so these
tests check the loader's logic; the real embedder is tested in tests/models/test_embedder.py and
end to end in tests/cli/test_cli.py.
"""

from __future__ import annotations

import json
import zlib

import numpy as np
import pytest

from adspace.marketfiles import (
    DEFAULT_LAST_N,
    MICROS,
    AdMarket,
    Conversation,
    Creative,
    MarketError,
    build_market,
    conversation_text,
    demo_conversations,
    demo_market_spec,
    load_market,
    parse_conversations,
    parse_market,
    parse_market_csv,
    read_conversations,
    read_market,
)
from adspace.mechanisms.vcg import clear


class FakeEmbedder:
    """Deterministic stand-in: a unit vector per text from a hash-seeded generator; counts calls."""

    model_name = "fake"

    def __init__(self, dim: int = 8):
        self.dim = dim
        self.calls: list[list[str]] = []

    def embed(self, texts):
        texts = list(texts)
        self.calls.append(texts)
        out = np.empty((len(texts), self.dim))
        for i, t in enumerate(texts):
            rng = np.random.default_rng(zlib.crc32(t.encode()))
            v = rng.normal(size=self.dim)
            out[i] = v / np.linalg.norm(v)
        return out


def _ad(**kw):
    base = {"name": "Acme", "description": "people who buy anvils", "sigma": 0.5, "bid": 2.0}
    base.update(kw)
    return {k: v for k, v in base.items() if v is not None}


def _market(*ads, **top):
    return {"advertisers": list(ads), **top}


# -- JSON --------------------------------------------------------------------------------------------


def test_parse_json_full_record():
    spec = parse_market(
        _market(
            _ad(creative={"title": "T", "body": "B", "url": "https://acme.example"}),
            _ad(name="Beta", bid=None, bid_micros=1_500_000, description=None, embedding=[1, 0, 0, 0, 0, 0, 0, 0]),
            currency="EUR",
            reserve_micros=2_500,
        ),
        source="m.json",
    )
    assert spec.currency == "EUR"
    assert spec.reserve == pytest.approx(0.0025)
    a, b = spec.advertisers
    assert (a.name, a.sigma, a.bid, a.description) == ("Acme", 0.5, 2.0, "people who buy anvils")
    assert a.creative == Creative("T", "B", "https://acme.example")
    assert b.bid == 1_500_000 / MICROS and b.embedding == (1.0,) + (0.0,) * 7 and b.description is None
    assert (a.origin, b.origin) == ("advertisers[0]", "advertisers[1]")


def test_parse_json_bare_list_defaults():
    spec = parse_market([_ad()])
    assert spec.currency == "USD" and spec.reserve == 0.0 and len(spec) == 1


@pytest.mark.parametrize(
    ("ad", "field", "problem"),
    [
        (_ad(sigma=0), "sigma", "must be > 0"),
        (_ad(sigma=-1.0), "sigma", "must be > 0"),
        (_ad(sigma="0.5"), "sigma", "must be a number"),
        (_ad(sigma=True), "sigma", "must be a number"),
        (_ad(sigma=float("nan")), "sigma", "finite"),
        (_ad(sigma=None), "sigma", "missing"),
        (_ad(bid=0), "bid", "must be > 0"),
        (_ad(bid=-3), "bid", "must be > 0"),
        (_ad(bid=None), "bid", "missing"),
        (_ad(bid_micros=5), "bid", "not both"),
        (_ad(bid=None, bid_micros=2.5), "bid_micros", "integer"),
        (_ad(bid=None, bid_micros=0), "bid_micros", "must be > 0"),
        (_ad(name=None), "name", "missing"),
        (_ad(name=""), "name", "missing"),
        (_ad(name=7), "name", "must be a string"),
        (_ad(description=None), "description", "missing"),
        (_ad(description=""), "description", "must not be empty"),
        (_ad(embedding=[]), "embedding", "non-empty list"),
        (_ad(embedding=[1.0, "x"]), "embedding[1]", "must be a number"),
        (_ad(colour="red"), "colour", "unknown field"),
        (_ad(creative={"title": "T", "image": "x"}), "creative.image", "unknown field"),
        (_ad(creative={"title": 3}), "creative.title", "must be a string"),
        (_ad(creative="T"), "creative", "must be an object"),
    ],
)
def test_json_errors_name_row_and_field(ad, field, problem):
    good = _ad(name="First")
    with pytest.raises(MarketError) as info:
        parse_market(_market(good, ad), source="m.json")
    msg = str(info.value)
    assert msg.startswith("m.json: advertisers[1]")
    assert f"field {field!r}" in msg
    assert problem in msg


def test_json_error_names_the_advertiser():
    with pytest.raises(MarketError, match=r"advertisers\[0\] \('Acme'\): field 'sigma': must be > 0, got -2"):
        parse_market([_ad(sigma=-2)], source="m.json")


@pytest.mark.parametrize(
    ("obj", "match"),
    [
        ({"advertisers": [_ad()], "extra": 1}, "field 'extra': unknown top-level field"),
        ({"currency": "USD"}, "field 'advertisers': missing"),
        ({"advertisers": {"name": "x"}}, "must be a list"),
        ({"advertisers": [_ad()], "currency": "dollars"}, "field 'currency'"),
        ({"advertisers": [_ad()], "reserve": -1}, "field 'reserve': must be >= 0"),
        ({"advertisers": [_ad()], "reserve": 1, "reserve_micros": 1}, "not both"),
        ({"advertisers": []}, "no advertisers"),
        (
            {"advertisers": [_ad(), _ad()]},
            r"advertisers\[1\] \('Acme'\): field 'name': duplicate name \(also at advertisers\[0\]\)",
        ),
        ({"advertisers": ["Acme"]}, r"advertisers\[0\]: must be an object"),
        (
            {"advertisers": [_ad(embedding=[1.0, 0.0]), _ad(name="B", embedding=[1.0, 0.0, 0.0])]},
            r"advertisers\[1\] \('B'\): field 'embedding': has 3 values but advertisers\[0\]",
        ),
    ],
)
def test_json_market_level_errors(obj, match):
    with pytest.raises(MarketError, match=match):
        parse_market(obj, source="m.json")


# -- CSV ---------------------------------------------------------------------------------------------

CSV_OK = """name,description,sigma,bid,title,url
Shoe Shop,runners who need shoes,0.5,2.0,Shoes!,https://shoes.example
Big Bank,people opening a savings account,0.6,3,,
"Comma, Inc.","people who like ""quotes"", and commas",1e-1,0.25,,
"""


def test_parse_csv():
    spec = parse_market_csv(CSV_OK, source="m.csv")
    assert [a.name for a in spec.advertisers] == ["Shoe Shop", "Big Bank", "Comma, Inc."]
    assert [a.sigma for a in spec.advertisers] == [0.5, 0.6, 0.1]
    assert [a.bid for a in spec.advertisers] == [2.0, 3.0, 0.25]
    assert spec.advertisers[2].description == 'people who like "quotes", and commas'
    assert spec.advertisers[0].creative == Creative(title="Shoes!", body="", url="https://shoes.example")
    assert spec.advertisers[1].creative is None
    assert [a.origin for a in spec.advertisers] == ["line 2", "line 3", "line 4"]


def test_parse_csv_bid_micros_and_embeddings():
    text = "name,sigma,bid_micros,embedding_0,embedding_1,embedding_2\nA,1,2500000,1,0,0\nB,0.5,10,0,1,0\n"
    spec = parse_market_csv(text)
    assert [a.bid for a in spec.advertisers] == [2.5, 1e-5]
    assert spec.advertisers[1].embedding == (0.0, 1.0, 0.0)


def test_parse_csv_mixed_description_and_embedding_rows():
    text = "name,description,sigma,bid,embedding_0,embedding_1\nA,words,1,1,,\nB,,1,1,0.6,0.8\n"
    a, b = parse_market_csv(text).advertisers
    assert a.embedding is None and a.description == "words"
    assert b.embedding == (0.6, 0.8) and b.description is None


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("name,description,sigma,bid\nA,x,0,1\n", r"m.csv: line 2 \('A'\): field 'sigma': must be > 0, got '0'"),
        ("name,description,sigma,bid\nA,x,-1,1\n", r"line 2 \('A'\): field 'sigma': must be > 0"),
        (
            "name,description,sigma,bid\nA,x,1,1\nB,x,abc,1\n",
            r"line 3 \('B'\): field 'sigma': must be a number, got 'abc'",
        ),
        ("name,description,sigma,bid\nA,x,nan,1\n", r"field 'sigma': must be finite"),
        ("name,description,sigma,bid\nA,x,1,-2\n", r"line 2 \('A'\): field 'bid': must be > 0"),
        ("name,description,sigma,bid\nA,x,1,\n", r"field 'bid': missing"),
        ("name,description,sigma,bid_micros\nA,x,1,2.5\n", r"field 'bid_micros': must be an integer"),
        ("name,description,sigma,bid,bid_micros\nA,x,1,2,2000000\n", r"field 'bid': give either"),
        ("name,description,sigma,bid\n,x,1,1\n", r"line 2: field 'name': missing"),
        ("name,description,sigma,bid\nA,,1,1\n", r"line 2 \('A'\): field 'description': missing"),
        ("name,description,sigma,bid\nA,x,1\n", r"line 2 \('A'\): field 'bid': missing \(the row has fewer values"),
        ("name,description,sigma,bid\nA,x,1,1,extra\n", r"line 2 \('A'\): has 5 values but the header has 4"),
        ("name,description,sigma,bid,colour\nA,x,1,1,red\n", r"m.csv: line 1: unknown column 'colour'"),
        ("name,description,bid\nA,x,1\n", r"line 1: missing column 'sigma'"),
        ("name,description,sigma\nA,x,1\n", r"line 1: missing column 'bid'"),
        ("name,sigma,bid\nA,1,1\n", r"line 1: missing column 'description'"),
        ("name,name,sigma,bid\n", r"column 'name' appears twice"),
        ("name,sigma,bid,embedding_0,embedding_2\n", r"embedding_1 is missing"),
        ("name,sigma,bid,embedding_0,embedding_1\nA,1,1,0.5,\n", r"line 2 \('A'\): field 'embedding_1': missing"),
        ("name,sigma,bid,embedding_0\nA,1,1,inf\n", r"field 'embedding_0': must be finite"),
        (
            "name,description,sigma,bid\nA,x,1,1\nA,y,1,1\n",
            r"line 3 \('A'\): field 'name': duplicate name \(also at line 2\)",
        ),
        ("name,description,sigma,bid\n", r"no advertisers"),
        ("", r"empty file"),
    ],
)
def test_csv_errors_name_line_and_field(text, match):
    with pytest.raises(MarketError, match=match):
        parse_market_csv(text, source="m.csv")


# -- files -------------------------------------------------------------------------------------------


def test_read_market_files(tmp_path):
    j = tmp_path / "m.json"
    j.write_text(json.dumps(_market(_ad(), reserve=0.01)), encoding="utf-8")
    c = tmp_path / "m.CSV"
    c.write_text("\ufeff" + CSV_OK, encoding="utf-8")  # a byte-order mark (Excel) is accepted
    assert read_market(j).reserve == 0.01
    assert read_market(c).advertisers[0].name == "Shoe Shop"
    assert read_market(j).source == str(j)


def test_read_market_file_errors(tmp_path):
    with pytest.raises(MarketError, match="no such file"):
        read_market(tmp_path / "missing.json")
    (tmp_path / "m.txt").write_text("x")
    with pytest.raises(MarketError, match=r"unknown file type '.txt'"):
        read_market(tmp_path / "m.txt")
    (tmp_path / "bad.json").write_text('{"advertisers": [}')
    with pytest.raises(MarketError, match=r"bad.json: invalid JSON at line 1"):
        read_market(tmp_path / "bad.json")
    (tmp_path / "latin1.csv").write_bytes("name,description,sigma,bid\nCaf\xe9,x,1,1\n".encode("latin-1"))
    with pytest.raises(MarketError, match="not UTF-8"):
        read_market(tmp_path / "latin1.csv")


# -- building ----------------------------------------------------------------------------------------


def test_build_market_embeds_only_descriptions():
    emb = FakeEmbedder(dim=3)
    spec = parse_market(
        [_ad(name="A"), _ad(name="B", embedding=[0.0, 0.0, 1.0]), _ad(name="C", bid=None, bid_micros=500_000)]
    )
    m = build_market(spec, embedder=emb)
    assert isinstance(m, AdMarket)
    assert m.names == ("A", "B", "C") and m.centers.shape == (3, 3) and m.dim == 3
    assert emb.calls == [["people who buy anvils", "people who buy anvils"]]
    np.testing.assert_array_equal(m.centers[1], [0.0, 0.0, 1.0])
    np.testing.assert_array_equal(m.sigmas, [0.5, 0.5, 0.5])
    np.testing.assert_array_equal(m.bids, [2.0, 2.0, 0.5])
    np.testing.assert_allclose(np.linalg.norm(m.centers, axis=1), 1.0)


def test_build_market_embedding_only_needs_no_embedder():
    spec = parse_market([_ad(name="A", embedding=[1.0, 0.0]), _ad(name="B", embedding=[0.0, 1.0])])
    m = build_market(spec, embedder=None)  # would load the real model if it needed one
    assert m.dim == 2


def test_build_market_dimension_mismatch_with_embedder():
    spec = parse_market([_ad(name="A"), _ad(name="B", embedding=[1.0, 0.0])], source="m.json")
    with pytest.raises(
        MarketError,
        match=r"m.json: advertisers\[1\] \('B'\): field 'embedding': has 2 values but descriptions embed to 3",
    ):
        build_market(spec, embedder=FakeEmbedder(dim=3))


def test_market_clear_is_vcg_clear():
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(5, 4))
    ads = [
        {"name": f"a{i}", "embedding": centers[i].tolist(), "sigma": float(s), "bid": float(b)}
        for i, (s, b) in enumerate(zip(rng.uniform(0.5, 2, 5), rng.uniform(0.5, 3, 5), strict=True))
    ]
    m = build_market(parse_market({"advertisers": ads, "reserve": 0.05}))
    x = rng.normal(size=(20, 4))
    got = m.clear(x)
    want = clear(x, centers, [a["sigma"] for a in ads], [a["bid"] for a in ads], reserve=0.05)
    np.testing.assert_array_equal(got.winner, want.winner)
    np.testing.assert_array_equal(got.payment, want.payment)
    np.testing.assert_array_equal(m.clear(x, reserve=0.0).payment, clear(x, centers, m.sigmas, m.bids).payment)


def test_load_market_csv(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text(CSV_OK, encoding="utf-8")
    m = load_market(path, embedder=FakeEmbedder())
    assert len(m) == 3 and m.currency == "USD" and m.reserve == 0.0


# -- conversations -----------------------------------------------------------------------------------


def _conv(*turns):
    roles = ["user", "assistant"]
    return [{"role": roles[i % 2], "content": t} for i, t in enumerate(turns)]


def test_conversation_text_last_user_turns_most_recent_first():
    msgs = _conv("u1", "a1", "u2", "a2", "u3", "a3", "u4")
    assert conversation_text(msgs) == "u4\nu3\nu2"
    assert DEFAULT_LAST_N == 3
    assert conversation_text(msgs, last_n=1) == "u4"
    assert conversation_text(msgs, last_n=10) == "u4\nu3\nu2\nu1"


def test_conversation_text_skips_assistant_system_and_blank_turns():
    msgs = [
        {"role": "system", "content": "You are helpful."},
        {"role": "user", "content": "  running shoes  "},
        {"role": "assistant", "content": "Try BrandX!"},
        {"role": "user", "content": "   "},
    ]
    assert conversation_text(msgs) == "running shoes"


@pytest.mark.parametrize(
    ("msgs", "kw", "match"),
    [
        ([{"role": "assistant", "content": "hi"}], {}, "no non-empty user turn"),
        ([], {}, "no non-empty user turn"),
        ([{"role": "robot", "content": "hi"}], {}, r"messages\[0\]: field 'role'"),
        ([{"role": "user", "content": 3}], {}, r"messages\[0\]: field 'content': must be a string"),
        ([{"role": "user", "text": "x"}], {}, r"field 'text': unknown field"),
        (["hello"], {}, r"messages\[0\]: must be an object"),
        (_conv("hi"), {"last_n": 0}, "last_n"),
    ],
)
def test_conversation_text_errors(msgs, kw, match):
    with pytest.raises(ValueError, match=match):
        conversation_text(msgs, **kw)


def test_parse_conversations_forms(tmp_path):
    convs = parse_conversations({"conversations": [{"id": "a", "messages": _conv("x")}, {"messages": _conv("y")}]})
    assert [c.id for c in convs] == ["a", "2"]
    assert isinstance(convs[0], Conversation) and convs[0].text() == "x"
    bare = parse_conversations([_conv("p", "q", "r")])
    assert bare[0].id == "1" and bare[0].text() == "r\np"
    path = tmp_path / "c.json"
    path.write_text(json.dumps([_conv("z")]))
    assert read_conversations(path)[0].text() == "z"


@pytest.mark.parametrize(
    ("obj", "match"),
    [
        ([], "non-empty list of conversations"),
        ([{"id": "a", "messages": []}], r"conversations\[0\]: field 'messages'"),
        ([{"id": "a", "messages": _conv("x"), "lang": "en"}], r"field 'lang': unknown field"),
        ([{"id": "a", "messages": [{"role": "assistant", "content": "x"}]}], "no non-empty user turn"),
        ([{"id": "a", "messages": _conv("x")}, {"id": "a", "messages": _conv("y")}], "'a' appears twice"),
        ([{"id": 5, "messages": _conv("x")}], "field 'id'"),
    ],
)
def test_parse_conversations_errors(obj, match):
    with pytest.raises(MarketError, match=match):
        parse_conversations(obj, source="c.json")


# -- the shipped demo --------------------------------------------------------------------------------


def test_demo_market_shipped_and_valid():
    spec = demo_market_spec()
    assert 12 <= len(spec) <= 16
    assert spec.currency == "USD" and 0 < spec.reserve < min(a.bid for a in spec.advertisers)
    for a in spec.advertisers:
        assert a.description and len(a.description) > 40
        assert a.embedding is None
        assert 0 < a.sigma <= 1.0 and 0 < a.bid < 10
        assert a.creative is not None and a.creative.title and a.creative.url.startswith("https://")
        assert ".example" in a.creative.url  # fictional: reserved domain


def test_demo_conversations_shipped_and_valid():
    convs = demo_conversations()
    assert 6 <= len(convs) <= 8
    for c in convs:
        assert c.messages[0].role == "user" and c.messages[-1].role == "user"
        assert c.text().count("\n") == min(DEFAULT_LAST_N, sum(m.role == "user" for m in c.messages)) - 1
