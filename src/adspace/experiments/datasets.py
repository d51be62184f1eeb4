"""Where the experiments find the Webis ads data set: one lookup for every experiment and command.

The Webis ads data set (advertisers, their qualities, and people's relevance judgments of query-ad
pairs) does not ship with adspace. :func:`webis_data` finds its folder: the one given (``--data DIR``),
else the one named by the environment variable ``ADSPACE_WEBIS_DATA``, else none. Without it the MOSAIC
study and the LLM-Auction experiment run on the shipped demo market; the comparison, which needs the
relevance judgments, says where to get it (:func:`require_webis_data`).

>>> import tempfile
>>> with tempfile.TemporaryDirectory() as d:
...     webis_data(d) == Path(d)
True
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator
from pathlib import Path

__all__ = ["WEBIS_ENV", "WHERE_TO_GET_IT", "require_webis_data", "webis_data", "webis_rows", "webis_topics"]

#: the environment variable naming the data set's folder when ``--data`` is not given
WEBIS_ENV = "ADSPACE_WEBIS_DATA"
#: how to point the experiments at the data set, for messages
WHERE_TO_GET_IT = f"pass --data DIR or set {WEBIS_ENV}"


def webis_data(data: str | os.PathLike[str] | None = None) -> Path | None:
    """The data set's folder: ``data`` if given, else ``$ADSPACE_WEBIS_DATA`` if set, else ``None``.

    Raises ``ValueError`` naming ``data`` (or the variable) when the folder it names does not exist.
    """
    if data is not None and str(data) != "":
        root = Path(data)
        if not root.is_dir():
            raise ValueError(f"data: no such folder: {root}")
        return root
    env = os.environ.get(WEBIS_ENV, "")
    if env:
        root = Path(env)
        if not root.is_dir():
            raise ValueError(f"{WEBIS_ENV}: no such folder: {root}")
        return root
    return None


def require_webis_data(data: str | os.PathLike[str] | None = None, *, needed_for: str) -> Path:
    """The folder :func:`webis_data` finds, holding ``advertisements/``; else ``ValueError`` (naming
    ``data``) that says what the data set is ``needed_for`` and how to point the experiments at it."""
    root = webis_data(data)
    if root is None:
        raise ValueError(f"data: the Webis ads data set is needed for {needed_for}; {WHERE_TO_GET_IT}")
    if not (root / "advertisements").is_dir():
        raise ValueError(
            f"data: the Webis ads data set (advertisements/*.csv) is needed for {needed_for}; "
            f"none at {root} ({WHERE_TO_GET_IT})"
        )
    return root


def webis_topics(root: Path) -> list[str]:
    """The data set's topics, in alphabetical order: one per ``advertisements/<topic>_qualities.csv``."""
    files = sorted((root / "advertisements").glob("*_qualities.csv"))
    if not files:
        raise ValueError(f"data: no advertisements/*_qualities.csv under {root}")
    return [f.name[: -len("_qualities.csv")] for f in files]


def webis_rows(root: Path, topic: str, table: str) -> Iterator[dict[str, str]]:
    """The rows of one topic's table: ``"qualities"`` (advertisement, type, qualities) or ``"query_pairs"``
    (query, advertisement: the judged-relevant pairs); nothing when the topic has no such file."""
    path = root / "advertisements" / f"{topic}_{table}.csv"
    if not path.exists():
        return
    with path.open(encoding="utf-8", newline="") as fh:
        yield from csv.DictReader(fh)
