"""Accounts (admin creates advertisers and publishers; anyone asks who they are)."""

from __future__ import annotations

from fastapi import APIRouter

from adspace.exchange.core import schemas
from adspace.exchange.http.deps import Admin, Caller, ExchangeDep, Id

router = APIRouter(prefix="/v1", tags=["accounts"])


@router.post("/advertisers", status_code=201, response_model=schemas.AccountCreated)
def create_advertiser(body: schemas.AccountCreate, ex: ExchangeDep, _: Admin):
    """Create an advertiser. The API key in the answer is shown once."""
    return ex.accounts.create("advertiser", body.name)


@router.get("/advertisers", response_model=list[schemas.AccountOut])
def list_advertisers(ex: ExchangeDep, _: Admin):
    return ex.accounts.list("advertiser")


@router.post("/publishers", status_code=201, response_model=schemas.AccountCreated)
def create_publisher(body: schemas.AccountCreate, ex: ExchangeDep, _: Admin):
    """Create a publisher. The API key in the answer is shown once."""
    return ex.accounts.create("publisher", body.name)


@router.get("/publishers", response_model=list[schemas.AccountOut])
def list_publishers(ex: ExchangeDep, _: Admin):
    return ex.accounts.list("publisher")


@router.post("/accounts/{account_id}/keys", status_code=201, response_model=schemas.AccountCreated)
def rotate_key(account_id: Id, ex: ExchangeDep, _: Admin):
    """Issue a new API key for an advertiser or publisher; its earlier keys stop working."""
    return ex.accounts.rotate_key(account_id)


@router.get("/me", response_model=schemas.AccountOut)
def me(ex: ExchangeDep, who: Caller):
    return next(a for a in ex.accounts.list(who.kind) if a.id == who.account_id)
