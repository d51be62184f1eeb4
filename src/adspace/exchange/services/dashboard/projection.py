"""The dashboard's 2-D projection: campaign centers and recent queries on the two principal axes of the
embedding campaigns' centers."""

from __future__ import annotations

from typing import Any

import numpy as np

from adspace.exchange.core.common import Principal
from adspace.exchange.services.dashboard.snapshot import DashboardCache, Snapshot
from adspace.experiments.vcg_figures import pca_2d

__all__ = ["projection_view", "query_xy"]


def _projection_basis(snap: Snapshot) -> tuple[np.ndarray, np.ndarray] | None:
    """Mean and two principal axes of the embedding campaigns' centers (None without campaigns)."""
    emb = snap.embedding_rows()
    if not emb:
        return None
    _, _, info = pca_2d(np.vstack([snap.center[snap.rows[i].id] for i in emb]))
    return info["mean"], info["axes"]


def query_xy(snap: Snapshot, point: np.ndarray | None) -> list[float] | None:
    """Where ``point`` falls in the projection (None without a point or embedding campaigns)."""
    if point is None:
        return None
    basis = _projection_basis(snap)
    if basis is None:
        return None
    return ((point - basis[0]) @ basis[1].T).tolist()


def projection_view(snap: Snapshot, cache: DashboardCache, who: Principal, limit: int) -> dict[str, Any]:
    """Campaign centers the caller may see on the two principal axes of all centers, and the caller's last
    ``limit`` market-map queries (every one for the admin) coloured by winner."""
    emb = snap.embedding_rows()
    out: dict[str, Any] = {"campaigns": [], "queries": [], "explained": [0.0, 0.0]}
    if not emb:
        return out
    c = np.vstack([snap.center[snap.rows[i].id] for i in emb])
    recent = cache.recent_of(who, limit)
    q = np.vstack([r["x"] for r in recent]) if recent else None
    xy, qxy, info = pca_2d(c, q)
    out["explained"] = info["explained"]
    for k, i in enumerate(emb):
        if snap.visible(who, i):
            out["campaigns"].append(
                {
                    **snap.describe(who, i),
                    "label": snap.rows[i].name,
                    "eligible": snap.reason[i] is None,
                    "xy": xy[k].tolist(),
                }
            )
    pos = {r.id: i for i, r in enumerate(snap.rows)}
    for r, p in zip(recent, qxy, strict=True):
        wid = r["winner_id"]
        i = pos.get(wid) if wid else None
        if wid is None:
            lab, cid = "no fill", None
        elif i is not None and snap.visible(who, i):
            lab, cid = snap.rows[i].name, wid
        else:
            lab, cid = r["ad_title"] or "other", None
        out["queries"].append(
            {
                "xy": p.tolist(),
                "text": r["text"],
                "at": r["at"],
                "winner": lab,
                "winner_campaign_id": cid,
                "auction_id": r["auction_id"],
            }
        )
    return out
