"""The dashboard in a real browser: Playwright driving Debian's chromium (never a downloaded browser).

One walk through the issue's story, on the real server (SQLite and PostgreSQL): the admin signs in and
creates an advertiser and a publisher; the advertiser signs in, creates two campaigns and edits one;
the publisher scores a query on the market map, runs the auction from there and bills it; the admin
finds it in the auction log; the advertiser sees the spend, the ledger entry, and pauses a campaign.

Screenshots of every page go to ``test-output/dashboard/<backend>/`` (git-ignored; set
``ADSPACE_TEST_OUTPUT`` to put them elsewhere). Without /usr/bin/chromium (``.ci/run`` installs it)
or the ``playwright`` package these tests skip locally and fail in CI (``CI=true``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from .conftest import ADMIN_KEY, new_advertiser, new_publisher

CHROMIUM = os.environ.get("ADSPACE_CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
OUT = Path(os.environ.get("ADSPACE_TEST_OUTPUT", Path(__file__).resolve().parents[2] / "test-output")) / "dashboard"

# A description that no other test's campaign is near; the query is the same text (distance 0).
DESCRIPTION = "waterproof ultramarathon trail shoes for rocky alpine races above the tree line"


def _unavailable(msg: str):
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(msg + " (CI must have it: .ci/run installs Debian's chromium; playwright is in requirements.lock)")
    pytest.skip(msg)


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright package is not installed")
    if not Path(CHROMIUM).exists():
        _unavailable(f"{CHROMIUM} is missing (apt-get install chromium)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield b
        finally:
            b.close()


class Dashboard:
    """One browser page on the dashboard, with the steps a person takes."""

    def __init__(self, page, base: str, shots: Path):
        from playwright.sync_api import expect

        expect.set_options(timeout=30_000)
        self.page, self.base, self.shots, self.expect = page, base, shots, expect
        self.errors: list[str] = []
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.n = 0
        self.done = False

    def shot(self, name: str) -> Path:
        self.n += 1
        path = self.shots / f"{self.n:02d}_{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def sign_in(self, key: str, role: str) -> None:
        p = self.page
        if p.locator("#signout").count():
            p.click("#signout")
        p.goto(self.base + "/")
        self.expect(p.locator("#signin")).to_be_visible()
        p.fill("#api-key", key)
        p.click("#signin-button")
        self.expect(p.locator("#role")).to_have_text(role)

    def tab(self, name: str) -> None:
        self.page.click(f"#tab-{name}")
        self.expect(self.page.locator(f"#view-{name}")).to_be_visible()

    def create_account(self, kind: str, name: str) -> str:
        p = self.page
        self.tab("accounts")
        p.select_option("#account-kind", kind)
        p.fill("#account-name-input", name)
        p.click("#create-account")
        key = p.locator("#new-key-value")
        self.expect(key).to_be_visible()
        self.expect(p.locator("#accounts-table")).to_contain_text(name)
        return key.inner_text().strip()

    def fill_campaign(self, **fields) -> None:
        p = self.page
        form = p.locator("#campaign-form")
        self.expect(form).to_be_visible()
        for name, value in fields.items():
            form.locator(f"[name={name}]").fill(str(value))
        p.click("#save-campaign")


def assert_labels_apart(page, box: str) -> None:
    """The chart's point labels neither overlap each other nor leave the drawing."""
    page.locator(f"{box} svg g.labels text").first.wait_for()
    rects = page.evaluate(
        f"""() => {{
        const svg = document.querySelector('{box} svg').getBoundingClientRect();
        return [...document.querySelectorAll('{box} svg g.labels text')].map((t) => {{
          const r = t.getBoundingClientRect();
          return [r.left - svg.left, r.top - svg.top, r.right - svg.left, r.bottom - svg.top, svg.width, svg.height];
        }});
    }}"""
    )
    assert rects
    for i, a in enumerate(rects):
        assert a[0] >= -0.5 and a[1] >= -0.5 and a[2] <= a[4] + 0.5 and a[3] <= a[5] + 0.5, a
        for b in rects[i + 1 :]:
            assert not (a[0] < b[2] - 0.5 and b[0] < a[2] - 0.5 and a[1] < b[3] - 0.5 and b[1] < a[3] - 0.5), (a, b)


def money_cell(row, column: int) -> str:
    return row.locator("td").nth(column).inner_text().strip()


