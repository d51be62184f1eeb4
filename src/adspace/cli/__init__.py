"""The ``adspace`` command: one sub-command per job.

Each area registers its commands from its own module (imported at the bottom of this file), and keeps
heavy imports (torch, the models, the web stack) inside the command functions so ``adspace --help``
stays fast.
"""

from __future__ import annotations

import typer

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


# Command modules register themselves on `app` / `experiment_app` when imported.
from adspace.cli import cmd_compare as _compare_commands  # noqa: E402,F401
from adspace.cli import cmd_figures as _figures_commands  # noqa: E402,F401
from adspace.cli import cmd_llm_auction as _llm_auction_commands  # noqa: E402,F401
from adspace.cli import cmd_market as commands_market  # noqa: E402,F401
from adspace.cli import cmd_mosaic as _mosaic_commands  # noqa: E402,F401
from adspace.cli import cmd_reach as _reach_commands  # noqa: E402,F401
from adspace.cli import cmd_replay as _replay_commands  # noqa: E402,F401
from adspace.cli import cmd_serve as _exchange_commands  # noqa: E402,F401

if __name__ == "__main__":  # pragma: no cover
    app()
