"""docs/bigrad-combinatorial.md holds exactly what leaderboards/bigrad_tables.py prints from the committed records
(numbers are never typed by hand), and every released interdiction and adversarial-control set has a row for
every reference method."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _module():
    spec = importlib.util.spec_from_file_location("bigrad_tables", ROOT / "leaderboards" / "bigrad_tables.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_doc_holds_the_printed_tables():
    module = _module()
    doc = (ROOT / "docs" / "bigrad-combinatorial.md").read_text()
    for family in module.TABLES:
        rows = module.rows(family, ROOT)
        assert rows, f"no committed records for {family}"
        for row in rows:
            assert row in doc, f"docs/bigrad-combinatorial.md lacks: {row}"
    control = module.control_rows(ROOT)
    assert control, "no committed records for adv-control"
    for row in control:
        assert row in doc, f"docs/bigrad-combinatorial.md lacks: {row}"


def test_every_committed_interdiction_set_lists_every_method():
    module = _module()
    for family, names in module.TABLES.items():
        for name in names:
            folder = ROOT / "leaderboards" / "results" / name
            if folder.is_dir():
                assert {p.stem for p in folder.glob("*.json")} == set(module.METHODS), name
    for name in module.CONTROL_SETS:
        folder = ROOT / "leaderboards" / "results" / name
        assert folder.is_dir(), name
        assert {p.stem for p in folder.glob("*.json")} == set(module.CONTROL_METHODS), name
