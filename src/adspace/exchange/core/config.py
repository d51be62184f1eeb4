"""Settings of the exchange, read from the environment in one place.

Every knob is an ``ADSPACE_*`` environment variable; ``adspace serve`` flags override the few that
people change on the command line (``--database-url``, ``--host``, ``--port``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace

__all__ = ["Settings", "normalize_database_url", "DEFAULT_DATABASE_URL"]

DEFAULT_DATABASE_URL = "sqlite:///adspace.db"

#: Classes of caller with their own rate limit (see :mod:`adspace.exchange.http.guard`).
RATE_CLASSES = ("admin", "advertiser", "publisher", "address", "notice")


def normalize_database_url(url: str) -> str:
    """Map ``postgres://`` / ``postgresql://`` to SQLAlchemy's psycopg 3 dialect; keep others as given."""
    url = url.strip()
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _int(name: str, default: int, *, lo: int | None = None, hi: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name}: must be an integer, got {raw!r}") from None
    if lo is not None and value < lo:
        raise ValueError(f"{name}: must be >= {lo}, got {value}")
    if hi is not None and value > hi:
        raise ValueError(f"{name}: must be <= {hi}, got {value}")
    return value


def _float(name: str, default: float, *, lo: float = 0.0) -> float:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name}: must be a number, got {raw!r}") from None
    if not value >= lo:
        raise ValueError(f"{name}: must be >= {lo}, got {value}")
    return value


def _currency(name: str, default: str) -> str:
    raw = (os.environ.get(name) or default).strip().upper()
    if len(raw) != 3 or not raw.isalpha() or not raw.isascii():
        raise ValueError(f"{name}: must be an ISO-4217 code of three letters, got {raw!r}")
    return raw


def _bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    return raw.strip().lower() in {"1", "true", "yes", "on"}


