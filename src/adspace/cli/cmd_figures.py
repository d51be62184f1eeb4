"""``adspace figures``: Figures 1-3 of Kim (2026) as PNG files, computed by adspace's own kernel."""

from __future__ import annotations

from pathlib import Path

import typer


def figures(
    out: Path = typer.Option(Path("out/figures"), "--out", help="Folder for the PNG files (created if missing)."),
) -> None:
    """Write Figures 1-3 of Kim, "Formally Verified VCG Mechanisms for Advertising in Embedding Spaces" (2026) as PNG files: envelope of parabolas, paraboloid lift, shrinking σ."""
    from adspace.experiments.vcg_figures import write_figures

    paths = write_figures(out)
    for key, path in paths.items():
        typer.echo(f"{key}: {path}")
