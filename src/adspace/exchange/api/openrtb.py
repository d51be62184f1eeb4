"""OpenRTB 2.6 adapter (filled in below)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["openrtb"])
