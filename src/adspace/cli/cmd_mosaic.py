"""``adspace experiment mosaic``: the MOSAIC study of Soumalias, Curry and Seuken, "Truthful Aggregation
of LLMs with an Application to Online Advertising" (arXiv 2405.05905), on a real LLM. Heavy imports inside."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console

from adspace.cli.console import config_from, models_offline

if TYPE_CHECKING:  # pragma: no cover
    from adspace.experiments.mosaic.study import MosaicConfig

__all__ = ["mosaic_experiment"]


def mosaic_experiment(
    out: Path = typer.Option(Path("results/mosaic"), "--out", help="Folder for results.json and the PNG figures."),
    data: Path | None = typer.Option(
        None,
        "--data",
        help="The Webis ads data set's folder (default: $ADSPACE_WEBIS_DATA; without either, the shipped demo market).",
    ),
    paper: bool = typer.Option(
        False,
        "--paper",
        help="The paper's scale: 50 queries x 25 seeds, 128 tokens, on a GPU (--device cuda, 25 instances per batch).",
    ),
    n_queries: int | None = typer.Option(None, "--queries", help="Number of queries (default 5; paper 50)."),
    seeds: int | None = typer.Option(None, "--seeds", help="Seeds per query (default 3; paper 25)."),
    ms: str | None = typer.Option(None, "--ms", help="Candidate counts, comma-separated (default 1,2,4,8,16)."),
    max_new_tokens: int | None = typer.Option(None, "--max-new-tokens", help="Reply length cap (default 32)."),
    tau: float | None = typer.Option(None, "--tau", help="KL weight τ (default 1)."),
    device: str | None = typer.Option(None, "--device", help="torch device (cpu, cuda)."),
    threads: int | None = typer.Option(
        None, "--threads", help="torch CPU threads (default 1; the paper config leaves torch's)."
    ),
    batch_instances: int | None = typer.Option(
        None, "--batch", help="Instances generated and scored per batched call (default: 1 on a CPU, 25 on CUDA)."
    ),
    backend_url: str | None = typer.Option(
        None, "--url", help="Use an OpenAI-compatible server (e.g. http://127.0.0.1:8000/v1)."
    ),
    backend_model: str | None = typer.Option(None, "--model", help="Model name on that server."),
) -> None:
    """MOSAIC on SmolLM2-135M-Instruct: baseline vs context-aware, M in {1,2,4,8,16}; JSON and Figures 1-3, EC.1-3."""
    models_offline()
    from adspace.experiments.mosaic.study import MosaicConfig

    if data is not None and not data.is_dir():
        raise typer.BadParameter(f"no such folder: {data}", param_hint="--data")
    try:
        cfg = config_from(
            MosaicConfig.paper() if paper else MosaicConfig,
            n_queries=n_queries,
            seeds=None if seeds is None else tuple(range(seeds)),
            ms=_counts(ms),
            max_new_tokens=max_new_tokens,
            tau=tau,
            device=device,
            threads=threads,
            batch_instances=batch_instances,
            data=data,
            backend_url=backend_url,
            backend_model=backend_model if backend_url is not None else None,
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    _check_device(cfg, device_given=device is not None)
    console = Console()
    res = _run(cfg, out, console)
    _print(res, cfg, out, console)


def _counts(ms: str | None) -> tuple[int, ...] | None:
    """``--ms``: comma-separated candidate counts."""
    if ms is None:
        return None
    try:
        return tuple(int(v) for v in ms.split(",") if v.strip())
    except ValueError:
        raise typer.BadParameter(f"not a comma-separated list of integers: {ms}", param_hint="--ms") from None


def _check_device(cfg: MosaicConfig, *, device_given: bool) -> None:
    """A CUDA device asked for (by ``--device`` or ``--paper``) must be there."""
    if cfg.backend_url is None and cfg.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise typer.BadParameter(
                f"{cfg.device} requested but torch has no CUDA device here; the paper scale is meant for a GPU "
                "(add --device cpu to run it on the CPU instead)",
                param_hint="--device" if device_given else "--paper",
            )


def _run(cfg: MosaicConfig, out: Path, console: Console) -> dict:
    """The study, with a progress bar of instances."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from adspace.experiments.mosaic.study import run_experiment

    with Progress(
        TextColumn("[bold]mosaic"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
    ) as prog:
        task = prog.add_task("loading the model", total=len(cfg.seeds) * cfg.n_queries)
        return run_experiment(
            cfg,
            out,
            progress=lambda done, total, qid: prog.update(task, completed=done, total=total, description=qid[:40]),
        )


def _print(res: dict, cfg: MosaicConfig, out: Path, console: Console) -> None:
    """One row per version and M; then each version's time per auction in its three phases."""
    from rich.table import Table

    table = Table(title=f"MOSAIC on {res['model']} ({res['source']}, {res['n_instances']} instances)")
    for col in ("version", "M", "log π_r + c", "norm. reward", "revenue", "norm. utility", "ρ offset", "ρ no offset"):
        table.add_column(col)
    for meth, s in res["summary"].items():
        for m, row in s["per_m"].items():
            table.add_row(
                meth,
                m,
                f"{row['logprob_pi_r'][0]:.1f}",
                f"{row['total_norm_reward'][0]:.2f}",
                f"{row['revenue'][0]:.2f}",
                f"{row['total_norm_utility'][0]:.2f}",
                f"{row['pearson_reward_utility']:.2f}",
                f"{row['pearson_reward_utility_no_offset']:.2f}",
            )
    console.print(table)
    for meth, s in res["summary"].items():
        t = s["timing_seconds_per_auction"]
        console.print(
            f"{meth}: per auction (M = {max(cfg.ms)}) generation {t['generation']:.2f}s, scoring {t['scoring']:.2f}s, "
            f"mechanism {t['mechanism'] * 1e3:.2f}ms; scoring+mechanism = {t['overhead_over_generation']:.0%} of generation"
        )
        c = s.get("timing_cpu_seconds_per_auction")
        if c:
            console.print(
                f"{meth}: CPU seconds per auction: generation {c['generation']:.2f}, scoring {c['scoring']:.2f}, "
                f"mechanism {c['mechanism'] * 1e3:.2f}ms (wall on a shared machine overstates these)"
            )
    console.print(f"wall {res['wall_seconds']:.0f}s; results and figures in {out}")
