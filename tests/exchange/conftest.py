"""Fixtures for the exchange: the real app, served by uvicorn in a child process, over real HTTP.

Every test that takes ``server`` runs twice: on a fresh SQLite file and on a fresh database of the
PostgreSQL server named by ``ADSPACE_TEST_DATABASE_URL`` (which ``.ci/run`` starts). Without that
URL the PostgreSQL half is skipped locally and *fails* in CI (``CI=true``).

Most tests send embeddings directly, so their servers never load the embedding model. Tests that
need text embedding use ``model_server`` (one per backend and worker, model loaded once).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import requests

ADMIN_KEY = "adsk_adm_test_" + "k" * 40
DIM = 384
BACKENDS = ["sqlite", "postgresql"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Api:
    """A tiny HTTP client bound to one key."""

    def __init__(self, base: str, key: str | None):
        self.base, self.key = base, key
        self.s = requests.Session()

    def headers(self, extra=None):
        h = {} if self.key is None else {"Authorization": f"Bearer {self.key}"}
        h.update(extra or {})
        return h

    def request(self, method: str, path: str, **kw) -> requests.Response:
        kw["headers"] = self.headers(kw.get("headers"))
        kw.setdefault("timeout", 60)
        return self.s.request(method, self.base + path, **kw)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, **kw):
        return self.request("POST", path, **kw)

    def patch(self, path, **kw):
        return self.request("PATCH", path, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)

    def ok(self, method: str, path: str, status: int = 200, **kw):
        r = self.request(method, path, **kw)
        assert r.status_code == status, (method, path, r.status_code, r.text[:500])
        return r.json() if r.content and r.headers.get("content-type", "").startswith("application/json") else r


class Server:
    """``python -m adspace.cli serve`` on a free loopback port."""

    def __init__(
        self, database_url: str, env: dict[str, str] | None = None, log_dir: Path | None = None, args: tuple = ()
    ):
        self.database_url = database_url
        self.args = list(args)
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "ADSPACE_ADMIN_KEY": ADMIN_KEY,
            "ADSPACE_PRELOAD_MODEL": "0",
            "ADSPACE_RATE_LIMIT_PER_SECOND": "5000",
            "ADSPACE_RATE_LIMIT_BURST": "5000",
            "ADSPACE_PUBLIC_URL": f"http://127.0.0.1:{self.port}",
            **(env or {}),
        }
        self.log_dir = log_dir
        self.proc: subprocess.Popen | None = None
        self._log = None

    def start(self, timeout: float = 120.0) -> Server:
        log_path = (self.log_dir or Path("/tmp")) / f"adspace-server-{self.port}.log"
        self.log_path = log_path
        self._log = open(log_path, "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "adspace.cli",
                "serve",
                "--port",
                str(self.port),
                "--database-url",
                self.database_url,
                *self.args,
            ],
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}; log: {log_path.read_text()[-3000:]}")
            try:
                if requests.get(self.base + "/healthz", timeout=1).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server did not start; log: {log_path.read_text()[-3000:]}")

    def kill(self) -> None:
        """SIGKILL: no shutdown handlers, no flushing."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()
        if self._log:
            self._log.close()

    def api(self, key: str | None) -> Api:
        return Api(self.base, key)


# -- databases -------------------------------------------------------------------------------------


def _pg_url_or_fail() -> str:
    url = os.environ.get("ADSPACE_TEST_DATABASE_URL")
    if not url:
        msg = "ADSPACE_TEST_DATABASE_URL is not set: the PostgreSQL half of the exchange suite cannot run"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(msg + " (CI must provide it; see .ci/run)")
        pytest.skip(msg)
    return url


