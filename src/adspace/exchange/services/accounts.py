"""Accounts and API keys: who may call, in which role, and the ledger account of each owner."""

from __future__ import annotations

import threading

from sqlalchemy import select, update
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from adspace.exchange.core import schemas
from adspace.exchange.core.apikeys import hash_key, new_id, new_key
from adspace.exchange.core.common import EXCHANGE_OWNER, NotFound, Principal, as_utc, utcnow
from adspace.exchange.store import Store
from adspace.exchange.store.tables import Account, ApiKey, LedgerAccount

__all__ = ["AccountService"]

_KEY_CACHE_MAX = 100_000


class AccountService:
    """Accounts, keys and ledger accounts. Authentication is cached per key hash (revocation clears it)."""

    def __init__(self, store: Store):
        self.store = store
        self._keys: dict[str, Principal] = {}
        self._ledger_ids: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()

    # -- keys ----------------------------------------------------------------------------------------
    def cached(self, key: str) -> Principal | None:
        """The caller of a key authenticated before (no database read), else ``None``."""
        return self._keys.get(hash_key(key))

    def authenticate(self, key: str) -> Principal | None:
        h = hash_key(key)
        p = self._keys.get(h)
        if p is not None:
            return p
        with self.store.read() as s:
            row = s.execute(
                select(Account.id, Account.kind, Account.name)
                .join(ApiKey, ApiKey.account_id == Account.id)
                .where(ApiKey.key_hash == h, ApiKey.revoked_at.is_(None))
            ).first()
        if row is None:
            return None
        p = Principal(row.id, row.kind, row.name)
        with self._lock:
            if len(self._keys) >= _KEY_CACHE_MAX:  # only valid keys are cached; drop the oldest
                self._keys.pop(next(iter(self._keys)))
            self._keys[h] = p
        return p

    def bootstrap_admin(self, admin_key: str | None) -> str | None:
        """Make sure an admin exists. Returns a newly generated admin key (to print once), else None."""
        now = utcnow()
        with self.store.tx() as s:
            admin = s.scalars(select(Account).where(Account.kind == "admin").order_by(Account.created_at)).first()
            if admin is None:
                admin = Account(id=new_id("acc"), kind="admin", name="admin", created_at=now)
                s.add(admin)
                s.flush()
            if admin_key:
                h = hash_key(admin_key)
                existing = s.scalars(select(ApiKey).where(ApiKey.key_hash == h)).first()
                if existing is None:
                    s.add(ApiKey(account_id=admin.id, key_hash=h, prefix=admin_key[:12], created_at=now))
                # The environment's key is the admin's only key: earlier ones stop working.
                s.execute(
                    update(ApiKey)
                    .where(ApiKey.account_id == admin.id, ApiKey.key_hash != h, ApiKey.revoked_at.is_(None))
                    .values(revoked_at=now)
                )
                self._keys.clear()
                return None
            has_key = s.scalars(
                select(ApiKey.id).where(ApiKey.account_id == admin.id, ApiKey.revoked_at.is_(None))
            ).first()
            if has_key is not None:
                return None
            key = new_key("admin")
            s.add(ApiKey(account_id=admin.id, key_hash=hash_key(key), prefix=key[:12], created_at=now))
            return key

    # -- accounts ------------------------------------------------------------------------------------
    def create(self, kind: str, name: str) -> schemas.AccountCreated:
        key = new_key(kind)
        now = utcnow()
        with self.store.tx() as s:
            acc = Account(id=new_id("adv" if kind == "advertiser" else "pub"), kind=kind, name=name, created_at=now)
            s.add(acc)
            s.flush()
            s.add(ApiKey(account_id=acc.id, key_hash=hash_key(key), prefix=key[:12], created_at=now))
            self.ensure_ledger_account(s, kind, acc.id)
        return schemas.AccountCreated(id=acc.id, name=name, kind=kind, api_key=key)

    def principal(self, account_id: str) -> Principal:
        with self.store.read() as s:
            a = s.get(Account, account_id)
            return Principal(a.id, a.kind, a.name)

    def list(self, kind: str) -> list[schemas.AccountOut]:
        with self.store.read() as s:
            rows = s.scalars(select(Account).where(Account.kind == kind).order_by(Account.created_at, Account.id))
            return [
                schemas.AccountOut(id=a.id, name=a.name, kind=a.kind, created_at=as_utc(a.created_at)) for a in rows
            ]

    def rotate_key(self, account_id: str) -> schemas.AccountCreated:
        """Issue a new key for an advertiser or publisher and revoke its old ones (admin)."""
        now = utcnow()
        with self.store.tx() as s:
            acc = s.get(Account, account_id)
            if acc is None or acc.kind == "admin":
                raise NotFound(f"account_id: no advertiser or publisher {account_id!r}")
            key = new_key(acc.kind)
            s.execute(
                update(ApiKey).where(ApiKey.account_id == acc.id, ApiKey.revoked_at.is_(None)).values(revoked_at=now)
            )
            s.add(ApiKey(account_id=acc.id, key_hash=hash_key(key), prefix=key[:12], created_at=now))
            name, kind = acc.name, acc.kind
        with self._lock:
            self._keys = {h: p for h, p in self._keys.items() if p.account_id != account_id}
        return schemas.AccountCreated(id=account_id, name=name, kind=kind, api_key=key)

    # -- ledger accounts -----------------------------------------------------------------------------
    def ensure_ledger_account(self, s: Session, kind: str, owner_id: str) -> int:
        """The ledger account of an owner, created if missing (inside the caller's transaction)."""
        acc = s.scalars(
            select(LedgerAccount.id).where(LedgerAccount.owner_kind == kind, LedgerAccount.owner_id == owner_id)
        ).first()
        if acc is not None:
            return acc
        row = LedgerAccount(owner_kind=kind, owner_id=owner_id)
        s.add(row)
        s.flush()
        return row.id

    def ledger_account_id(self, conn: Connection, kind: str, owner_id: str) -> int:
        """The id of an existing ledger account (they never change once made: cached)."""
        key = (kind, owner_id)
        got = self._ledger_ids.get(key)
        if got is None:
            got = conn.execute(
                select(LedgerAccount.id).where(LedgerAccount.owner_kind == kind, LedgerAccount.owner_id == owner_id)
            ).scalar_one()
            self._ledger_ids[key] = got
        return got

    def ensure_exchange_ledger_account(self) -> None:
        with self.store.tx() as s:
            self.ensure_ledger_account(s, EXCHANGE_OWNER, EXCHANGE_OWNER)