@pytest.fixture
def dashboard(browser, model_server, backend):
    """A fresh browser context on the dashboard; on failure, a screenshot and the page's errors are kept."""
    shots = OUT / backend
    shots.mkdir(parents=True, exist_ok=True)
    for old in [*shots.glob("*.png"), *shots.glob("failure.*")]:
        old.unlink(missing_ok=True)  # another worker may be clearing the same folder
    ctx = browser.new_context(viewport={"width": 1300, "height": 900})
    page = ctx.new_page()
    page.set_default_timeout(60_000)
    d = Dashboard(page, model_server.base, shots)
    try:
        yield d
    finally:
        if not d.done:
            page.screenshot(path=str(shots / "failure.png"), full_page=True)
            (shots / "failure.txt").write_text("\n".join(d.errors))
        ctx.close()


def test_dashboard_story(dashboard, model_server):
    d = dashboard
    page, shots, expect = d.page, d.shots, d.expect
    suffix = os.urandom(3).hex()

    # Sign-in page; a wrong key is refused.
    page.goto(model_server.base + "/")
    expect(page.locator("#signin")).to_be_visible()
    page.fill("#api-key", "adsk_adv_not-a-key")
    page.click("#signin-button")
    expect(page.locator("#signin-error")).to_contain_text("unknown or revoked")
    d.shot("signin")

    # Admin: create an advertiser and a publisher (keys shown once).
    d.sign_in(ADMIN_KEY, "admin")
    adv_key = d.create_account("advertiser", f"Alpine Shoes {suffix}")
    pub_key = d.create_account("publisher", f"Trail Chat {suffix}")
    assert adv_key.startswith("adsk_adv_") and pub_key.startswith("adsk_pub_")
    d.shot("admin_accounts")

    # Advertiser: the form shows only the fields of the chosen targeting.
    d.sign_in(adv_key, "advertiser")
    d.tab("campaigns")
    page.click("#new-campaign")
    form = page.locator("#campaign-form")
    expect(form.locator("[name=description]")).to_be_visible()
    expect(form.locator("[name=keywords]")).to_be_hidden()
    form.locator("[name=kind]").select_option("keyword")
    expect(form.locator("[name=keywords]")).to_be_visible()
    for name in ("description", "sigma"):
        expect(form.locator(f"[name={name}]")).to_be_hidden()
    expect(page.locator("#reach")).to_be_hidden()
    form.locator("[name=kind]").select_option("embedding")
    expect(form.locator("[name=sigma]")).to_be_visible()
    # σ from example conversations, previewed at the form's bid, before any money is committed.
    page.locator("#reach summary").click()
    page.fill("#reach-customers", "which shoes for a rocky alpine ultramarathon?\ntrail shoes that grip on wet granite")
    page.fill("#reach-others", "how do I file my taxes?\ncheap flights to Lisbon")
    form.locator("[name=bid]").fill("2.00")
    page.click("#reach-fit")
    expect(page.locator("#reach-sigma")).to_contain_text("Proposed σ")
    expect(page.locator("#reach-table tbody tr")).to_have_count(4)
    page.click("#reach-use-sigma")
    assert form.locator("[name=sigma]").input_value() != "0.8"
    d.shot("advertiser_reach")
    page.click("#campaign-form button.secondary:has-text('Cancel')")

    # Advertiser: create two campaigns at the same description, edit one.
    for name, bid in ((f"Summit {suffix}", "2.00"), (f"Ridge {suffix}", "1.50")):
        page.click("#new-campaign")
        d.fill_campaign(
            name=name,
            description=DESCRIPTION,
            sigma="0.5",
            bid=bid,
            budget="50",
            title=f"{name} shoes",
            url="https://example.com/alpine",
            body="Grip on wet granite.",
        )
        expect(page.locator("#campaigns-table")).to_contain_text(name)
    page.click("#new-campaign")  # a third, elsewhere: outside the relevance gate below, but on the slice
    d.fill_campaign(
        name=f"Socks {suffix}",
        description="warm merino wool hiking socks for winter",
        sigma="0.8",
        bid="1.00",
        budget="50",
        title="Warm socks",
        url="https://example.com/socks",
    )
    expect(page.locator("#campaigns-table")).to_contain_text(f"Socks {suffix}")
    ridge = page.locator("#campaigns-table tr", has_text=f"Ridge {suffix}")
    ridge.locator("button.edit").click()
    d.fill_campaign(bid="1.25")
    ridge = page.locator("#campaigns-table tr", has_text=f"Ridge {suffix}")
    expect(ridge.locator("td").nth(3)).to_have_text("1.25")
    d.shot("advertiser_campaigns")

    # Publisher: an empty query is refused in plain words; then score the query and run the auction.
    d.sign_in(pub_key, "publisher")
    d.tab("market")
    page.click("#market-score")
    expect(page.locator("#toast")).to_contain_text("Query: type a conversation")
    expect(page.locator("#toast")).not_to_contain_text("Value error")
    page.fill("#market-query", DESCRIPTION)
    page.fill("#market-tau", "0.01")  # only campaigns at (almost) this very point compete
    page.click("#market-score")
    expect(page.locator("#market-price")).to_have_text("1.25")  # Clarke pivot: the runner-up's value at distance 0
    expect(page.locator("#market-why")).to_contain_text("Clarke pivot")
    page.click("#market-run")
    expect(page.locator("#market-auction-id")).to_be_visible()
    auction_id = page.locator("#market-auction-id").inner_text().strip()
    assert re.fullmatch(r"auc_[A-Za-z0-9_-]{20,}", auction_id)
    expect(page.locator("#market-winner")).to_have_text(f"Summit {suffix}")  # names are public to publishers
    expect(page.locator("#market-price")).to_have_text("1.25")
    expect(page.locator("#projection svg")).to_be_visible(), d.errors
    # What a publisher may not see is counted, not listed as rows of dashes; no empty slice card.
    for cell in page.locator("#market-table td").all_inner_texts():
        assert cell.strip() != "–", page.locator("#market-table").inner_text()
    expect(page.locator("#slice-card")).to_have_count(0)
    d.shot("publisher_market_map")

    # Publisher: the auction is held until billed; bill it (the ad was shown).
    d.tab("auctions")
    row = page.locator(f'#auctions-table tr[data-id="{auction_id}"]')
    expect(row).to_contain_text("held")
    row.locator("button.bill").click()
    row = page.locator(f'#auctions-table tr[data-id="{auction_id}"]')
    expect(row).to_contain_text("billed")
    assert "…" not in row.locator("td").nth(3).inner_text()
    expect(row.locator("td").nth(3)).to_have_text(f"Summit {suffix} shoes")
    why = row.locator("span.why")
    assert why.evaluate("e => getComputedStyle(e).textOverflow") == "ellipsis"
    assert why.get_attribute("title")  # the whole explanation on hover
    d.shot("publisher_auctions")
    # Signed in again (a fresh session), the table still names the ad, not its campaign id.
    d.sign_in(pub_key, "publisher")
    d.tab("auctions")
    row = page.locator(f'#auctions-table tr[data-id="{auction_id}"]')
    expect(row.locator("td").nth(3)).to_have_text(f"Summit {suffix} shoes")
    d.tab("performance")
    expect(page.locator("#kpi-revenue")).to_have_text("1.00")  # 80 % of 1.25
    d.shot("publisher_performance")

    # Admin: the auction log shows it, billed, with names; the market map names every campaign.
    d.sign_in(ADMIN_KEY, "admin")
    d.tab("log")
    row = page.locator(f'#log-table tr[data-id="{auction_id}"]')
    expect(row).to_contain_text("billed")
    expect(row).to_contain_text(f"Summit {suffix}")
    expect(row).to_contain_text(f"Alpine Shoes {suffix}")
    expect(row).to_contain_text(f"Trail Chat {suffix}")
    expect(row).to_contain_text("1.25")
    assert re.fullmatch(r"1 auction|\d+ auctions", page.locator("#log-total").inner_text().strip())
    d.shot("admin_auction_log")
    d.tab("revenue")
    expect(page.locator("#kpi-ledger")).to_contain_text("balanced")
    d.shot("admin_revenue")
    d.tab("market")
    page.fill("#market-query", DESCRIPTION)
    page.fill("#market-tau", "0.01")
    page.click("#market-score")
    table = page.locator("#market-table")
    expect(table.locator("tr.winner")).to_contain_text(f"Summit {suffix}")
    expect(table.locator("tr.runner")).to_contain_text(f"Ridge {suffix}")
    expect(page.locator("#slice svg")).to_be_visible()  # Summit (t = 0) to Socks (t = 1)
    expect(page.locator("#slice-intervals")).to_contain_text(f"Summit {suffix} [")
    expect(page.locator("#slice-intervals")).to_contain_text(f"Socks {suffix} [")
    expect(page.locator("#projection svg")).to_be_visible()
    assert_labels_apart(page, "#projection")
    d.shot("admin_market_map")

    # Advertiser: the spend after billing, the ledger entry, win rate; pause the other campaign.
    d.sign_in(adv_key, "advertiser")
    d.tab("campaigns")
    summit = page.locator("#campaigns-table tr", has_text=f"Summit {suffix}")
    expect(summit.locator(".spent")).to_have_text("1.25")
    ridge = page.locator("#campaigns-table tr", has_text=f"Ridge {suffix}")
    ridge.locator("button.toggle").click()
    expect(page.locator("#campaigns-table tr", has_text=f"Ridge {suffix}")).to_contain_text("paused")
    d.shot("advertiser_spend")
    d.tab("performance")
    expect(page.locator("#kpi-spend")).to_have_text("1.25")
    expect(page.locator("#kpi-wins")).to_have_text("1")
    expect(page.locator("#report-table")).to_contain_text(f"Summit {suffix}")
    d.shot("advertiser_performance")
    d.tab("ledger")
    expect(page.locator("#ledger-balance")).to_have_text("-1.25")
    expect(page.locator("#ledger-table")).to_contain_text(auction_id[:12])
    d.shot("advertiser_ledger")
    # With Ridge paused, Summit wins unopposed at this point. An advertiser sees its own campaign's
    # score, never the preview's price (in general the runner-up's, a rival's, reported value).
    d.tab("market")
    page.fill("#market-query", DESCRIPTION)
    page.fill("#market-tau", "0.01")
    page.click("#market-score")
    expect(page.locator("#market-winner")).to_have_text(f"Summit {suffix}")
    expect(page.locator("#market-price")).to_have_text("–")
    expect(page.locator("#market-table")).to_contain_text("paused")
    expect(page.locator("#slice svg")).to_be_visible()
    d.shot("advertiser_market_map")

    # The session's key stays in this tab only; signing out forgets it.
    assert page.evaluate("sessionStorage.getItem('adspace.key')") == adv_key
    page.click("#signout")
    assert page.evaluate("sessionStorage.getItem('adspace.key')") is None
    expect(page.locator("#signin")).to_be_visible()
    # No script errors (the refused key's 401 at sign-in is the one expected failed request).
    assert not [e for e in d.errors if "401" not in e], d.errors
    assert len(list(shots.glob("*.png"))) >= 12
    d.done = True


