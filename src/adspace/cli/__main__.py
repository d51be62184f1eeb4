"""``python -m adspace.cli`` = ``adspace`` (e.g. ``python -m adspace.cli serve --port 8000``)."""

from adspace.cli import app

if __name__ == "__main__":  # pragma: no cover
    app()
