"""The service's leaderboard page in headless Chromium after uploads through the API: it shows the public
scores, loads its plots, and runs nothing a submitter wrote (a script and an onerror handler in a solver name)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.serve.conftest import add_team, predictions

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
HOSTILE = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">'


def test_leaderboard_page_in_chromium(tmp_path: Path, service_data: Path, start_service) -> None:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} not found: the browser test needs Debian's Chromium (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    db = f"sqlite:///{tmp_path / 'service.db'}"
    tokens = {team: add_team(db, team) for team in ("alpha", "<b>beta</b>")}
    service = start_service(db)
    service.tokens = tokens
    ids = [("alpha", service.submit("alpha", predictions(service_data, tmp_path / "a.h5", solver_name="clean"))),
           ("<b>beta</b>", service.submit("<b>beta</b>", predictions(service_data, tmp_path / "b.h5", shift=0.03,
                                                                     solver_name=HOSTILE)))]
    for team, response in ids:
        assert response.status_code == 202, response.text
        sid = response.json()["id"]
        assert service.wait_done(team, [sid])[sid]["status"] == "done"
    problems: list[str] = []
    dialogs: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.on("response", lambda r: problems.append(f"HTTP {r.status}: {r.url}") if r.status >= 400 else None)
            page.goto(f"{service.url}/", wait_until="load")
            table = page.locator("table.sortable")
            assert table.count() == 1
            rows = page.locator("table.sortable tbody tr")
            assert rows.count() == 2
            text = page.locator("table.sortable tbody").inner_text()
            # shown as text, exactly as sent (cut to the cell's length)
            assert "alpha: clean" in text and f"<b>beta</b>: {HOSTILE[:50]}" in text, text
            assert "public 6 of 30" in page.locator("h2").first.inner_text()
            assert page.evaluate("typeof window.__pwned") == "undefined"
            assert page.locator("img[src=x]").count() == 0 and page.locator("tbody b").count() == 0
            images = page.eval_on_selector_all("img", "imgs => imgs.map(i => [i.complete, i.naturalWidth])")
            assert images and all(done and width > 0 for done, width in images), images
        finally:
            browser.close()
    assert problems == [] and dialogs == []
