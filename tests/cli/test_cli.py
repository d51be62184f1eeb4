"""``adspace demo`` and ``adspace clear`` end to end (real embedder, loaded once per test process)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from adspace.cli import app
from adspace.marketfiles import demo_conversations, load_demo_market, load_market
from adspace.mechanisms.vcg import clear
from adspace.models.embedder import get_embedder

WIDE = {"COLUMNS": "220", "NO_COLOR": "1"}


@pytest.fixture(scope="module")
def runner() -> CliRunner:
    return CliRunner(env=WIDE)


@pytest.fixture(scope="module")
def embedder():
    return get_embedder()  # the process-wide model, shared with the commands run in-process


@pytest.fixture(scope="module")
def demo_json(runner, embedder):
    result = runner.invoke(app, ["demo", "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_help_lists_commands(runner):
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "demo" in result.stdout and "clear" in result.stdout


def test_demo_matches_direct_clear(demo_json, embedder):
    convs = demo_conversations()
    market = load_demo_market(embedder=embedder)
    x = embedder.embed([c.text() for c in convs])
    want = clear(x, market.centers, market.sigmas, market.bids, reserve=market.reserve)
    results = demo_json["results"]
    assert [r["id"] for r in results] == [c.id for c in convs]
    assert [r["query"] for r in results] == [c.text() for c in convs]
    assert demo_json["reserve"] == market.reserve and demo_json["advertisers"] == len(market) == 16
    for r, w, ru, p, s in zip(results, want.winner, want.runner_up, want.payment, want.score, strict=True):
        assert r["winner"] == (market.names[w] if w >= 0 else None)
        assert r["runner_up"] == (market.names[ru] if ru >= 0 else None)
        assert r["price"] == pytest.approx(float(p), rel=1e-12, abs=0)
        assert r["filled"] == (w >= 0)
        if w >= 0:
            assert r["score"] == pytest.approx(float(s), rel=1e-12)
            assert r["price"] <= r["value"]
            assert r["price"] == pytest.approx(max(r["runner_up_value"], demo_json["reserve"]), rel=1e-9)


def test_demo_winners_make_sense(demo_json):
    """Semantic sanity of the shipped market: on-topic conversations go to the obvious advertiser,
    and the off-topic one (chess) is below the reserve."""
    winners = {r["id"]: r["winner"] for r in demo_json["results"]}
    assert winners["marathon-shoes"] == "Stridewell Running Co."
    assert winners["lisbon-weekend"] == "Wayfarer City Breaks"
    assert winners["flat-sourdough"] == "Crumb & Crust Baking Supply"
    assert winners["first-paycheck"] == "Harbor Mutual Bank"
    assert winners["puppy-tummy"] == "Pawsome Pantry"
    assert winners["tokyo-japanese"] == "Lingo Lantern"
    assert winners["cant-sleep"] == "QuietMind"
    assert winners["chess-castling"] is None
    chess = next(r for r in demo_json["results"] if r["id"] == "chess-castling")
    assert chess["price"] == 0 and chess["best_unreserved_value"] < demo_json["reserve"]


def test_demo_table(runner, demo_json):
    result = runner.invoke(app, ["demo"])
    assert result.exit_code == 0, result.output
    out = result.stdout
    for head in ("Conversation", "Winner", "Runner-up", "Price", "Score", "Why:"):
        assert head in out
    for r in demo_json["results"]:
        assert r["id"] in out
        if r["winner"]:
            assert r["winner"] in out
            assert f"${r['price']:.4f}" in out
    assert "(no ad)" in out


def test_demo_reserve_override(runner):
    result = runner.invoke(app, ["demo", "--json", "--reserve", "0"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["reserve"] == 0.0
    assert all(r["filled"] for r in data["results"])  # no reserve: every conversation sells


MARKET_ADS = [
    {
        "name": "Shoe Shop",
        "description": "runners who need new running shoes for marathon training",
        "sigma": 0.5,
        "bid": 2.0,
    },
    {
        "name": "Big Bank",
        "description": "people opening a savings account that earns interest",
        "sigma": 0.5,
        "bid_micros": 3_000_000,
    },
    {"name": "Pizza Place", "description": "hungry people ordering pizza delivery tonight", "sigma": 0.6, "bid": 1.0},
]
QUERIES = ["which running shoes for a marathon", "best savings account interest rate", "order a pepperoni pizza"]


def _write_json_market(path: Path, **top) -> Path:
    path.write_text(json.dumps({"advertisers": MARKET_ADS, **top}), encoding="utf-8")
    return path


def _write_csv_market(path: Path) -> Path:
    lines = ["name,description,sigma,bid"]
    for a in MARKET_ADS:
        bid = a.get("bid", a.get("bid_micros", 0) / 1e6)
        lines.append(f"{a['name']},{a['description']},{a['sigma']},{bid}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _clear_args(path: Path, *extra: str) -> list[str]:
    args = ["clear", "--market", str(path)]
    for q in QUERIES:
        args += ["--query", q]
    return args + list(extra)


@pytest.mark.parametrize("kind", ["json", "csv"])
def test_clear_user_market(runner, embedder, tmp_path, kind):
    path = _write_json_market(tmp_path / "m.json") if kind == "json" else _write_csv_market(tmp_path / "m.csv")
    result = runner.invoke(app, _clear_args(path, "--json", "--reserve", "0.001"))
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [r["query"] for r in data["results"]] == QUERIES
    assert [r["winner"] for r in data["results"]] == ["Shoe Shop", "Big Bank", "Pizza Place"]
    market = load_market(path, embedder=embedder)
    want = clear(embedder.embed(QUERIES), market.centers, market.sigmas, market.bids, reserve=0.001)
    np.testing.assert_allclose([r["price"] for r in data["results"]], want.payment, rtol=1e-12)
    assert [r["runner_up"] for r in data["results"]] == [market.names[i] for i in want.runner_up]

    table = runner.invoke(app, _clear_args(path))
    assert table.exit_code == 0, table.output
    for q, name in zip(QUERIES, ["Shoe Shop", "Big Bank", "Pizza Place"], strict=True):
        assert q in table.stdout and name in table.stdout


def test_clear_uses_market_reserve(runner, tmp_path):
    path = _write_json_market(tmp_path / "m.json", reserve=1000.0)
    result = runner.invoke(app, ["clear", "-m", str(path), "-q", QUERIES[0], "--json"])
    assert result.exit_code == 0, result.output
    (r,) = json.loads(result.stdout)["results"]
    assert not r["filled"] and r["winner"] is None and r["best_unreserved"] == "Shoe Shop"
    table = runner.invoke(app, ["clear", "-m", str(path), "-q", QUERIES[0]])
    assert "(no ad)" in table.stdout and "< reserve $1000.0000: no ad" in table.stdout


@pytest.mark.parametrize(
    ("content", "suffix", "needles"),
    [
        ("name,description,sigma,bid\nA,x,-1,2\n", ".csv", ["line 2 ('A')", "field 'sigma'", "must be > 0"]),
        ("name,description,sigma,bid\nA,x,1,0\n", ".csv", ["line 2 ('A')", "field 'bid'", "must be > 0"]),
        ("name,description,sigma,bid,colour\nA,x,1,2,red\n", ".csv", ["line 1", "unknown column 'colour'"]),
        ("name,description,sigma\nA,x,1\n", ".csv", ["missing column 'bid'"]),
        (
            '{"advertisers": [{"name": "A", "description": "x", "sigma": 1}]}',
            ".json",
            ["advertisers[0] ('A')", "field 'bid'", "missing"],
        ),
        (
            '{"advertisers": [{"name": "A", "description": "x", "sigma": 0, "bid": 1}]}',
            ".json",
            ["field 'sigma'", "must be > 0"],
        ),
        (
            '{"advertisers": [{"name": "A", "about": "x", "sigma": 1, "bid": 1}]}',
            ".json",
            ["field 'about'", "unknown field"],
        ),
        (
            '{"advertisers": [{"name": "A", "embedding": [1, 0], "sigma": 1, "bid": 1}]}',
            ".json",
            ["embeddings have 2 values", "384"],
        ),
        ("name\tsigma\n", ".tsv", ["unknown file type '.tsv'"]),
    ],
)
def test_clear_bad_market_exits_nonzero_naming_the_field(runner, tmp_path, content, suffix, needles):
    path = tmp_path / f"market{suffix}"
    path.write_text(content, encoding="utf-8")
    result = runner.invoke(app, ["clear", "--market", str(path), "--query", "hello"])
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.startswith("error: ")
    for needle in needles:
        assert needle in result.stderr


def test_clear_other_errors(runner, tmp_path):
    missing = runner.invoke(app, ["clear", "--market", str(tmp_path / "nope.json"), "--query", "x"])
    assert missing.exit_code == 1 and "no such file" in missing.stderr
    path = _write_json_market(tmp_path / "m.json")
    empty = runner.invoke(app, ["clear", "--market", str(path), "--query", "  "])
    assert empty.exit_code == 1 and "--query #1: must not be empty" in empty.stderr
    negative = runner.invoke(app, ["clear", "--market", str(path), "--query", "x", "--reserve", "-1"])
    assert negative.exit_code == 2 and "--reserve" in negative.output
    no_query = runner.invoke(app, ["clear", "--market", str(path)])
    assert no_query.exit_code == 2 and "--query" in no_query.output


def test_console_script_reports_errors(tmp_path):
    """The installed ``adspace`` entry point (what ``make run`` calls) validates before loading a model."""
    script = Path(sys.executable).with_name("adspace")
    # The venv's console script; elsewhere, the same entry point through the interpreter.
    cmd = [str(script)] if script.exists() else [sys.executable, "-c", "from adspace.cli import app; app()"]
    bad = tmp_path / "m.csv"
    bad.write_text("name,description,sigma,bid\nShoes,runners,0,2\n", encoding="utf-8")
    proc = subprocess.run(
        [*cmd, "clear", "--market", str(bad), "--query", "hi"], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 1
    assert "line 2 ('Shoes'): field 'sigma': must be > 0" in proc.stderr
    helped = subprocess.run([*cmd, "--help"], capture_output=True, text=True, timeout=120)
    assert helped.returncode == 0 and "demo" in helped.stdout


def test_reach_offline_fit_and_preview_match_the_kernel(runner, embedder, tmp_path):
    from adspace.mechanisms.reach import fit_reach

    cust = tmp_path / "customers.txt"
    cust.write_text("# customers\nwhich trail shoes grip on wet rock?\nmy trail shoes slip on muddy descents\n")
    others = tmp_path / "others.json"
    others.write_text(json.dumps(["how do I file my taxes?", "cheap flights to Lisbon"]))
    market = Path(__file__).resolve().parents[2] / "src" / "adspace" / "data" / "demo_market.json"
    args = ["reach", "--customers", str(cust), "--non-customers", str(others), "--bid", "2", "--market", str(market)]
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    fit = fit_reach(
        embedder.embed(["which trail shoes grip on wet rock?", "my trail shoes slip on muddy descents"]),
        embedder.embed(["how do I file my taxes?", "cheap flights to Lisbon"]),
    )
    assert out["sigma"] == pytest.approx(fit.sigma, rel=1e-12) and out["fit"]["method"] == "likelihood"
    pv = out["preview"]
    assert len(pv["queries"]) == 4 and pv["wins"] == sum(q["won"] for q in pv["queries"])
    m = load_market(market, embedder=embedder)
    x = embedder.embed([q["text"] for q in pv["queries"]])
    direct = clear(
        x,
        np.vstack([m.centers, fit.center]),
        np.append(m.sigmas, fit.sigma),
        np.append(m.bids, 2.0),
    )
    assert [q["won"] for q in pv["queries"]] == (direct.winner == len(m)).tolist()
    table = runner.invoke(app, args)
    assert table.exit_code == 0 and "Proposed σ" in table.stdout and "Preview at bid 2.00" in table.stdout


def test_reach_errors_name_the_option(runner, tmp_path):
    one = tmp_path / "one.txt"
    one.write_text("only one conversation\n")
    for args, needle in (
        (["--customers", str(tmp_path / "missing.txt")], "--customers"),
        (["--customers", str(one)], "--customers: give at least 2"),
        (["--customers", str(one), "--url", "http://127.0.0.1:9"], "--key"),
    ):
        result = runner.invoke(app, ["reach", *args], env={**WIDE, "ADSPACE_API_KEY": ""})
        assert result.exit_code == 1 and needle in result.output, result.output


def test_demo_help_states_the_reserve_the_demo_uses(runner, demo_json):
    result = runner.invoke(app, ["demo", "--help"])
    assert result.exit_code == 0
    assert f"${demo_json['reserve']:g}" in " ".join(result.stdout.split()), result.stdout


def test_serve_workers_on_sqlite_refused_with_a_reason(runner, tmp_path):
    """SQLite has one writer per file: ``serve --workers 2`` on it stops before serving, saying why."""
    db = tmp_path / "one-writer.db"
    out = runner.invoke(app, ["serve", "--workers", "2", "--database-url", f"sqlite:///{db}"])
    assert out.exit_code == 2
    assert "--workers" in out.output and "SQLite" in out.output and "postgresql" in out.output
    assert not db.exists()  # refused before anything was created
