"""The committed leaderboard is what its committed records render to, and every record is tracked."""

from __future__ import annotations

import subprocess
from pathlib import Path

from bilevelbench.leaderboard import build_leaderboard

ROOT = Path(__file__).resolve().parent.parent
BOARD = ROOT / "leaderboards"


def test_committed_leaderboard_matches_its_records(tmp_path):
    records = sorted((BOARD / "results").rglob("*.json"))
    assert records, "no committed results records"
    build_leaderboard(BOARD, tmp_path)
    assert (tmp_path / "LEADERBOARD.md").read_text() == (BOARD / "LEADERBOARD.md").read_text()
    assert (tmp_path / "index.html").read_text() == (BOARD / "index.html").read_text()


def test_records_are_not_git_ignored():
    records = [str(p.relative_to(ROOT)) for p in (BOARD / "results").rglob("*.json")]
    ignored = subprocess.run(["git", "-C", str(ROOT), "check-ignore", *records], capture_output=True, text=True,
                             check=False).stdout.split()
    assert ignored == []
