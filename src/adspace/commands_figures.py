"""``adspace figures``: seed 000's Figures 1-3 as PNG files, computed by adspace's own kernel."""

from __future__ import annotations

from pathlib import Path

import typer

from adspace.cli import app


@app.command()
def figures(
    out: Path = typer.Option(Path("out/figures"), "--out", help="Folder for the PNG files (created if missing)."),
) -> None:
    """Write seed 000's Figures 1-3 (envelope of parabolas, paraboloid lift, shrinking σ) as PNG files."""
    from adspace.figures import write_figures

    paths = write_figures(out)
    for key, path in paths.items():
        typer.echo(f"{key}: {path}")
