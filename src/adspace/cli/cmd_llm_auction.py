"""``adspace experiment llm-auction``: IRPO training and the comparison with the other mechanisms.

Heavy imports (torch, transformers, trl) happen inside the command.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console

from adspace.cli.console import config_from, models_offline

if TYPE_CHECKING:  # pragma: no cover
    from adspace.experiments.comparison.llm_auction_experiment import ExperimentConfig

__all__ = ["llm_auction"]


def llm_auction(
    out: Path = typer.Option(
        Path("results/llm_auction"), "--out", help="Folder for results.json, the PNG and checkpoints."
    ),
    data: Path | None = typer.Option(
        None,
        "--data",
        help="The Webis ads data set's folder (default: $ADSPACE_WEBIS_DATA; without either, the shipped demo market).",
    ),
    full: bool = typer.Option(
        False,
        "--full",
        help="The GPU config: 256 training and 100 held-out queries, 3 epochs "
        "(device cuda unless --device says otherwise).",
    ),
    n_train: int | None = typer.Option(None, "--n-train", help="Training queries."),
    n_test: int | None = typer.Option(None, "--n-test", help="Held-out queries."),
    epochs: int | None = typer.Option(None, "--epochs", help="IRPO epochs."),
    samples: int | None = typer.Option(None, "--samples", help="Replies per training query (M)."),
    max_new_tokens: int | None = typer.Option(None, "--max-new-tokens", help="Reply length cap in tokens."),
    sweep_samples: int | None = typer.Option(None, "--sweep-samples", help="Replies per bid in the bid sweep."),
    oracle: bool = typer.Option(True, "--oracle/--no-oracle", help="Also train the Oracle variant."),
    warm: bool = typer.Option(
        False,
        "--warm-start/--no-warm-start",
        help="Before IRPO, a supervised warm start of the ad-writer on ad-integrated replies (off by default).",
    ),
    seed: int = typer.Option(0, "--seed"),
    device: str | None = typer.Option(
        None,
        "--device",
        help="Torch device for sampling, scoring, pCTR and DPO: cpu or cuda[:N] (default: cuda with --full, else cpu).",
    ),
) -> None:
    """Train LLM-Auction by IRPO, then compare it on held-out queries with the pre-trained LLM, MOSAIC and
    the embedding VCG (separate ad slot): revenue, reward, ITCTR, ads per reply, format errors, bid sweep."""
    models_offline()
    if data is not None and not data.is_dir():
        raise typer.BadParameter(f"no such folder: {data}", param_hint="--data")
    cfg = _config(
        full=full,
        device=device or ("cuda" if full else "cpu"),
        warm=warm,
        data=data,
        n_train=n_train,
        n_test=n_test,
        sweep_samples=sweep_samples,
        oracle=oracle,
        seed=seed,
        epochs=epochs,
        samples=samples,
        max_new_tokens=max_new_tokens,
    )
    console = Console()
    res = _run(cfg, out, console)
    _print(res, cfg, out, console)


def _config(*, full: bool, device: str, warm: bool, epochs, samples, max_new_tokens, **flags) -> ExperimentConfig:
    """The default or the ``--full`` config with the options given; ``epochs``, ``samples``,
    ``max_new_tokens`` and ``device`` are IRPO's, ``warm`` turns the supervised warm start on or off."""
    from dataclasses import replace

    from adspace.experiments.comparison.llm_auction_experiment import ExperimentConfig
    from adspace.experiments.llm_auction.warmstart import WarmStartConfig

    try:
        base = ExperimentConfig.full(device=device) if full else ExperimentConfig()
        irpo = config_from(base.irpo, device=device, epochs=epochs, samples=samples, max_new_tokens=max_new_tokens)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--device") from None
    cfg = config_from(base, irpo=irpo, **flags)
    return replace(cfg, warm=(cfg.warm or WarmStartConfig()) if warm else None)