def default_clear_threads(workers: int = 1) -> int:
    """Clearing threads per process: the cores this process may use, shared among ``workers``
    processes, at most 4 (the filter GEMM is bound by memory bandwidth beyond a few threads; the
    measurements behind the choice are in docs/benchmarks.md)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        cores = os.cpu_count() or 1
    return max(1, min(4, cores // max(1, workers)))


@dataclass(frozen=True)
class Settings:
    """Exchange configuration. Build with :meth:`from_env`; tests use :func:`dataclasses.replace`."""

    database_url: str = DEFAULT_DATABASE_URL
    #: Admin API key; when empty, one is generated and printed at first start (only its hash is stored).
    admin_key: str | None = None
    #: Publisher's share of each charge, in basis points (8000 = 80 %); the exchange keeps the rest.
    publisher_share_bps: int = 8000
    #: How long a won auction's budget stays held waiting for its billing notice.
    hold_seconds: int = 900
    #: Most a publisher's outstanding holds against one campaign may reach, in basis points of the
    #: campaign's budget (at least one bid's worth; 10000 turns the cap off). See services/holds.py.
    publisher_hold_cap_bps: int = 1000
    #: How often expired holds are released.
    sweep_seconds: float = 5.0
    #: Token bucket per caller: sustained requests per second and burst size (0 disables the limit).
    #: The default for every class of caller; ``rate_limits`` overrides it per class.
    rate_limit_per_second: float = 200.0
    rate_limit_burst: int = 400
    #: Per class of caller -- ``admin``, ``advertiser``, ``publisher`` (per account), ``address`` (no
    #: or unknown key, per client address), ``notice`` (per OpenRTB notice URL) -- ``(rate, burst)``.
    rate_limits: dict[str, tuple[float, int]] = field(default_factory=dict)
    #: Most buckets kept per class; beyond, the least recently used one is dropped.
    rate_limit_table_size: int = 100_000
    #: Largest accepted request body.
    max_body_bytes: int = 256 * 1024
    #: Reserve applied when a request names none (micros).
    default_reserve_micros: int = 0
    #: Load the embedding model at start (in the background) instead of at the first text request.
    preload_model: bool = True
    #: SQLite commit durability: FULL (power-loss safe) or NORMAL (process-crash safe, faster).
    sqlite_synchronous: str = "FULL"
    #: Under load, the longest the auction pipeline waits for auctions on their way before clearing a
    #: batch (microseconds; it goes as soon as as many are queued as its recent batches had callers, and
    #: an idle exchange never waits).
    batch_window_us: int = 200
    #: BLAS threads for the clearing kernel (0: the library's default). One is fastest for a server: the
    #: request threads already use the cores, and a multi-threaded GEMM on busy cores spins (measured
    #: 5x slower per query on a loaded 2-core machine; docs/benchmarks.md).
    blas_threads: int = 1
    #: Threads sharing the clearing kernel's filter GEMM on a large market (each a one-thread BLAS call
    #: over its own block of campaigns; idle between calls, never spinning). 0: this process's share of
    #: the machine's cores (:func:`default_clear_threads`).
    clear_threads: int = 0
    #: Serve the auction and billing operations without FastAPI's per-request machinery
    #: (http/fastlane.py; the answers are the same). Off: every request goes to the routes.
    fast_lane: bool = True
    #: The exchange's currency (ISO-4217): all money is micros of it; OpenRTB requests whose ``cur``
    #: leaves it out get no bid (``nbr`` 2), floors in another ``bidfloorcur`` get none either.
    currency: str = "USD"
    #: Base URL written into OpenRTB notice URLs (nurl/burl/lurl).
    public_url: str = "http://127.0.0.1:8000"

    def limits(self) -> dict[str, tuple[float, int]]:
        """``(rate, burst)`` of every class of caller (the general limit where none is set)."""
        return {k: self.rate_limits.get(k, (self.rate_limit_per_second, self.rate_limit_burst)) for k in RATE_CLASSES}

    @classmethod
    def from_env(cls) -> Settings:
        rate = _float("ADSPACE_RATE_LIMIT_PER_SECOND", 200.0)
        burst = _int("ADSPACE_RATE_LIMIT_BURST", 400, lo=1)
        per_class = {
            k: (
                _float(f"ADSPACE_RATE_LIMIT_{k.upper()}_PER_SECOND", rate),
                _int(f"ADSPACE_RATE_LIMIT_{k.upper()}_BURST", burst, lo=1),
            )
            for k in RATE_CLASSES
        }
        return cls(
            database_url=normalize_database_url(os.environ.get("ADSPACE_DATABASE_URL") or DEFAULT_DATABASE_URL),
            admin_key=os.environ.get("ADSPACE_ADMIN_KEY") or None,
            publisher_share_bps=_int("ADSPACE_PUBLISHER_SHARE_BPS", 8000, lo=0, hi=10_000),
            hold_seconds=_int("ADSPACE_HOLD_SECONDS", 900, lo=1),
            publisher_hold_cap_bps=_int("ADSPACE_PUBLISHER_HOLD_CAP_BPS", 1000, lo=0, hi=10_000),
            sweep_seconds=_float("ADSPACE_SWEEP_SECONDS", 5.0, lo=0.05),
            rate_limit_per_second=rate,
            rate_limit_burst=burst,
            rate_limits=per_class,
            rate_limit_table_size=_int("ADSPACE_RATE_LIMIT_TABLE_SIZE", 100_000, lo=16),
            max_body_bytes=_int("ADSPACE_MAX_BODY_BYTES", 256 * 1024, lo=1024),
            default_reserve_micros=_int("ADSPACE_DEFAULT_RESERVE_MICROS", 0, lo=0),
            preload_model=_bool("ADSPACE_PRELOAD_MODEL", True),
            currency=_currency("ADSPACE_CURRENCY", "USD"),
            public_url=(os.environ.get("ADSPACE_PUBLIC_URL") or "http://127.0.0.1:8000").rstrip("/"),
            sqlite_synchronous=(os.environ.get("ADSPACE_SQLITE_SYNCHRONOUS") or "FULL").strip().upper(),
            batch_window_us=_int("ADSPACE_BATCH_WINDOW_US", 200, lo=0, hi=100_000),
            blas_threads=_int("ADSPACE_BLAS_THREADS", 1, lo=0, hi=1024),
            clear_threads=_int("ADSPACE_CLEAR_THREADS", 0, lo=0, hi=64),
            fast_lane=_bool("ADSPACE_FAST_LANE", True),
        )

    def with_overrides(self, **kwargs) -> Settings:
        kwargs = {k: v for k, v in kwargs.items() if v is not None}
        if "database_url" in kwargs:
            kwargs["database_url"] = normalize_database_url(kwargs["database_url"])
        return replace(self, **kwargs)
