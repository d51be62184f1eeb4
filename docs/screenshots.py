"""Retake the dashboard screenshots in docs/img/ on a fresh ``adspace serve --demo`` (headless chromium).

    .venv/bin/python docs/screenshots.py

Starts the exchange on a free loopback port with a throwaway SQLite database, signs in with the keys
it prints, and saves ``dashboard-reach.png``, ``dashboard-advertiser.png``,
``dashboard-market-map.png`` and ``dashboard-phone.png``.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import expect, sync_playwright

ROOT = Path(__file__).resolve().parents[1]
IMG = ROOT / "docs" / "img"
CHROMIUM = os.environ.get("ADSPACE_CHROMIUM", "/usr/bin/chromium")


def main() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    tmp = Path(tempfile.mkdtemp())
    log = tmp / "server.log"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "ADSPACE_ADMIN_KEY": ""}
    cmd = [sys.executable, "-m", "adspace.cli", "serve", "--port", str(port), "--demo"]
    cmd += ["--database-url", f"sqlite:///{tmp / 'demo.db'}"]
    proc = subprocess.Popen(cmd, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    try:
        for _ in range(1200):
            try:
                if urllib.request.urlopen(base + "/healthz", timeout=1).status == 200:
                    break
            except OSError:
                time.sleep(0.25)
        text = log.read_text()
        keys = dict(re.findall(r"^\s+(advertiser [^:]+|publisher [^:]+): (adsk_\S+)$", text, flags=re.M))
        admin = re.search(r"Admin API key \(shown once, store it\): (adsk_adm_\S+)", text).group(1)
        shoot(base, admin, keys)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def sign_in(page, base: str, key: str) -> None:
    page.goto(base + "/")
    if page.locator("#signout").count():
        page.click("#signout")
    page.fill("#api-key", key)
    page.click("#signin-button")
    expect(page.locator("#role")).to_be_visible()


def shoot(base: str, admin: str, keys: dict[str, str]) -> None:
    expect.set_options(timeout=60_000)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        sign_in(page, base, keys["advertiser TrailCo"])
        page.click("#tab-campaigns")
        page.click("#new-campaign")
        form = page.locator("#campaign-form")
        form.locator("[name=name]").fill("Trail socks")
        form.locator("[name=bid]").fill("1.50")
        page.locator("#reach summary").click()
        page.fill(
            "#reach-customers",
            "\n".join(
                [
                    "which socks stop blisters on long trail runs?",
                    "my feet get wet and sore on muddy ultramarathons",
                    "best merino running socks for mountain races",
                    "what socks do trail runners wear in winter?",
                ]
            ),
        )
        page.fill(
            "#reach-others",
            "\n".join(
                [
                    "how do I file my taxes?",
                    "cheap flights to Lisbon",
                    "a quick vegetarian dinner",
                    "how do I set up postgres replication?",
                    "a first guitar for an adult beginner",
                    "how do I season a cast iron skillet?",
                    "tips for a job interview",
                    "board games for four",
                ]
            ),
        )
        page.click("#reach-fit")
        expect(page.locator("#reach-table")).to_be_visible()
        page.locator("#campaign-form-card").screenshot(path=str(IMG / "dashboard-reach.png"))
        page.click("#tab-performance")
        expect(page.locator("#kpi-spend")).to_be_visible()
        expect(page.locator("#demo-note")).to_contain_text("simulated")
        page.wait_for_timeout(500)
        page.screenshot(path=str(IMG / "dashboard-advertiser.png"), full_page=True)

        sign_in(page, base, admin)
        page.click("#tab-market")
        page.fill("#market-query", "Which trail shoes grip on wet rock, and how should I train for my first marathon?")
        page.click("#market-score")
        expect(page.locator("#slice svg")).to_be_visible()
        expect(page.locator("#projection svg")).to_be_visible()
        page.wait_for_timeout(500)
        page.screenshot(path=str(IMG / "dashboard-market-map.png"), full_page=True)

        phone = browser.new_page(viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True)
        sign_in(phone, base, keys["publisher Demo Chat App"])
        phone.click("#tab-market")
        phone.fill("#market-query", "my sourdough loaves come out flat, what am I doing wrong?")
        phone.click("#market-score")
        expect(phone.locator("#market-outcome")).to_be_visible()
        phone.wait_for_timeout(500)
        phone.screenshot(path=str(IMG / "dashboard-phone.png"), full_page=False)
        browser.close()


if __name__ == "__main__":
    main()
