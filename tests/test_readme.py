"""The README's two quick-start commands are exactly what CI runs."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ci_runs_the_readme_commands():
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)\n```", readme, flags=re.DOTALL)
    assert len(blocks) >= 2
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
    for command in blocks[:2]:
        assert command.strip() in ci_lines
    assert "pytest" in blocks[1]


def test_readme_comparison_table_is_the_committed_records():
    """The numbers of the README's paper comparison are printed from the records, never typed by hand."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("paper_table", ROOT / "leaderboards" / "paper_table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    readme = (ROOT / "README.md").read_text()
    assert module.HEADER in readme
    for row in module.rows(ROOT):
        assert row in readme, f"README lacks: {row}"


def test_baselines_doc_miqp_table_is_the_committed_records():
    """The MI-MPC comparison with Le, Xie and Mangharam's figures in docs/baselines.md is printed from the records."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("miqp_paper_table", ROOT / "leaderboards" / "miqp_paper_table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    doc = (ROOT / "docs" / "baselines.md").read_text()
    assert module.HEADER in doc
    rows = module.rows(ROOT)
    assert any("mimpc-tank | hybrid (as published)" in row for row in rows)
    for row in rows:
        assert row in doc, f"docs/baselines.md lacks: {row}"


def test_ccd_doc_table_is_the_committed_records():
    """The control co-design comparison in docs/families/ccd.md is printed from the records."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("ccd_paper_table", ROOT / "leaderboards" / "ccd_paper_table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    doc = (ROOT / "docs" / "families" / "ccd.md").read_text()
    assert module.HEADER in doc
    rows = module.rows(ROOT)
    assert any("two-tank | L2O trained to convergence" in row for row in rows)
    assert any("HVAC | L2O trained to convergence" in row for row in rows)
    for row in rows:
        assert row in doc, f"docs/families/ccd.md lacks: {row}"
