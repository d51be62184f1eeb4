"""The helpers every command shares (:mod:`adspace.cli.console`), and the app's explicit command list."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from adspace.cli import COMMANDS, app, experiment_app
from adspace.cli.console import config_from, fail, money, option_message


@dataclass(frozen=True)
class Config:
    n_queries: int = 5
    data: str | None = None
    tau: float = 1.0

    def __post_init__(self) -> None:
        if self.n_queries < 1:
            raise ValueError(f"n_queries: must be >= 1, got {self.n_queries}")


def test_money_formats_like_the_tables():
    assert money(1.5, "USD") == "$1.5000"
    assert money(1.5, "EUR") == "1.5000 EUR"
    assert money(2e-6, "USD") == "$2.00e-06"
    assert money(0.0, "USD") == "$0.0000"
    assert money(0.25) == "0.2500"


def test_config_from_sets_the_named_fields_and_keeps_the_rest():
    assert config_from(Config) == Config()
    assert config_from(Config, n_queries=None, data=Path("webis")) == Config(data="webis")
    assert config_from(Config(tau=2.0), n_queries=7) == Config(n_queries=7, tau=2.0)
    with pytest.raises(TypeError, match="Config has no field colour, queries"):
        config_from(Config, queries=3, colour="red")
    with pytest.raises(ValueError, match="n_queries: must be >= 1"):
        config_from(Config, n_queries=0)


def test_option_message_names_the_option_of_the_field():
    probe = typer.Typer()

    @probe.command()
    def run(ctx: typer.Context, n_queries: int = typer.Option(5, "--queries")) -> None:
        try:
            config_from(Config, n_queries=n_queries)
        except ValueError as exc:
            raise fail(option_message(exc, ctx)) from None
        typer.echo(option_message("tau: unchanged, no such option", ctx))

    bad = CliRunner().invoke(probe, ["--queries", "0"])
    assert bad.exit_code == 1 and bad.stderr == "error: --queries: must be >= 1, got 0\n"
    ok = CliRunner().invoke(probe, [])
    assert ok.exit_code == 0 and ok.stdout == "tau: unchanged, no such option\n"


def test_every_command_is_listed_once_and_no_command_module_imports_the_app():
    names = [(group is experiment_app, name) for group, name, _ in COMMANDS]
    assert len(set(names)) == len(names) == 9
    assert {g.name for g in app.registered_groups} == {"experiment"}
    for path in (Path(__file__).resolve().parents[2] / "src" / "adspace" / "cli").glob("cmd_*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        assert "adspace.cli" not in imported, path.name
