"""``python -m adspace.exchange`` = ``adspace serve``."""

from adspace.exchange.commands import serve

if __name__ == "__main__":  # pragma: no cover
    import typer

    typer.run(serve)
