"""A leaderboard built once per session from the synthetic records of ``factory.sample_records``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from bilevelbench.leaderboard import build_leaderboard
from tests.leaderboard.factory import sample_records, write_record


@dataclass(frozen=True)
class Site:
    source: Path
    out: Path
    files: list[Path]


@pytest.fixture(scope="session")
def site(tmp_path_factory: pytest.TempPathFactory) -> Site:
    root = tmp_path_factory.mktemp("leaderboard")
    source = root / "results"
    for name, record in sample_records().items():
        write_record(source, name, record)
    out = root / "site"
    return Site(source=source, out=out, files=build_leaderboard(source, out))