class Database:
    """A fresh, empty database for one server: a SQLite file, or a new PostgreSQL database."""

    def __init__(self, backend: str, tmp: Path):
        self.backend = backend
        self._drop = None
        if backend == "sqlite":
            self.url = f"sqlite:///{tmp / ('ex-' + secrets.token_hex(4) + '.db')}"
        else:
            import psycopg
            from sqlalchemy.engine import make_url

            base = make_url(_pg_url_or_fail().replace("postgresql://", "postgresql+psycopg://", 1))
            name = f"adspace_t_{secrets.token_hex(6)}"
            admin = base.set(drivername="postgresql")
            conninfo = admin.render_as_string(hide_password=False)
            with psycopg.connect(conninfo, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{name}"')
            self.url = base.set(database=name).render_as_string(hide_password=False)

            def drop():
                with contextlib.suppress(Exception), psycopg.connect(conninfo, autocommit=True) as conn:
                    conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

            self._drop = drop

    def engine(self):
        from sqlalchemy import create_engine

        return create_engine(self.url)

    def close(self):
        if self._drop:
            self._drop()


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request) -> str:
    if request.param == "postgresql":
        _pg_url_or_fail()
    return request.param


@pytest.fixture(scope="session")
def server_factory(tmp_path_factory):
    """Start extra servers (each on its own fresh database); all are stopped at the end."""
    made: list[tuple[Server, Database]] = []

    def make(backend: str, env: dict[str, str] | None = None, db: Database | None = None, args: tuple = ()) -> Server:
        db = db or Database(backend, tmp_path_factory.mktemp("db"))
        s = Server(db.url, env, tmp_path_factory.getbasetemp(), args).start()
        s.db = db
        made.append((s, db))
        return s

    yield make
    for s, _db in made:
        s.stop()
    for _, db in made:
        db.close()


@pytest.fixture(scope="session")
def server(backend, server_factory) -> Iterator[Server]:
    """The shared server of a backend (embeddings only; the model is never loaded)."""
    yield server_factory(backend)


@pytest.fixture(scope="session")
def model_server(backend, server_factory) -> Server:
    """A server of a backend that embeds text (the model loads once, at start)."""
    s = server_factory(backend, {"ADSPACE_PRELOAD_MODEL": "1"})
    deadline = time.monotonic() + 300
    while not requests.get(s.base + "/healthz", timeout=5).json()["model_loaded"]:
        assert time.monotonic() < deadline, "the embedding model did not load"
        time.sleep(0.2)
    return s


# -- accounts and helpers --------------------------------------------------------------------------


@pytest.fixture
def admin(server) -> Api:
    return server.api(ADMIN_KEY)


def new_advertiser(srv: Server, name: str = "adv") -> Api:
    body = srv.api(ADMIN_KEY).ok("POST", "/v1/advertisers", 201, json={"name": name})
    api = srv.api(body["api_key"])
    api.id = body["id"]
    return api


def new_publisher(srv: Server, name: str = "pub") -> Api:
    body = srv.api(ADMIN_KEY).ok("POST", "/v1/publishers", 201, json={"name": name})
    api = srv.api(body["api_key"])
    api.id = body["id"]
    return api


def unit(i: int, dim: int = DIM) -> list[float]:
    v = [0.0] * dim
    v[i % dim] = 1.0
    return v


def rand_unit(rng: np.random.Generator, dim: int = DIM) -> list[float]:
    v = rng.normal(size=dim)
    return (v / np.linalg.norm(v)).tolist()


def campaign_body(embedding=None, *, sigma=1.0, bid=1_000_000, budget=1_000_000_000, **kw) -> dict:
    body = {
        "name": kw.pop("name", "camp"),
        "sigma": sigma,
        "bid_micros": bid,
        "budget_micros": budget,
        "creative": {"title": "Title", "body": "Body", "url": "https://example.com/ad"},
    }
    if embedding is not None:
        body["embedding"] = embedding
    body.update(kw)
    return body


_AXES = list(range(DIM))
secrets.SystemRandom().shuffle(_AXES)


def isolated_dims(n: int) -> list[int]:
    """Fresh embedding axes for a test, so campaigns of other tests on the same server sit far away.

    Drawn without replacement for the whole session (each test process has its own servers), so two tests
    never share an axis: with independent draws, two of the session's tests landed on the same axis now
    and then, and the campaign of one won the other's auctions."""
    if n > len(_AXES):
        raise RuntimeError(f"isolated_dims: only {len(_AXES)} unused axes are left, {n} asked for")
    out, _AXES[:] = _AXES[:n], _AXES[n:]
    return out
