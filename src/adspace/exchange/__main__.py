"""``python -m adspace.exchange`` = ``adspace serve``."""

from adspace.cli.cmd_serve import serve

if __name__ == "__main__":  # pragma: no cover
    import typer

    typer.run(serve)
