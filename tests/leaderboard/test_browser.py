"""The HTML page in a real browser: it loads cleanly, sorts, and runs nothing a submitter wrote.

Needs Debian's Chromium at /usr/bin/chromium (``apt-get install -y chromium``) and the Python
package ``playwright`` (its own browser download is not used). Missing either is a failure, not a skip.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from bilevelbench.leaderboard import dataset_slugs, group_records, load_records
from bilevelbench.leaderboard.table import COLUMNS
from tests.leaderboard.factory import SHA_A, SHA_B

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        pass


@pytest.fixture(scope="module")
def server(site) -> Iterator[str]:
    handler = functools.partial(_QuietHandler, directory=str(site.out))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} not found: the browser test needs Debian's Chromium; install it with "
                    "`apt-get install -y chromium`")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("the browser test needs the Python package playwright: pip install -e '.[test]' "
                    "(its browser download is not needed)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def _column(page, anchor: str, key: str) -> list[str | None]:
    index = [c.key for c in COLUMNS].index(key) + 1
    values = page.eval_on_selector_all(f"#{anchor} tbody tr td:nth-child({index})",
                                       "cells => cells.map(c => c.getAttribute('data-value'))")
    return [v if v else None for v in values]


def _expected(values: list[str | None], descending: bool) -> list[str | None]:
    present = sorted((v for v in values if v is not None), key=float, reverse=descending)
    return present + [v for v in values if v is None]


def test_page_in_chromium(site, server, browser):
    groups = group_records(load_records(site.source))
    anchors = {g.dataset.sha256: slug for g, slug in zip(groups, dataset_slugs(groups))}
    page = browser.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url} ({r.failure})"))
    page.on("response", lambda r: problems.append(f"HTTP {r.status}: {r.url}") if r.status >= 400 else None)
    try:
        page.goto(f"{server}/index.html", wait_until="load")

        rows = {sha: page.locator(f"#{anchor} tbody tr").count() for sha, anchor in anchors.items()}
        assert rows == {SHA_A: 8, SHA_B: 2}
        assert page.locator("table.sortable").count() == 2
        images = page.eval_on_selector_all("img", "imgs => imgs.map(i => [i.getAttribute('src'), i.complete, "
                                                  "i.naturalWidth])")
        assert len(images) == 4
        assert all(complete and width > 0 for _, complete, width in images), images

        anchor = anchors[SHA_A]
        gap_header = page.locator(f"#{anchor} thead th").nth([c.key for c in COLUMNS].index("gap_mean"))
        original = _column(page, anchor, "gap_mean")
        assert None in original  # nulls must stay last in both directions
        gap_header.click()
        ascending = _column(page, anchor, "gap_mean")
        assert ascending == _expected(original, descending=False)
        assert gap_header.get_attribute("aria-sort") == "ascending" and "\u25b2" in gap_header.inner_text()
        gap_header.click()
        assert _column(page, anchor, "gap_mean") == _expected(original, descending=True)
        assert gap_header.get_attribute("aria-sort") == "descending" and "\u25bc" in gap_header.inner_text()
        rank_header = page.locator(f"#{anchor} thead th").first
        assert rank_header.get_attribute("aria-sort") is None and "\u25b2" not in rank_header.inner_text()

        latency_header = page.locator(f"#{anchor} thead th").nth([c.key for c in COLUMNS].index("latency_ms_median"))
        latency_header.click()
        latencies = _column(page, anchor, "latency_ms_median")
        assert latencies == _expected(latencies, descending=False)
        rank_header.click()  # back to rank order: it sorts ascending on a first click
        assert _column(page, anchor, "rank") == [str(float(i)) for i in range(1, 9)]

        assert page.evaluate("typeof window.__pwned") == "undefined"
        assert page.locator("img[src=x]").count() == 0
        assert "<script>window.__pwned=1</script>|pipe" in page.locator(f"#{anchor} tbody").inner_text()
    finally:
        page.close()
    assert problems == []
