"""What every ``adspace`` command shares: one error exit, the model-loading environment, money as
text, and a command's flags turned into its experiment's config dataclass.

Light on purpose (typer and the standard library only): every command module imports it, and
``adspace --help`` imports every command module.

>>> money(1.5, "USD"), money(2e-6, "EUR"), money(0.25)
('$1.5000', '2.00e-06 EUR', '0.2500')
>>> from dataclasses import dataclass
>>> @dataclass
... class Config:
...     n_queries: int = 5
...     data: str | None = None
>>> from pathlib import Path
>>> config_from(Config, n_queries=None, data=Path("webis"))  # None keeps the default; a path becomes text
Config(n_queries=5, data='webis')
>>> config_from(Config(n_queries=7), data=None)
Config(n_queries=7, data=None)
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import PurePath
from typing import Any, TypeVar

import typer

__all__ = ["config_from", "fail", "models_offline", "money", "option_message", "quiet_model_loading"]

C = TypeVar("C")


def fail(error: Exception | str) -> typer.Exit:
    """Print ``error: <message>`` on stderr and return the exit (status 1) to raise: ``raise fail(exc) from None``."""
    typer.echo(f"error: {error}", err=True)
    return typer.Exit(code=1)


def quiet_model_loading() -> None:
    """Keep model-loading progress bars and advisories out of the command's output."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def models_offline() -> None:
    """Load models from the local cache only: nothing is fetched from a model hub."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def money(x: float, currency: str | None = None) -> str:
    """An amount in currency units, to 4 decimals (tiny non-zero amounts in scientific notation):
    ``$`` before US dollars, another currency's code after the number, no unit without ``currency``."""
    num = f"{x:.2e}" if x != 0 and abs(x) < 1e-4 else f"{x:.4f}"
    if currency is None:
        return num
    return f"${num}" if currency == "USD" else f"{num} {currency}"


def config_from(config: type[C] | C, /, **flags: Any) -> C:
    """A config dataclass built from a command's flags, each named after the field it sets.

    ``config`` is the dataclass (its defaults are the starting point) or an instance to start from (a
    preset such as ``MosaicConfig.paper()``). A flag given as ``None`` (the option left out) keeps the
    field as it is; a path becomes its text (configs hold paths as strings, for their JSON record). A
    name that is no field of the config raises ``TypeError``; the config's own checks raise
    ``ValueError`` naming the field (:func:`option_message` names the option instead).
    """
    cls = config if isinstance(config, type) else type(config)
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"config_from: {cls.__name__} is not a dataclass")
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(flags) - names)
    if unknown:
        raise TypeError(f"config_from: {cls.__name__} has no field {', '.join(unknown)}")
    given = {k: str(v) if isinstance(v, PurePath) else v for k, v in flags.items() if v is not None}
    return cls(**given) if isinstance(config, type) else dataclasses.replace(config, **given)


def option_message(error: Exception | str, ctx: typer.Context) -> str:
    """``error``'s message with its leading field name (``n_queries: ...``) replaced by the option of the
    running command whose parameter has that name (``--queries: ...``); other messages unchanged."""
    message = str(error)
    name, sep, rest = message.partition(":")
    if sep:
        for param in ctx.command.params:
            if param.name == name and param.opts:
                long = [o for o in param.opts if o.startswith("--")]
                return f"{(long or param.opts)[0]}:{rest}"
    return message