@pytest.mark.parametrize("width", [390])
def test_dashboard_at_phone_width(browser, model_server, backend, width):
    """At 390 px: the tabs stay reachable, nothing hides behind the page's right edge, forms stack."""
    from playwright.sync_api import expect

    shots = OUT / backend / f"phone-{width}"
    shots.mkdir(parents=True, exist_ok=True)
    adv, pub = new_advertiser(model_server, "Phone Shoes"), new_publisher(model_server, "Phone Chat")
    adv.ok(
        "POST",
        "/v1/campaigns",
        201,
        json={
            "name": "Phone campaign",
            "description": DESCRIPTION,
            "sigma": 0.6,
            "bid_micros": 1_000_000,
            "budget_micros": 10**8,
            "creative": {"title": "Alpine", "url": "https://example.com/a"},
        },
    )
    ctx = browser.new_context(viewport={"width": width, "height": 844}, device_scale_factor=2, is_mobile=True)
    page = ctx.new_page()
    page.set_default_timeout(60_000)
    d = Dashboard(page, model_server.base, shots)
    try:
        for key, role, tabs in (
            (ADMIN_KEY, "admin", ("log", "revenue", "accounts", "market")),
            (adv.key, "advertiser", ("campaigns", "performance", "ledger", "market")),
            (pub.key, "publisher", ("auctions", "performance", "ledger", "market")),
        ):
            d.sign_in(key, role)
            for name in tabs:
                tab = page.locator(f"#tab-{name}")
                tab.scroll_into_view_if_needed()
                expect(tab).to_be_visible()
                box = tab.bounding_box()
                assert box["width"] > 30 and box["height"] > 16, (name, box)
                d.tab(name)
                if name == "campaigns":
                    page.click("#new-campaign")
                    expect(page.locator("#campaign-form [name=keywords]")).to_be_hidden()
                if name == "market":
                    page.fill("#market-query", DESCRIPTION)
                    page.click("#market-score")
                    expect(page.locator("#market-outcome")).to_be_visible()
                over = page.evaluate("document.documentElement.scrollWidth")
                assert over <= width + 1, (role, name, over)
                d.shot(f"{role}_{name}")
        assert not [e for e in d.errors if "401" not in e], d.errors
        d.done = True
    finally:
        if not d.done:
            page.screenshot(path=str(shots / "failure.png"), full_page=True)
        ctx.close()
