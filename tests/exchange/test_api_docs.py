"""The API documentation works offline: Swagger UI and ReDoc load only from the exchange itself.

The browser refuses every request that leaves the server (as a machine without Internet access
would), and the pages must still list the API's operations.
"""

from __future__ import annotations

import re

from .test_dashboard_browser import browser  # noqa: F401 - the shared Chromium fixture


def test_docs_pages_name_no_other_host(server):
    api = server.api(None)
    for path in ("/docs", "/redoc"):
        html = api.ok("GET", path).text
        urls = re.findall(r"""(?:src|href)=["']([^"']+)""", html) + re.findall(r"""url: ?['"]([^'"]+)""", html)
        assert urls, html
        assert all(u.startswith("/") for u in urls), (path, urls)
    for name in ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js"):
        r = api.get(f"/docs/assets/{name}")
        assert r.status_code == 200 and len(r.content) > 100_000, (name, r.status_code)
    r = api.get("/docs/assets/..%2Fcore.py")
    assert r.status_code == 404


def _offline_page(browser, base):  # noqa: F811
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    page = ctx.new_page()
    page.set_default_timeout(30_000)
    outside: list[str] = []

    def gate(route):
        url = route.request.url
        if url.startswith(base + "/") or url == base:
            route.continue_()
        else:
            outside.append(url)
            route.abort()

    page.route("**/*", gate)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    return ctx, page, outside, errors


def test_swagger_ui_lists_the_operations_offline(browser, server):  # noqa: F811
    from playwright.sync_api import expect

    ctx, page, outside, errors = _offline_page(browser, server.base)
    try:
        page.goto(server.base + "/docs")
        auctions = page.locator(".opblock-summary-path", has_text=re.compile(r"^/v1/auctions$"))
        expect(auctions.first).to_be_visible(timeout=30_000)
        paths = set(page.locator(".opblock-summary-path").all_inner_texts())
        assert {"/v1/campaigns", "/v1/auctions/{auction_id}/billing", "/v1/campaigns/reach", "/v1/ledger"} <= {
            p.strip() for p in paths
        }, paths
        expect(page.locator(".info .title")).to_contain_text("adspace exchange")
        assert not outside, outside
        assert not errors, errors
    finally:
        ctx.close()


def test_redoc_lists_the_operations_offline(browser, server):  # noqa: F811
    from playwright.sync_api import expect

    ctx, page, outside, errors = _offline_page(browser, server.base)
    try:
        page.goto(server.base + "/redoc")
        expect(page.locator("h2", has_text="Run Auction")).to_be_visible(timeout=30_000)
        expect(page.locator("h2", has_text="Create Campaign")).to_be_visible()
        assert not outside, outside
        assert not errors, errors
    finally:
        ctx.close()
