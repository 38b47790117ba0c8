"""Markdown, HTML and SVG output: content, escaping, determinism."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

from bilevelbench.leaderboard import build_leaderboard, dataset_slugs, group_records, load_records
from bilevelbench.leaderboard.markdown import escape_markdown
from bilevelbench.leaderboard.table import COLUMNS, format_rate, format_sci
from tests.leaderboard.factory import HOSTILE, IMG, SCRIPT


def _unescape_pairs(line: str) -> str:
    """``line`` with every backslash-escaped character removed: what Markdown may interpret."""
    return re.sub(r"\\.", "", line)


def _cells(row: str) -> list[str]:
    """Split a Markdown table row on its unescaped pipes."""
    cells, current, i = [], "", 0
    while i < len(row):
        if row[i] == "\\" and i + 1 < len(row):
            current += row[i:i + 2]
            i += 2
            continue
        if row[i] == "|":
            cells.append(current)
            current = ""
        else:
            current += row[i]
        i += 1
    cells.append(current)
    return [c.strip() for c in cells[1:-1]]


def test_files_written(site):
    names = sorted(str(p.relative_to(site.out)) for p in site.files)
    slugs = dataset_slugs(group_records(load_records(site.source)))
    expected = ["LEADERBOARD.md", "index.html"]
    expected += [f"plots/{s}-{kind}.svg" for s in slugs for kind in ("pareto", "distribution")]
    assert names == sorted(expected)
    assert all(re.fullmatch(r"[a-z0-9-]+", s) for s in slugs)
    assert site.files[:2] == [site.out / "LEADERBOARD.md", site.out / "index.html"]


def test_escape_markdown():
    assert escape_markdown("a|b") == r"a\|b"
    assert escape_markdown("**x**\nnext\r\nline") == r"\*\*x\*\* next line"
    assert escape_markdown("<b>[l](u) _i_ `c` # \\") == r"\<b\>\[l\](u) \_i\_ \`c\` \# \\"


def test_markdown_tables_keep_their_columns_and_escape_everything(site):
    md = (site.out / "LEADERBOARD.md").read_text(encoding="utf-8")
    rows = [line for line in md.splitlines() if line.startswith("|")]
    assert len(rows) == (2 + 8) + (2 + 2)  # header + rule + rows, for both datasets
    for row in rows:
        assert len(_cells(row)) == len(COLUMNS), row
        assert not re.search(r"[<>*_\[\]`#]", _unescape_pairs(row)), row
    assert SCRIPT not in md and IMG not in md
    assert r"\<script\>window.\_\_pwned=1\</script\>\|pipe" in md
    for line in md.splitlines():
        # Outside our own emphasis markers, nothing a submitter wrote is live markup.
        live = _unescape_pairs(line)
        assert "<" not in live and "[" not in live.replace("![", "").split("](")[0], line
    assert re.search(r"!\[[^\n]*\]\(plots/[a-z0-9-]+-pareto\.svg\)", md)
    assert "1e-12" in md  # the gap floor is stated in the caption


def test_markdown_number_formats(site):
    md = (site.out / "LEADERBOARD.md").read_text(encoding="utf-8")
    exact = next(line for line in md.splitlines() if line.startswith("| 1 | exact 0.1.0 | 0 |"))
    assert "100.00%" in exact and "50.0" in exact
    scored = next(line for line in md.splitlines() if "bold" in line and line.startswith("| 2 |"))
    assert "1.00e-05" in scored and "0.100 (unverified)" in scored and "score (unverified)" in scored
    assert format_sci(None) == "\u2014" and format_sci(2.5e-7) == "2.50e-07"
    assert format_rate(0.99999) == "99.99%" and format_rate(1.0) == "100.00%"


def test_html_escapes_submitter_strings(site):
    page = (site.out / "index.html").read_text(encoding="utf-8")
    assert page.count("<script") == 1  # our own, at the end
    assert SCRIPT not in page and IMG not in page
    assert "onerror=\"" not in page
    assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;|pipe" in page
    assert "&lt;img src=x onerror=&quot;window.__pwned=2&quot;&gt;" in page
    for text in HOSTILE[2:5]:
        assert text.replace('"', "&quot;").replace("'", "&#x27;").replace("<", "&lt;") in page
    script = page[page.index("<script>"):]
    assert "pwned" not in script and "fastnet" not in script
    assert "http://" not in page and "https://" not in page and "//cdn" not in page
    assert 'http-equiv="Content-Security-Policy"' in page


def test_svgs_have_no_date_and_no_live_markup(site):
    for path in site.out.glob("plots/*.svg"):
        svg = path.read_text(encoding="utf-8")
        assert "<dc:date>" not in svg
        assert "<script" not in svg and "<img" not in svg
        assert "<text" not in svg  # text is drawn as paths


def test_two_builds_give_identical_bytes(site, tmp_path: Path):
    source = tmp_path / "copy-of-results"
    shutil.copytree(site.source, source)
    out = tmp_path / "again"
    files = build_leaderboard(source, out)
    assert [p.relative_to(out) for p in files] == [p.relative_to(site.out) for p in site.files]
    for a, b in zip(site.files, files):
        assert a.read_bytes() == b.read_bytes(), a.name


def test_importing_the_package_does_not_import_matplotlib():
    code = "import sys, bilevelbench.leaderboard; assert 'matplotlib' not in sys.modules, 'matplotlib imported'"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_dollar_signs_are_not_mathtext(tmp_path: Path):
    from tests.leaderboard.factory import make_record, write_record

    write_record(tmp_path / "r", "a.json", make_record(solver=r"$\undefinedmacro{$", dataset="$x$ data"))
    write_record(tmp_path / "r", "b.json", make_record(solver="$$", version="$", dataset="$x$ data", latency=1.0))
    files = build_leaderboard(tmp_path / "r", tmp_path / "out")
    assert len(files) == 4


def test_each_family_shows_its_own_violation_columns(tmp_path: Path):
    """Mixed-integer tables show the paper's two violation rates, dcopf tables balance, limits and overload cost,
    instead of the bilevel coupling column; values come from the records."""
    from tests.leaderboard.factory import make_record, write_record

    mi = make_record(dataset="mimpc-tank")
    mi["dataset"]["family"] = "mimpc-tank"
    mi["metrics"].update(integer_violation_rate=0.004, continuous_violation_rate=0.032)
    grid = make_record(dataset="dcopf-case57", sha256="ab" * 32)
    grid["dataset"]["family"] = "dcopf"
    grid["metrics"].update(balance_violation_rate=0.0, generator_violation_rate=0.5,
                           thermal_violation_cost_mean=1234.5)
    write_record(tmp_path / "r", "mi.json", mi)
    write_record(tmp_path / "r", "grid.json", grid)
    write_record(tmp_path / "r", "bqp.json", make_record(dataset="bqp-3x2", sha256="cd" * 32))
    build_leaderboard(tmp_path / "r", tmp_path / "out")
    text = (tmp_path / "out" / "LEADERBOARD.md").read_text()
    sections = {s.split("\n", 1)[0]: s for s in text.split("\n## ")[1:]}
    tank = next(v for k, v in sections.items() if k.startswith("mimpc-tank"))
    assert "integer-only violated" in tank and "coupling violation mean" not in tank
    row = next(line for line in tank.splitlines() if line.startswith("| 1 "))
    assert "0.40%" in row and "3.20%" in row
    dc = next(v for k, v in sections.items() if k.startswith("dcopf-case57"))
    assert "balance violated" in dc and escape_markdown("overload cost mean ($)") in dc
    row = next(line for line in dc.splitlines() if line.startswith("| 1 "))
    assert "50.00%" in row and "1.23e+03" in row
    bqp = next(v for k, v in sections.items() if k.startswith("bqp-3x2"))
    assert "coupling violation mean" in bqp and "balance violated" not in bqp
    html = (tmp_path / "out" / "index.html").read_text()
    assert "overload cost mean ($)" in html and "integer-only violated" in html


def test_verifiable_families_show_the_worst_case_beside_the_mean_gap(tmp_path: Path):
    """dcopf supports verify-proxy: its tables show the worst case found and the certified bound (a dash for a
    record without them); bqp does not, so its tables have no such columns."""
    from tests.leaderboard.factory import make_record, write_record

    verified = make_record(dataset="dcopf-case57", sha256="ab" * 32, solver="proxy-pwl")
    verified["dataset"]["family"] = "dcopf"
    verified["metrics"].update(worst_case_gap_found=0.0608, worst_case_upper_bound=0.0609)
    plain = make_record(dataset="dcopf-case57", sha256="ab" * 32, solver="proxy-sigmoid", gap_mean=1e-3)
    plain["dataset"]["family"] = "dcopf"
    write_record(tmp_path / "r", "verified.json", verified)
    write_record(tmp_path / "r", "plain.json", plain)
    write_record(tmp_path / "r", "bqp.json", make_record(dataset="bqp-3x2", sha256="cd" * 32))
    build_leaderboard(tmp_path / "r", tmp_path / "out")
    text = (tmp_path / "out" / "LEADERBOARD.md").read_text()
    sections = {s.split("\n", 1)[0]: s for s in text.split("\n## ")[1:]}
    dc = next(v for k, v in sections.items() if k.startswith("dcopf-case57"))
    header = next(line for line in dc.splitlines() if line.startswith("| rank"))
    cells = [c.strip() for c in header.strip("|").split("|")]
    assert cells.index("worst-case gap found") == cells.index("gap max") + 1
    assert cells.index("certified upper bound") == cells.index("gap max") + 2
    row = next(line for line in dc.splitlines() if "proxy-pwl" in line)
    assert "6.08e-02" in row and "6.09e-02" in row
    other = [c.strip() for c in next(line for line in dc.splitlines() if "proxy-sigmoid" in line).strip("|").split("|")]
    assert other[cells.index("worst-case gap found")] == other[cells.index("certified upper bound")] == "\u2014"
    bqp = next(v for k, v in sections.items() if k.startswith("bqp-3x2"))
    assert "worst-case gap found" not in bqp
