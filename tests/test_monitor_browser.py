"""The dashboard in a real headless browser (Debian's chromium and chromium-driver, which .ci/run
installs): the page renders every underlying and its groups, and updates when an event arrives."""

from __future__ import annotations

import json
import shutil
import signal
import time
from pathlib import Path

import pytest

from monitor_support import (demo_book, example_limits, free_port, http_get, start_monitor, stop, wait_for,
                             write_jsonl)

pytest.importorskip("aiohttp")
selenium = pytest.importorskip("selenium", reason="selenium is not installed (test extra)")

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver") or ("/usr/bin/chromedriver" if Path("/usr/bin/chromedriver").exists() else None)

pytestmark = pytest.mark.skipif(
    CHROMIUM is None or DRIVER is None,
    reason="chromium and chromium-driver are not installed here (apt-get install chromium chromium-driver; "
           ".ci/run installs them)")


def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1600,1400"):
        opts.add_argument(arg)
    opts.binary_location = CHROMIUM
    return webdriver.Chrome(service=Service(DRIVER), options=opts)


def test_dashboard_renders_groups_and_updates_on_an_event(tmp_path):
    from selenium.webdriver.common.by import By

    book = demo_book(tmp_path / "book", n=600)
    day = write_jsonl(tmp_path / "day.jsonl", [
        {"type": "index", "ts": "2026-11-20T08:00:00Z", "underlying": "BTC", "spot": 97000.0}])
    port = free_port()
    log = tmp_path / "monitor.log"
    proc = start_monitor(str(book), "--limits", str(example_limits()), "--source", f"file:{day}",
                         "--state", str(tmp_path / "st"), "--http", f"127.0.0.1:{port}", "--backend", "cpu", log=log)
    base = f"http://127.0.0.1:{port}"
    driver = None
    try:
        wait_for(lambda: http_get(base + "/healthz")[0] == 200, 120, what="/healthz ok")
        driver = browser()
        driver.get(base + "/")
        wait_for(lambda: driver.find_elements(By.CSS_SELECTOR, "section.card[data-underlying]"), 30,
                 what="cards rendered")
        cards = {c.get_attribute("data-underlying") for c in
                 driver.find_elements(By.CSS_SELECTOR, "section.card[data-underlying]")}
        assert {"BTC", "ETH", "SOL"} <= cards
        row_key = "BTC|desk|desk=options-mm"
        row = driver.find_element(By.CSS_SELECTOR, f'tr[data-group="{row_key}"]')
        before = row.find_element(By.CSS_SELECTOR, "td.net").text
        assert row.find_element(By.CSS_SELECTOR, ".chip").text in ("ok", "warn", "breach", "critical")
        assert driver.find_element(By.ID, "as-of").text.startswith("2026-11-20 08:00")
        publish_before = int(driver.execute_script("return document.body.dataset.publish"))
        shot = tmp_path / "dashboard.png"
        driver.save_screenshot(str(shot))
        assert shot.stat().st_size > 10_000

        # a fill of 500 BTC on the options-mm desk arrives: the page changes without a reload
        with open(day, "a") as fh:
            fh.write(json.dumps({"type": "fill", "ts": "2026-11-20T08:00:05Z", "trade_id": "browser-1",
                                 "instrument": "BTC", "quantity": 500.0, "price": 97000.0,
                                 "tags": {"desk": "options-mm", "book": "btc-vol", "account": "btc-vol-01"}}) + "\n")

        def updated():
            row = driver.find_element(By.CSS_SELECTOR, f'tr[data-group="{row_key}"]')
            now = row.find_element(By.CSS_SELECTOR, "td.net").text
            return now != before and int(driver.execute_script("return document.body.dataset.publish")) > \
                publish_before and now

        after = wait_for(updated, 30, what="the row to update")
        to_number = lambda s: float(s.replace(",", "").replace("+", ""))  # noqa: E731
        assert to_number(after) - to_number(before) == pytest.approx(500.0, rel=1e-6)
        alerts = driver.find_elements(By.CSS_SELECTOR, "#alerts li")
        assert alerts and "raised" in alerts[-1].text
        assert driver.find_element(By.ID, "conn").text == "live"
        errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert not errors, errors
    finally:
        if driver is not None:
            driver.quit()
        stop(proc, signal.SIGTERM)