def _run(cfg: ExperimentConfig, out: Path, console: Console) -> dict:
    """The experiment, its phase on a spinner (and, in a log file, one timed line per phase)."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from adspace.experiments.comparison.llm_auction_experiment import run_experiment

    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console) as prog:
        task = prog.add_task("llm-auction", total=None)

        def say(s: str) -> None:
            prog.update(task, description=s)
            if not console.is_terminal:  # a log file gets one timed line per phase
                console.log(s)

        return run_experiment(cfg, out, progress=say)


def _cell(m: dict, key: str, fmt: str) -> str:
    """``mean [lo, hi]`` of a method's metric (``n/a`` where it has none)."""
    lo, hi = m["ci95"][key]
    if m[key] is None:
        return "n/a"
    if lo is None or hi is None:
        return f"{m[key]:{fmt}}"
    return f"{m[key]:{fmt}} [{lo:{fmt}}, {hi:{fmt}}]"


def _print(res: dict, cfg: ExperimentConfig, out: Path, console: Console) -> None:
    """The methods' table beside the paper's Table 2, the ad-writer's figures, the bid sweep's tests."""
    from rich.table import Table

    table = Table(
        title=f"LLM-Auction on {cfg.n_test} held-out queries x {cfg.eval_samples} replies ({res['model']}), "
        "mean [bootstrap 95% interval]; money in currency units per query, expected over clicks "
        "(sampled: the click model's draw)"
    )
    for col in (
        "method",
        "revenue/query",
        "reward/query",
        "sampled revenue/query",
        "ITCTR (expected clicks / ad)",
        "ads/reply",
        "format-error rate",
        "paper revenue",
        "paper reward",
    ):
        table.add_column(col)
    for name, m in res["methods"].items():
        p = res["paper_table2"].get(name, {})
        table.add_row(
            name,
            _cell(m, "revenue_per_query", ".2f"),
            _cell(m, "reward_per_query", ".2f"),
            _cell(m, "sampled_revenue_per_query", ".2f"),
            _cell(m, "itctr", ".3f"),
            _cell(m, "ads_per_reply", ".2f"),
            _cell(m, "format_error_rate", ".2f"),
            str(p.get("revenue", "")),
            str(p.get("reward", "")),
        )
    console.print(table)
    _print_ad_writer(res.get("ad_writer", {}), console)
    for name, sw in res.get("bid_sweep", {}).items():
        e, c = sw["exposure_test"], sw["click_test"]
        console.print(
            f"bid sweep, {name}: does the swept ad's exposure rise with its bid? slope {e['slope']:.2e} per "
            f"currency unit, one-sided permutation p = {e['p_increasing']:.3f} ({e['n']} replies); its clicks: "
            f"p = {c['p_increasing']:.3f}"
        )
    console.print(json.dumps(res["comparison"], indent=1))
    console.print(f"results: {out / 'results.json'}  figure: {out / 'llm_auction.png'}  ({res['total_s']:.0f} s)")


def _print_ad_writer(w: dict, console: Console) -> None:
    """The ad-writer's insertion and format-error rates: prompt alone vs constrained, before vs after the warm start."""
    if "prompt_only" in w:
        a, c = w["prompt_only"], w["constrained"]
        console.print(
            f"pre-trained ad-writer ({a['replies']} held-out replies): insertion rate {a['insertion_rate']:.2f}, "
            f"format-error rate {a['format_error_rate']:.2f} with the prompt alone; {c['insertion_rate']:.2f} and "
            f"{c['format_error_rate']:.2f} with constrained decoding"
        )
    if "before" in w:
        console.print(
            f"supervised warm start ({w['examples']} replies, {w['steps']} steps): insertion rate "
            f"{w['before']['insertion_rate']:.2f} -> {w['after']['insertion_rate']:.2f}, format-error rate "
            f"{w['before']['format_error_rate']:.2f} -> {w['after']['format_error_rate']:.2f} "
            f"({w['after']['replies']} held-out replies, unconstrained)"
        )
