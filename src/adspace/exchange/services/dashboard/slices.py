"""The dashboard's slices: scores along the line through two points, the upper envelope of the score
parabolas, and who wins where."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from adspace.exchange.core import schemas
from adspace.exchange.core.common import Conflict, NotFound, Principal
from adspace.exchange.services.dashboard.snapshot import Snapshot, finite
from adspace.experiments.vcg_figures import slice_scores, winning_intervals

__all__ = ["MAX_CURVES", "slice_view"]

#: The most campaign curves one slice returns.
MAX_CURVES = 12


def slice_view(
    snap: Snapshot, body: schemas.SliceQuery, who: Principal, query_point: Callable[[], np.ndarray | None]
) -> dict[str, Any]:
    """Scores of the embedding campaigns along the line through ``a`` and ``b`` (campaigns of the caller,
    or ``"query"``: the point ``query_point()`` gives).

    Returns the parameter grid ``t`` (``a`` at 0, ``b`` at 1), a curve per campaign that wins
    somewhere on the line or is an endpoint (at most :data:`MAX_CURVES`, the caller's visible ones; no
    curve of a rival), the upper envelope where the caller's campaigns win, and the winning intervals
    (rivals: "others"). Keyword campaigns (σ → 0) are not on the line and are left out.
    """
    ends = []
    for e in (body.a, body.b):
        if e == "query":
            ends.append(("query", query_point()))
            continue
        i = snap.index(e)
        if i is None or not snap.visible(who, i):
            raise NotFound(f"a | b: no campaign {e!r} of yours")
        r = snap.rows[i]
        if r.kind == "keyword":
            raise Conflict(f"a | b: campaign {e!r} is a keyword campaign (σ → 0); choose an embedding campaign")
        ends.append((r.name, snap.center[r.id]))
    if np.array_equal(ends[0][1], ends[1][1]):
        raise Conflict("a | b: the two points coincide (same center); choose another")
    emb = snap.embedding_rows()
    t = np.linspace(body.t_min, body.t_max, body.n)
    out: dict[str, Any] = {"t": t.tolist(), "a": ends[0][0], "b": ends[1][0], "curves": [], "intervals": []}
    if not emb:
        out["envelope"] = [None] * len(t)
        out["winner"] = [None] * len(t)
        return out
    c = np.vstack([snap.center[snap.rows[i].id] for i in emb])
    s = np.asarray([float(snap.rows[i].sigma) for i in emb])
    b = np.asarray([float(snap.rows[i].bid_micros) for i in emb])
    elig = np.asarray([snap.reason[i] is None for i in emb])
    pa, pb = ends[0][1], ends[1][1]
    sc_all, _, _ = slice_scores(c, s, b, pa, pb, t)  # every campaign's parabola, eligible or not
    sc, env, win = slice_scores(c, s, b, pa, pb, t, eligible=elig)
    vis = np.asarray([snap.visible(who, i) for i in emb])
    label = [snap.rows[i].name if vis[k] else "others" for k, i in enumerate(emb)]
    winners = sorted({int(w) for w in win if w >= 0}, key=lambda k: (not vis[k], -float(np.max(sc[:, k]))))
    endpoint_ids = {e for e in (body.a, body.b) if e != "query"}
    shown = [k for k in range(len(emb)) if vis[k] and snap.rows[emb[k]].id in endpoint_ids]
    shown += [k for k in winners if vis[k] and k not in shown]
    shown = shown[:MAX_CURVES]
    for k in shown:
        i = emb[k]
        out["curves"].append(
            {
                **snap.describe(who, i),
                "label": label[k],
                "eligible": bool(elig[k]),
                "score": [finite(v) for v in sc_all[:, k]],
            }
        )
    # Rivals' scores are not shown (not even their best: at a rival's center it is log(bid)); the
    # envelope is drawn where the caller's campaigns win, and where a rival wins only its label.
    out["envelope"] = [finite(v) if w >= 0 and vis[int(w)] else None for v, w in zip(env, win, strict=True)]
    out["winner"] = [None if w < 0 else label[int(w)] for w in win]
    for iv in winning_intervals(c, s, b, body.t_min, body.t_max, a=pa, b=pb, n=body.n, eligible=elig):
        lab = None if iv.winner < 0 else label[iv.winner]
        if out["intervals"] and out["intervals"][-1]["winner"] == lab:
            out["intervals"][-1]["hi"] = iv.hi  # adjacent rivals merge into one "others" interval
        else:
            out["intervals"].append({"winner": lab, "lo": iv.lo, "hi": iv.hi})
    return out
