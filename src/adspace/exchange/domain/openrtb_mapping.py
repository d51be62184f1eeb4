"""OpenRTB 2.6 adapter: a BidRequest with native imps in, a BidResponse (or 204 no bid) out.

The query comes from, in order:

1. the IAB Tech Lab "Agentic Audiences" community extension,
   ``user.data[].segment[].ext.aa = {ver, vector, dimension, model, type}``, where ``vector`` is the
   base64 of little-endian float32 values: it must hold exactly ``dimension`` = 384 values of the
   exchange's model (``all-MiniLM-L6-v2``), else the request is rejected (400, naming the field);
2. text: ``ext.adspace.messages`` (``[{role, content}]``), ``ext.adspace.text``, or ``site.content``
   (``ext.text``, else ``title`` and ``keywords``), embedded by the exchange.

Keywords for keyword campaigns come from ``site.keywords``, ``site.content.keywords``,
``user.keywords`` (comma separated) and their ``kwarray`` forms.

Each native imp is one auction of the embedding-space VCG mechanism, declared as the exchange-specific
auction type ``at = 501`` (OpenRTB reserves values >= 500 for exchanges): the winner pays the Clarke
pivot. ``imp.bidfloor`` (CPM) is the reserve. ``price`` is a CPM (per OpenRTB): price_micros / 1000.
``nurl``/``burl``/``lurl`` carry the standard macros and a per-auction capability token; ``burl``
settles exactly like ``POST /v1/auctions/{id}/billing``, ``lurl`` releases the hold.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from typing import Any, Literal
from urllib.parse import urlparse

import numpy as np

from adspace.exchange.core.common import ServiceError, conversation_text
from adspace.exchange.core.vectors import VectorError, check_vector
from adspace.models.embedder import DIM, MODEL_NAME

__all__ = [
    "AUCTION_TYPE",
    "NBR_INVALID_REQUEST",
    "NoBid",
    "RtbError",
    "no_bid",
    "parse_request",
    "native_adm",
    "bid",
    "response",
    "cpm_to_micros",
]

AUCTION_TYPE = 501  # exchange-specific (>= 500): embedding-space VCG, Clarke pivot
SEAT = "adspace"
CURRENCY = "USD"  # the default; the exchange's currency is ``Settings.currency``
#: OpenRTB 2.6 No-Bid Reason Codes (list 5.24). None of the standard codes names currencies; a request
#: whose ``cur`` leaves out the exchange's currency asks for something no bid can satisfy as stated,
#: so it is answered as an invalid request (2), with the reason in ``ext.adspace.reason``.
NBR_INVALID_REQUEST = 2
MODELS = {MODEL_NAME.lower(), f"sentence-transformers/{MODEL_NAME}".lower()}
MACROS = "auction=${AUCTION_ID}&imp=${AUCTION_IMP_ID}&price=${AUCTION_PRICE}&cur=${AUCTION_CURRENCY}"


NoticeKind = Literal["win", "billing", "loss"]


class RtbError(ValueError):
    """A malformed request; the message names the field."""


class NoBid(Exception):
    """A well-formed request the exchange cannot bid on: answered with a BidResponse holding ``nbr``."""

    def __init__(self, request_id: str, nbr: int, reason: str):
        super().__init__(reason)
        self.request_id, self.nbr, self.reason = request_id, nbr, reason


def cpm_to_micros(cpm: float) -> int:
    """A CPM (currency per 1,000 impressions) as whole micros per impression, rounded up (a floor)."""
    return int(math.ceil(round(cpm * 1000.0, 6)))


def _decode_aa(aa: Any, where: str) -> np.ndarray:
    if not isinstance(aa, dict):
        raise RtbError(f"{where}: must be an object {{ver, vector, dimension, model, type}}")
    model = aa.get("model")
    if not isinstance(model, str) or model.lower() not in MODELS:
        raise RtbError(f"{where}.model: must be {MODEL_NAME!r} (the exchange's embedding model), got {model!r}")
    dim = aa.get("dimension")
    if dim != DIM:
        raise RtbError(f"{where}.dimension: must be {DIM}, got {dim!r}")
    vec = aa.get("vector")
    if not isinstance(vec, str):
        raise RtbError(f"{where}.vector: must be a base64 string of little-endian float32 values")
    try:
        raw = base64.b64decode(vec, validate=True)
    except (binascii.Error, ValueError):
        raise RtbError(f"{where}.vector: not valid base64") from None
    if len(raw) != 4 * DIM:
        raise RtbError(f"{where}.vector: must be {4 * DIM} bytes ({DIM} float32), got {len(raw)}")
    try:
        return check_vector(np.frombuffer(raw, dtype="<f4"), f"{where}.vector")
    except VectorError as exc:
        raise RtbError(str(exc)) from None


def _keywords(*objs: Any) -> list[str]:
    out: list[str] = []
    for o in objs:
        if not isinstance(o, dict):
            continue
        arr = o.get("kwarray")
        if isinstance(arr, list):
            out += [k for k in arr if isinstance(k, str)]
        kw = o.get("keywords")
        if isinstance(kw, str):
            out += [k for k in kw.split(",")]
    seen: list[str] = []
    for k in out:
        n = " ".join(k.lower().split())
        if n and n not in seen and len(n) <= 100:
            seen.append(n)
    return seen[:50]


def parse_request(req: Any, currency: str = CURRENCY) -> dict[str, Any]:
    """Validate a BidRequest; returns ``{id, imps: [(imp_id, reserve_micros)], embedding, text, keywords}``.

    ``currency`` is the exchange's: a request whose ``cur`` (the currencies it accepts) leaves it out
    raises :class:`NoBid`; an imp whose ``bidfloorcur`` is another currency gets no bid.
    """
    if not isinstance(req, dict):
        raise RtbError("body: must be a JSON object (an OpenRTB 2.6 BidRequest)")
    rid = req.get("id")
    if not isinstance(rid, str) or not rid or len(rid) > 200:
        raise RtbError("id: required, a non-empty string of at most 200 characters")
    cur = req.get("cur")
    if cur is not None:
        if not isinstance(cur, list) or not all(isinstance(c, str) for c in cur):
            raise RtbError("cur: must be an array of ISO-4217 currency codes")
        if cur and currency not in [c.strip().upper() for c in cur]:
            raise NoBid(rid, NBR_INVALID_REQUEST, f"cur: the exchange bids in {currency} only, not in {cur[:10]!r}")
    imps = req.get("imp")
    if not isinstance(imps, list) or not imps:
        raise RtbError("imp: required, a non-empty array")
    if len(imps) > 20:
        raise RtbError("imp: at most 20 imps per request")
    out_imps: list[tuple[str, int]] = []
    for i, imp in enumerate(imps):
        if not isinstance(imp, dict):
            raise RtbError(f"imp[{i}]: must be an object")
        iid = imp.get("id")
        if not isinstance(iid, str) or not iid:
            raise RtbError(f"imp[{i}].id: required, a non-empty string")
        floor = imp.get("bidfloor", 0.0)
        if isinstance(floor, bool) or not isinstance(floor, int | float) or not math.isfinite(floor) or floor < 0:
            raise RtbError(f"imp[{i}].bidfloor: must be a number >= 0 (CPM)")
        floor_cur = imp.get("bidfloorcur", "USD")  # OpenRTB's default
        if "native" not in imp or not isinstance(imp["native"], dict):
            continue  # only native imps are served
        if floor > 0 and floor_cur != currency:
            continue  # a floor in another currency: no bid on this imp (no conversion)
        if floor > 1e9:
            continue
        out_imps.append((iid, cpm_to_micros(float(floor))))

    embedding = None
    user = req.get("user") if isinstance(req.get("user"), dict) else {}
    data = user.get("data") if isinstance(user.get("data"), list) else []
    for di, d in enumerate(data):
        segs = d.get("segment") if isinstance(d, dict) and isinstance(d.get("segment"), list) else []
        for si, seg in enumerate(segs):
            ext = seg.get("ext") if isinstance(seg, dict) else None
            if isinstance(ext, dict) and "aa" in ext:
                embedding = _decode_aa(ext["aa"], f"user.data[{di}].segment[{si}].ext.aa")
                break
        if embedding is not None:
            break

    text = None
    ext = req.get("ext") if isinstance(req.get("ext"), dict) else {}
    ours = ext.get("adspace") if isinstance(ext.get("adspace"), dict) else {}
    site = req.get("site") if isinstance(req.get("site"), dict) else {}
    content = site.get("content") if isinstance(site.get("content"), dict) else {}
    if isinstance(ours.get("messages"), list):
        msgs = ours["messages"]
        for mi, m in enumerate(msgs):
            if not isinstance(m, dict) or not isinstance(m.get("content"), str):
                raise RtbError(f"ext.adspace.messages[{mi}].content: must be a string")
        try:
            text = conversation_text([{"role": m.get("role", "user"), "content": m["content"]} for m in msgs])
        except ServiceError as exc:
            raise RtbError(f"ext.adspace.{exc.detail}") from None
    elif isinstance(ours.get("text"), str):
        text = ours["text"][-2000:]
    else:
        cext = content.get("ext") if isinstance(content.get("ext"), dict) else {}
        if isinstance(cext.get("text"), str):
            text = cext["text"][-2000:]
        else:
            parts = [content.get("title"), content.get("keywords")]
            joined = ". ".join(p for p in parts if isinstance(p, str) and p.strip())
            text = joined[-2000:] or None
    if text is not None and not text.strip():
        text = None
    return {
        "id": rid,
        "imps": out_imps,
        "embedding": embedding,
        "text": text,
        "keywords": _keywords(site, content, user),
    }


def native_adm(title: str, body: str, url: str, impression_url: str) -> str:
    """The native response (OpenRTB Native 1.2) as the ``adm`` string."""
    return json.dumps(
        {
            "native": {
                "ver": "1.2",
                "assets": [
                    {"id": 1, "title": {"text": title}},
                    {"id": 2, "data": {"type": 2, "value": body}},
                    {"id": 3, "data": {"type": 1, "value": "Sponsored"}},
                ],
                "link": {"url": url},
                "eventtrackers": [{"event": 1, "method": 1, "url": impression_url}],
            }
        },
        separators=(",", ":"),
    )


def bid(
    *,
    base: str,
    auction_id: str,
    token: str,
    imp_id: str,
    price_micros: int,
    campaign_id: str,
    title: str,
    body: str,
    url: str,
    explain: dict[str, Any],
) -> dict[str, Any]:
    def notice(kind: str) -> str:
        return f"{base}/openrtb2/notice/{kind}/{auction_id}?t={token}&{MACROS}"

    burl = notice("billing")
    domain = urlparse(url).hostname or ""
    return {
        "id": auction_id,
        "impid": imp_id,
        "price": price_micros / 1000.0,
        "adid": campaign_id,
        "cid": campaign_id,
        "crid": campaign_id,
        "adomain": [domain] if domain else [],
        "adm": native_adm(title, body, url, burl),
        "nurl": notice("win"),
        "burl": burl,
        "lurl": notice("loss") + "&reason=${AUCTION_LOSS}",
        "mtype": 4,
        "ext": {"adspace": {"price_micros": price_micros, "label": "Sponsored", "explain": explain}},
    }


def response(request_id: str, bids: list[dict[str, Any]], currency: str = CURRENCY) -> dict[str, Any]:
    return {
        "id": request_id,
        "bidid": bids[0]["id"],
        "cur": currency,
        "seatbid": [{"seat": SEAT, "bid": bids}],
        "ext": {"adspace": {"at": AUCTION_TYPE, "mechanism": "embedding-space VCG, Clarke pivot"}},
    }


def no_bid(exc: NoBid) -> dict[str, Any]:
    """A BidResponse that bids nothing and says why (``nbr``, and in words in ``ext.adspace.reason``)."""
    return {"id": exc.request_id, "nbr": exc.nbr, "ext": {"adspace": {"reason": exc.reason}}}
