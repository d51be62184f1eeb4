"""The API documentation pages, served offline: Swagger UI at ``/docs`` and ReDoc at ``/redoc``.

FastAPI's own pages load Swagger UI and ReDoc from a CDN, so ``/docs`` is blank without Internet
access. Here the same pages load their JavaScript and CSS from this exchange, out of the files that
the pinned ``fastapi-offline`` wheel ships (Swagger UI's ``swagger-ui-bundle.js`` and
``swagger-ui.css``, ReDoc's ``redoc.standalone.js``); no font, favicon or validator is fetched from
elsewhere either (ReDoc's footer logo, the one address its bundle would fetch, is pointed at the
exchange's own icon as the file is served).
"""

from __future__ import annotations

import functools
from importlib import resources
from pathlib import Path

from fastapi import APIRouter, FastAPI, HTTPException
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, Response

__all__ = ["install", "ASSETS", "asset_dir"]

#: The files the two pages need, with their media types.
ASSETS = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "redoc.standalone.js": "text/javascript",
}
PREFIX = "/docs/assets"
FAVICON = "/dashboard/favicon.svg"
#: Addresses outside the exchange inside the vendored bundles, and what they are replaced with.
_LOCAL = {"redoc.standalone.js": [(b"https://cdn.redoc.ly/redoc/logo-mini.svg", FAVICON.encode())]}


def asset_dir() -> Path:
    """Where the installed ``fastapi-offline`` package keeps Swagger UI's and ReDoc's files."""
    return Path(str(resources.files("fastapi_offline") / "static"))


@functools.cache
def _asset_bytes(name: str) -> bytes:
    data = (asset_dir() / name).read_bytes()
    for old, new in _LOCAL.get(name, []):
        data = data.replace(old, new)
    return data


def install(app: FastAPI) -> None:
    """Serve ``/docs``, ``/redoc`` and their assets (create the app with ``docs_url=None, redoc_url=None``)."""
    router = APIRouter(include_in_schema=False)
    title = app.title

    @router.get("/docs")
    def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url,
            title=f"{title}: API",
            swagger_js_url=f"{PREFIX}/swagger-ui-bundle.js",
            swagger_css_url=f"{PREFIX}/swagger-ui.css",
            swagger_favicon_url=FAVICON,
            # validatorUrl: Swagger UI would otherwise ask an online validator for a badge.
            swagger_ui_parameters={"validatorUrl": None, "persistAuthorization": False, "tryItOutEnabled": False},
        )

    @router.get("/redoc")
    def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=app.openapi_url,
            title=f"{title}: API reference",
            redoc_js_url=f"{PREFIX}/redoc.standalone.js",
            redoc_favicon_url=FAVICON,
            with_google_fonts=False,
        )

    @router.get(PREFIX + "/{name}")
    def asset(name: str) -> Response:
        if name not in ASSETS:
            raise HTTPException(404, f"name: no documentation asset {name!r}")
        return Response(_asset_bytes(name), media_type=ASSETS[name], headers={"Cache-Control": "public, max-age=86400"})

    app.include_router(router)
