"""``adspace serve``: run the ad exchange (registered on the ``adspace`` command by :mod:`adspace.cli`)."""

from __future__ import annotations

import os

import typer


def serve(
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8000, min=1, max=65535, help="Port to listen on."),
    database_url: str | None = typer.Option(
        None,
        help="SQLAlchemy URL; default $ADSPACE_DATABASE_URL or sqlite:///adspace.db. "
        "postgresql://user:pass@host/db uses psycopg 3.",
    ),
    demo: bool = typer.Option(
        False,
        help="Seed an empty database with a demo market and a day of simulated traffic, and print the keys to try it.",
    ),
    demo_auctions: int = typer.Option(
        240, "--demo-auctions", min=0, max=100_000, help="How many simulated auctions --demo spreads over the past day."
    ),
    new_keys: bool = typer.Option(
        False,
        "--new-keys",
        help="Issue and print new API keys for every account (the old ones stop working): for a database whose keys are lost.",
    ),
    workers: int = typer.Option(
        1,
        min=1,
        max=64,
        help="Server processes (PostgreSQL only: they share the database and keep their markets in step; "
        "SQLite has one writer per file, so it runs one process).",
    ),
    access_log: bool = typer.Option(True, "--access-log/--no-access-log", help="Log every request (uvicorn)."),
) -> None:
    """Serve the ad exchange over HTTP (dashboard at /, API docs at /docs and /redoc)."""
    from rich.console import Console

    from adspace.exchange.container import Exchange

    console = Console(soft_wrap=True)  # keys must never be wrapped across lines
    settings = _settings(database_url, host, port)
    if workers > 1 and settings.database_url.startswith("sqlite"):
        console.print(
            "[red]error:[/] --workers: SQLite allows one writer per database file, so the exchange runs one "
            "process on it (its writes are group-committed); use --database-url postgresql://... for "
            f"--workers {workers}"
        )
        raise typer.Exit(2)
    ex = Exchange(settings)
    _prepare(ex, console)
    if demo:
        _seed_demo(ex, console, demo_auctions)
    if new_keys:
        _print_new_keys(ex, console)
    console.print(
        f"Serving on http://{host}:{port}  (dashboard: http://{host}:{port}/, "
        f"API docs: http://{host}:{port}/docs and /redoc, served offline)"
    )
    if workers == 1:
        _run_one(ex, host, port, access_log)
    else:
        ex.close()  # each process builds its own exchange
        console.print(f"{workers} worker processes (PostgreSQL)")
        _run_several(settings, workers, host, port, access_log)


def _settings(database_url: str | None, host: str, port: int):
    """Settings from the environment and the flags (the public URL defaults to the address served)."""
    from adspace.exchange.core.config import Settings

    settings = Settings.from_env().with_overrides(database_url=database_url)
    if not os.environ.get("ADSPACE_PUBLIC_URL"):
        settings = settings.with_overrides(public_url=f"http://{host}:{port}")
    return settings


def _prepare(ex, console) -> None:
    """Migrate the database and make sure an admin exists, once for all the processes; print a new admin key."""
    from adspace.exchange.app import prepare_database

    admin_key = prepare_database(ex)
    console.print(f"[bold]adspace exchange[/] database: {ex.engine.url.render_as_string(hide_password=True)}")
    if admin_key:
        console.print(f"Admin API key (shown once, store it): [bold]{admin_key}[/]")


def _print_keys(console, keys: dict[str, str]) -> None:
    for label, key in keys.items():
        console.print(f"  {label}: [bold]{key}[/]")


def _seed_demo(ex, console, auctions: int) -> None:
    """``--demo``: the demo market and a day of simulated traffic on an empty database, and its keys."""
    from adspace.exchange.demo import seed_demo

    with console.status("Seeding the demo market and a day of simulated traffic…"):
        keys = seed_demo(ex, traffic=auctions)
    if keys:
        console.print("[bold]Demo market seeded[/] with a day of simulated traffic (labelled demo). Keys (shown once):")
        _print_keys(console, keys)
    else:
        console.print(
            "Database already has accounts: demo seeding skipped (keys were printed at first start; "
            "lost them? restart with --new-keys)."
        )


def _print_new_keys(ex, console) -> None:
    """``--new-keys``: new API keys for every account (the old ones stop working)."""
    from adspace.exchange.services.key_rotation import issue_new_keys

    console.print("[bold]New API keys[/] (shown once; the earlier ones no longer work):")
    _print_keys(console, issue_new_keys(ex))


#: uvicorn's options for every way of serving.
_UVICORN = {"log_level": "info", "timeout_graceful_shutdown": 5}


def _run_one(ex, host: str, port: int, access_log: bool) -> None:
    """One process: the app over the exchange prepared above."""
    import uvicorn

    from adspace.exchange.app import create_app
    from adspace.exchange.http.nodelay import NoDelayHTTPProtocol

    app = create_app(ex.settings, exchange=ex, prepare=False)
    uvicorn.run(app, host=host, port=port, workers=1, access_log=access_log, http=NoDelayHTTPProtocol, **_UVICORN)


def _run_several(settings, workers: int, host: str, port: int, access_log: bool) -> None:
    """Several processes (PostgreSQL): each builds its own app from the environment, set here."""
    import uvicorn

    from adspace.exchange.http.nodelay import NoDelayHTTPProtocol

    os.environ["ADSPACE_DATABASE_URL"] = settings.database_url
    os.environ["ADSPACE_PUBLIC_URL"] = settings.public_url
    if not os.environ.get("ADSPACE_CLEAR_THREADS"):  # the cores shared among the processes
        from adspace.exchange.core.config import default_clear_threads

        os.environ["ADSPACE_CLEAR_THREADS"] = str(default_clear_threads(workers))
    uvicorn.run(
        "adspace.exchange.app:create_served_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        access_log=access_log,
        http=NoDelayHTTPProtocol,
        **_UVICORN,
    )
