"""``adspace experiment compare``: the embedding VCG, MOSAIC and LLM-Auction on the same held-out queries.

Heavy imports (torch, transformers) happen inside the command.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from adspace.cli.console import config_from, fail, models_offline, option_message

if TYPE_CHECKING:  # pragma: no cover
    from adspace.experiments.comparison.runner import CompareConfig

__all__ = ["compare_command"]


def compare_command(
    ctx: typer.Context,
    out: Path = typer.Option(
        Path("results/compare"), "--out", help="Folder for compare.json, compare.csv, compare.png."
    ),
    data: Path | None = typer.Option(
        None, "--data", help="The Webis ads data set's folder (default: $ADSPACE_WEBIS_DATA); needed for its judgments."
    ),
    n_queries: int = typer.Option(30, "--queries", help="Held-out queries (each mechanism runs on all of them)."),
    n_train: int | None = typer.Option(
        None,
        "--n-train",
        help="Queries before the held-out ones (default: those the checkpoint's run trained on, warm start "
        "included, read from its results.json; 24 without a checkpoint, the training queries of the "
        "llm-auction command's default).",
    ),
    checkpoint: Path | None = typer.Option(
        None,
        "--llm-auction-checkpoint",
        help="IRPO checkpoint folder of `adspace experiment llm-auction` (its --out, or the irpo_pctr folder "
        "in it); without it the LLM-Auction row is the pre-trained model, labelled so.",
    ),
    mechanisms: str = typer.Option(
        "embedding-vcg,mosaic-baseline,mosaic-context,llm-auction", "--mechanisms", help="Comma-separated subset."
    ),
    mosaic_m: int = typer.Option(4, "--mosaic-m", help="MOSAIC candidates per query."),
    mosaic_tau: float = typer.Option(1.0, "--mosaic-tau", help="MOSAIC's τ, in currency units."),
    max_new_tokens: int = typer.Option(48, "--max-new-tokens", help="Reply length cap in tokens."),
    threads: int = typer.Option(1, "--threads", help="torch CPU threads that decode and score each query."),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """The three mechanisms on the same held-out Webis queries, advertisers, values and seeds: value and
    revenue in one currency under one click model, user experience, relevance by the Webis human judgments,
    compute per query, and the measured gain from shading a bid by 20%, with bootstrap 95% intervals."""
    models_offline()
    from adspace.experiments.comparison.runner import CompareConfig, held_out_queries

    if data is not None and not data.is_dir():
        raise fail(f"--data: no such folder: {data}")
    try:
        n_train = _n_train(checkpoint, n_train, seed)
        cfg = config_from(
            CompareConfig,
            n_queries=n_queries,
            n_train=n_train,
            seed=seed,
            data=data,
            mechanisms=tuple(m.strip() for m in mechanisms.split(",") if m.strip()),
            checkpoint=checkpoint,
            mosaic_m=mosaic_m,
            mosaic_tau=mosaic_tau,
            max_new_tokens=max_new_tokens,
            threads=threads,
        )
        held_out_queries(cfg)  # the data set is there and readable before any model loads
    except ValueError as exc:
        raise fail(option_message(exc, ctx)) from None
    res = _run(cfg, out)
    _print(res, cfg, out)


def _n_train(checkpoint: Path | None, n_train: int | None, seed: int) -> int | None:
    """``--n-train`` checked against the queries the checkpoint's run trained on (and, left out, those)."""
    from adspace.experiments.llm_auction.checkpoint import resolve, run_split

    if checkpoint is None:
        return n_train
    split = run_split(resolve(checkpoint))
    if split is None:
        return n_train
    if split["seed"] != seed or split["n_candidates"] != 3:
        raise ValueError(
            f"--seed: the checkpoint's run drew its queries with --seed={split['seed']} and "
            f"{split['n_candidates']} candidates; its held-out queries need --seed {split['seed']}"
        )
    if n_train is None:
        return split["trained_on"]
    if n_train < split["trained_on"]:
        raise ValueError(
            f"--n-train: the checkpoint's run trained on the first {split['trained_on']} queries "
            f"(warm start included); give --n-train {split['trained_on']} or more (or leave it out) "
            "so that it is compared on queries it has not seen"
        )
    return n_train


def _run(cfg: CompareConfig, out: Path) -> dict:
    """The comparison, with a progress bar of mechanisms on stderr (gone when it ends)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from adspace.experiments.comparison.runner import run_comparison

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("compare", total=len(cfg.mechanisms))
        return run_comparison(
            cfg,
            out,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
            say=lambda s: bar.update(task, description=s),
        )


def _print(res: dict, cfg: CompareConfig, out: Path) -> None:
    """One column per mechanism, one row per metric; then the models, the time and where the files are."""
    from rich.console import Console
    from rich.table import Table

    from adspace.experiments.comparison.report import COLUMNS, fmt

    console = Console() if Console().is_terminal else Console(width=170)  # a pipe or file: no 80-column wrap
    table = Table(title=f"{cfg.n_queries} held-out Webis queries; money in {res['currency']}")
    table.add_column("metric (mean [95% CI])")
    names = list(res["mechanisms"])
    for name in names:
        table.add_column(name, justify="right")
    for key, label in COLUMNS:
        table.add_row(label, *(fmt(res["mechanisms"][n].get(key)) for n in names))
    table.add_row("incentive property", *(res["mechanisms"][n]["incentive"] for n in names))
    console.print(table)
    la = ", ".join(f"{x:.2f}" for x in res["load_average"])
    console.print(
        f"LLM-Auction model: {res['llm_auction_model']}. Models loaded in {res['model_load_seconds']:.1f} s "
        f"(excluded from seconds/query); total {res['total_seconds']:.0f} s on {res['cpus']} CPUs, load average {la}."
    )
    console.print(f"results: {out / 'compare.json'}, {out / 'compare.csv'}, figure: {out / 'compare.png'}")
