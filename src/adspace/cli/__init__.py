"""The ``adspace`` command: the app, and the explicit list of the commands it registers.

Each command is a plain function in a module of its own (``cmd_*.py``), with its options declared by
typer; none of them imports this package, so the list below is the one place that says which commands
exist and in which order ``adspace --help`` shows them. What they share (the error exit, money as
text, flags to a config dataclass) is :mod:`adspace.cli.console`. Heavy imports (torch, the models, the
web stack) stay inside the command functions, so ``adspace --help`` stays fast.
"""

from __future__ import annotations

import typer

from adspace.cli import (
    cmd_compare,
    cmd_figures,
    cmd_llm_auction,
    cmd_market,
    cmd_mosaic,
    cmd_reach,
    cmd_replay,
    cmd_serve,
)

__all__ = ["app", "experiment_app"]

app = typer.Typer(
    name="adspace",
    help="adspace: auctions for advertising inside LLM conversations, with guarantees checked in code.",
    no_args_is_help=True,
    add_completion=False,
)
experiment_app = typer.Typer(help="Run the research experiments (JSON results and PNG figures).", no_args_is_help=True)
app.add_typer(experiment_app, name="experiment")


@app.callback()
def _main() -> None:
    """adspace: auctions for advertising inside LLM conversations."""


# (group, command name, function), in the order --help lists them.
COMMANDS = (
    (app, "figures", cmd_figures.figures),
    (app, "demo", cmd_market.demo),
    (app, "clear", cmd_market.clear_command),
    (app, "reach", cmd_reach.reach),
    (app, "replay", cmd_replay.replay_command),
    (app, "serve", cmd_serve.serve),
    (experiment_app, "compare", cmd_compare.compare_command),
    (experiment_app, "llm-auction", cmd_llm_auction.llm_auction),
    (experiment_app, "mosaic", cmd_mosaic.mosaic_experiment),
)
for _group, _name, _command in COMMANDS:
    _group.command(_name)(_command)

if __name__ == "__main__":  # pragma: no cover
    app()
