"""New API keys for every account of an existing database (``adspace serve --new-keys``).

Keys are stored as hashes only, so a lost key cannot be shown again: the way back is a new one.
Every advertiser and publisher gets a new key (its earlier keys stop working), and so does the
admin unless ``ADSPACE_ADMIN_KEY`` names its key.
"""

from __future__ import annotations

from sqlalchemy import update

from adspace.exchange.container import Exchange
from adspace.exchange.core.common import utcnow
from adspace.exchange.store.tables import Account, ApiKey

__all__ = ["issue_new_keys"]


def issue_new_keys(ex: Exchange) -> dict[str, str]:
    """Revoke every account's keys and issue new ones; return ``{"<kind> <name>": key}`` to print once."""
    keys: dict[str, str] = {}
    if not ex.settings.admin_key:
        with ex.store.tx() as s:
            admins = [a.id for a in s.query(Account).filter(Account.kind == "admin")]
            s.execute(
                update(ApiKey)
                .where(ApiKey.account_id.in_(admins), ApiKey.revoked_at.is_(None))
                .values(revoked_at=utcnow())
            )
        key = ex.bootstrap_admin()
        if key:
            keys["admin"] = key
    for kind in ("advertiser", "publisher"):
        for acc in ex.accounts.list(kind):
            keys[f"{kind} {acc.name}"] = ex.accounts.rotate_key(acc.id).api_key
    return keys
