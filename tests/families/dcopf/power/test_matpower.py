"""The MATPOWER parser on the shipped PGLib-OPF cases, a hand-written quirks case and malformed files."""

from __future__ import annotations

import hashlib
import re
import tomllib
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

from bilevelbench.errors import CaseFormatError, MissingDataError, SchemaError
from bilevelbench.families.dcopf.power import SHIPPED_CASES, PowerCase, load_case, parse_case

HERE = Path(__file__).parent
QUIRKS = HERE / "cases" / "quirks.m"
PEGASE_1354 = Path("/work/shared/data/pglib/pglib_opf_case1354_pegase.m")
CASES = resources.files("bilevelbench.families.dcopf.power") / "cases"

# FACTS.md, "PGLib-OPF v23.07": buses, generators, branches.
COUNTS = {
    "pglib_opf_case14_ieee": (14, 5, 20),
    "pglib_opf_case30_ieee": (30, 6, 41),
    "pglib_opf_case57_ieee": (57, 7, 80),
    "pglib_opf_case118_ieee": (118, 54, 186),
    "pglib_opf_case300_ieee": (300, 69, 411),
}


@pytest.fixture(scope="module")
def shipped() -> dict[str, PowerCase]:
    return {stem: load_case(stem) for stem in SHIPPED_CASES}


def _raw_matrix(text: str, section: str) -> list[list[float]]:
    """Rows of ``mpc.<section>`` read the naive way (PGLib layout: one row per line), to check the parser against."""
    lines = text.split("\n")
    start = lines.index(f"mpc.{section} = [") + 1
    rows = []
    for line in lines[start:]:
        if line.startswith("];"):
            return rows
        rows.append([float(v) for v in line.split("%")[0].replace(";", " ").split()])
    raise AssertionError("unterminated")


# ---------------------------------------------------------------------------------------------------------------
# Shipped cases


def test_shipped_names() -> None:
    assert SHIPPED_CASES == tuple(COUNTS)


@pytest.mark.parametrize("stem", list(COUNTS))
def test_shipped_case_counts(shipped: dict[str, PowerCase], stem: str) -> None:
    case = shipped[stem]
    n_bus, n_gen, n_branch = COUNTS[stem]
    assert (case.n_bus, case.n_gen, case.n_branch) == (n_bus, n_gen, n_branch)
    assert case.name == stem and case.source == f"shipped:{stem}"
    assert case.base_mva == 100.0
    assert case.out_of_service == {"gen": 0, "branch": 0}
    assert np.count_nonzero(case.bus_type == 3) == 1 and case.bus_type[case.ref] == 3
    assert case.cost.shape == (n_gen, 3)
    assert np.all(case.cost[:, 0] == 0) and np.all(case.cost[:, 2] == 0)  # all PGLib costs are linear
    assert np.all(case.x != 0) and np.all(case.tap > 0) and np.all(case.rate_a > 0)
    np.testing.assert_array_equal(case.gen_rows, np.arange(n_gen))
    np.testing.assert_array_equal(case.branch_rows, np.arange(n_branch))
    assert case.header.startswith("%%%%%%%%")
    assert "IEEE PES Power Grid Library - Optimal Power Flow - v23.07" in case.header
    assert "Creative Commons Attribution 4.0" in case.header
    assert all(line.lstrip().startswith("%") for line in case.header.split("\n"))
    assert case.sha256 == hashlib.sha256((CASES / f"{stem}.m").read_bytes()).hexdigest()


def test_shipped_aliases(shipped: dict[str, PowerCase]) -> None:
    full = shipped["pglib_opf_case118_ieee"]
    assert load_case("case118") == full
    assert load_case("118") == full
    assert load_case("case118_ieee") == full
    assert load_case("case14") == shipped["pglib_opf_case14_ieee"]
    assert load_case("case118") != shipped["pglib_opf_case14_ieee"]


def test_shipped_files_match_source_md() -> None:
    source_md = (CASES / "SOURCE.md").read_text()
    pairs = re.findall(r"^([0-9a-f]{64})  (\S+)$", source_md, flags=re.MULTILINE)
    listed = {name: digest for digest, name in pairs}
    assert set(listed) == {"LICENSE", *(f"{stem}.m" for stem in SHIPPED_CASES)}
    for name, digest in listed.items():
        assert hashlib.sha256((CASES / name).read_bytes()).hexdigest() == digest, name
    assert "dc6be4b2f85ca0e776952ec22cbd4c22396ea5a3" in source_md and "arXiv:1908.02788" in source_md
    assert (CASES / "LICENSE").read_text().startswith("Data License:")


def test_case_files_are_package_data() -> None:
    pyproject = tomllib.loads((HERE.parents[3] / "pyproject.toml").read_text())
    assert "cases/*" in pyproject["tool"]["setuptools"]["package-data"]["bilevelbench.families.dcopf.power"]


def test_case300_quirks(shipped: dict[str, PowerCase]) -> None:
    case = shipped["pglib_opf_case300_ieee"]
    raw = _raw_matrix((CASES / "pglib_opf_case300_ieee.m").read_text(), "branch")
    raw_bus = _raw_matrix((CASES / "pglib_opf_case300_ieee.m").read_text(), "bus")
    # Bus ids are not contiguous: 9001 etc.
    assert case.bus_ids.max() > case.n_bus and 9001 in case.bus_ids.tolist()
    np.testing.assert_array_equal(case.bus_ids, [int(r[0]) for r in raw_bus])
    np.testing.assert_array_equal(case.bus_ids[case.branch_from], [int(r[0]) for r in raw])
    np.testing.assert_array_equal(case.bus_ids[case.branch_to], [int(r[1]) for r in raw])
    # File line 662: "1201  120  0.0  -0.3697 ..." (branch row 178): negative reactance kept.
    negative = np.flatnonzero(case.x < 0)
    np.testing.assert_array_equal(negative, [178])
    assert case.x[178] == -0.3697
    assert (case.bus_ids[case.branch_from[178]], case.bus_ids[case.branch_to[178]]) == (1201, 120)
    # File line 873: "196  2040 ... 1.0  -11.4 ..." (branch row 389): the phase shifter, degrees -> radians.
    np.testing.assert_array_equal(np.flatnonzero(case.shift), [389])
    assert (case.bus_ids[case.branch_from[389]], case.bus_ids[case.branch_to[389]]) == (196, 2040)
    assert case.shift[389] == pytest.approx(-11.4 * np.pi / 180)
    # File line 484: "37  9001 ... 1.0082 ...": a tap ratio kept as is; tap 0 becomes 1.
    assert case.tap[0] == 1.0082 and case.tap[1] == 1.0
    assert (case.bus_ids[case.branch_from[0]], case.bus_ids[case.branch_to[0]]) == (37, 9001)


@pytest.mark.skipif(not PEGASE_1354.is_file(),
                    reason=f"{PEGASE_1354} is not present (large PGLib case, not shipped; absent on CI)")
def test_pegase_1354_from_path() -> None:
    case = load_case(PEGASE_1354)
    assert case.name == "pglib_opf_case1354_pegase" and case.source == str(PEGASE_1354)
    assert (case.n_bus, case.n_gen, case.n_branch) == (1354, 260, 1991)
    assert np.any(case.pd < 0)
    assert np.any(case.pmin < 0)
    assert np.any(case.shift != 0)
    assert np.count_nonzero(case.bus_type == 3) == 1


def test_unknown_name_is_missing_data() -> None:
    with pytest.raises(MissingDataError) as info:
        load_case("case9999")
    message = str(info.value)
    assert "case9999" in message and "path" in message
    for stem in SHIPPED_CASES:
        assert stem in message
    with pytest.raises(MissingDataError, match="no file at"):
        load_case(HERE / "cases" / "does_not_exist.m")


# ---------------------------------------------------------------------------------------------------------------
# The hand-written quirks case


@pytest.fixture(scope="module")
def quirks() -> PowerCase:
    return load_case(QUIRKS)


def test_quirks_buses(quirks: PowerCase) -> None:
    np.testing.assert_array_equal(quirks.bus_ids, [30, 7, 12, 5, 8, 99])
    np.testing.assert_array_equal(quirks.bus_type, [2, 3, 1, 1, 1, 4])
    np.testing.assert_array_equal(quirks.pd, [10.0, 0.0, -15.5, 20.0, 0.5, 0.0])
    np.testing.assert_array_equal(quirks.gs, [0.0, 0.0, 4.5, 0.0, 0.0, 0.0])
    assert quirks.ref == 1
    assert quirks.bus_ids.dtype == np.int64 and quirks.bus_type.dtype == np.int64
    assert quirks.name == "quirks" and quirks.source == str(QUIRKS)
    assert quirks.header == ("% Hand-written MATPOWER case for the parser tests: every quirk it handles, in 6 buses.\n"
                             "% Bus ids are not contiguous and not sorted; 99 is isolated.")
    assert quirks.sha256 == hashlib.sha256(QUIRKS.read_bytes()).hexdigest()


def test_quirks_generators(quirks: PowerCase) -> None:
    assert quirks.n_gen == 3
    np.testing.assert_array_equal(quirks.gen_rows, [0, 1, 3])
    np.testing.assert_array_equal(quirks.gen_bus, [0, 0, 3])  # two generators on bus 30
    np.testing.assert_array_equal(quirks.pmax, [200.0, 50.0, 40.0])
    np.testing.assert_array_equal(quirks.pmin, [10.0, 0.0, -5.0])
    # quadratic (NCOST 3), linear (NCOST 2) and constant (NCOST 1) as (c2, c1, c0)
    np.testing.assert_array_equal(quirks.cost, [[0.01, 20.0, 100.0], [0.0, 15.0, 3.0], [0.0, 0.0, 42.0]])
    assert quirks.out_of_service == {"gen": 2, "branch": 2}
    assert quirks.gen_bus.dtype == np.int64 and quirks.gen_rows.dtype == np.int64


def test_quirks_branches(quirks: PowerCase) -> None:
    assert quirks.n_branch == 5
    np.testing.assert_array_equal(quirks.branch_rows, [0, 1, 2, 4, 5])
    np.testing.assert_array_equal(quirks.bus_ids[quirks.branch_from], [7, 30, 12, 8, 7])
    np.testing.assert_array_equal(quirks.bus_ids[quirks.branch_to], [30, 12, 5, 7, 12])
    np.testing.assert_array_equal(quirks.branch_from, [1, 0, 2, 4, 1])
    np.testing.assert_array_equal(quirks.x, [0.1, 0.2, -0.05, 0.25, 0.3])
    np.testing.assert_array_equal(quirks.tap, [1.0, 0.95, 1.0, 1.0, 1.0])
    np.testing.assert_allclose(quirks.shift, np.deg2rad([0.0, 0.0, -11.4, 30.0, 0.0]))
    np.testing.assert_array_equal(quirks.rate_a, [100.0, np.inf, 50.0, 80.0, 60.0])


def test_parse_case_matches_load_case(quirks: PowerCase) -> None:
    text = QUIRKS.read_text()
    parsed = parse_case(text, name="quirks", source=str(QUIRKS))
    assert parsed == quirks
    default = parse_case(text)
    assert default.name == "case" and default.source == "<string>" and default.digest() == quirks.digest()


def test_digest_ignores_formatting_but_not_data(quirks: PowerCase, shipped: dict[str, PowerCase]) -> None:
    text = QUIRKS.read_text()
    reformatted = parse_case("% another comment\n" + text.replace("\t", "  "), name="other")
    assert reformatted.sha256 != quirks.sha256
    assert reformatted.digest() == quirks.digest() == load_case(QUIRKS).digest()
    changed = parse_case(text.replace("-15.5", "-15.25"))
    assert changed.digest() != quirks.digest()
    digests = {case.digest() for case in shipped.values()}
    assert len(digests) == len(SHIPPED_CASES)


def test_case_is_immutable(quirks: PowerCase) -> None:
    with pytest.raises(ValueError):
        quirks.pd[0] = 1.0
    with pytest.raises(AttributeError):
        quirks.name = "x"  # type: ignore[misc]
    assert hash(quirks) == hash(load_case(QUIRKS))
    assert "n_bus=6" in repr(quirks) and len(repr(quirks)) < 200


# ---------------------------------------------------------------------------------------------------------------
# Small variations and malformed files

MINI = """\
function mpc = mini
mpc.baseMVA = 100;
mpc.bus = [
1 3 0 0 0 0 1 1 0 230 1 1.1 0.9;
2 1 50 0 0 0 1 1 0 230 1 1.1 0.9;
];
mpc.gen = [
1 0 0 0 0 1 100 1 100 0;
];
mpc.gencost = [
2 0 0 2 10 0;
];
mpc.branch = [
1 2 0 0.1 0 100 100 100 0 0 1 -30 30;
];
"""


def _mini(replace: dict[int, str] | None = None, append: str = "") -> str:
    """MINI with some 1-based lines replaced and text appended after its last line (line 16 on)."""
    lines = MINI.split("\n")
    for lineno, new in (replace or {}).items():
        lines[lineno - 1] = new
    return "\n".join(lines) + append


def test_mini_parses() -> None:
    case = parse_case(MINI, name="mini")
    assert (case.n_bus, case.n_gen, case.n_branch) == (2, 1, 1)
    np.testing.assert_array_equal(case.cost, [[0.0, 10.0, 0.0]])
    assert case.header == ""
    assert case.sha256 == hashlib.sha256(MINI.encode()).hexdigest()


def test_reactive_cost_rows_are_ignored() -> None:
    case = parse_case(_mini({11: "2 0 0 2 10 0;\n2 0 0 2 99 0;"}))
    np.testing.assert_array_equal(case.cost, [[0.0, 10.0, 0.0]])


def test_empty_dcline_and_other_sections_are_fine() -> None:
    case = parse_case(_mini(append="mpc.dcline = [\n];\nmpc.dclinecost = [];\nmpc.gentype = {\n'NG';\n};\n"))
    assert case.n_gen == 1


def test_windows_line_endings() -> None:
    case = parse_case(MINI.replace("\n", "\r\n"))
    assert case.n_branch == 1 and case.x[0] == 0.1


MALFORMED = [
    # id, replaced lines, appended text, expected line, fragments of the message
    ("too-few-columns", {5: "2 1 50 0 0 0 1 1 0 230 1 1.1;"}, "", 5, ["mpc.bus", "at least 13 columns", "received 12"]),
    ("ragged-row", {5: "2 1 50 0 0 0 1 1 0 230 1 1.1 0.9 7;"}, "", 5, ["expected 13 columns", "received 14"]),
    ("non-numeric", {14: "1 2 0 abc 0 100 100 100 0 0 1 -30 30;"}, "", 14, ["mpc.branch", "'abc'", "column 4"]),
    ("nan-load", {5: "2 1 NaN 0 0 0 1 1 0 230 1 1.1 0.9;"}, "", 5, ["PD", "finite", "nan"]),
    ("inf-rate", {14: "1 2 0 0.1 0 Inf 100 100 0 0 1 -30 30;"}, "", 14, ["RATE_A", "finite", "inf"]),
    ("inf-pmax", {8: "1 0 0 0 0 1 100 1 -Inf 0;"}, "", 8, ["PMAX", "finite"]),
    ("zero-reactance", {14: "1 2 0 0 0 100 100 100 0 0 1 -30 30;"}, "", 14, ["BR_X", "non-zero", "received 0"]),
    ("unknown-branch-bus", {14: "1 3 0 0.1 0 100 100 100 0 0 1 -30 30;"}, "", 14, ["T_BUS", "bus id 3"]),
    ("unknown-gen-bus", {8: "9 0 0 0 0 1 100 1 100 0;"}, "", 8, ["GEN_BUS", "bus id 9"]),
    ("duplicate-bus", {5: "1 1 50 0 0 0 1 1 0 230 1 1.1 0.9;"}, "", 5, ["bus id 1", "first on line 4"]),
    ("fractional-bus-id", {5: "2.5 1 50 0 0 0 1 1 0 230 1 1.1 0.9;"}, "", 5, ["integer BUS_I", "2.5"]),
    ("bad-bus-type", {5: "2 5 50 0 0 0 1 1 0 230 1 1.1 0.9;"}, "", 5, ["BUS_TYPE 1, 2, 3 or 4", "received 5"]),
    ("two-references", {5: "2 3 50 0 0 0 1 1 0 230 1 1.1 0.9;"}, "", 3, ["exactly one reference bus", "found 2"]),
    ("no-reference", {4: "1 2 0 0 0 0 1 1 0 230 1 1.1 0.9;"}, "", 3, ["exactly one reference bus", "found 0"]),
    ("unterminated-next-section", {6: ""}, "", 3, ["closed with '];'", "mpc.gen on line 7"]),
    ("unterminated-at-eof", {15: ""}, "", 13, ["mpc.branch", "end of the file (line 15)"]),
    ("piecewise-linear", {11: "1 0 0 2 0 0 100 1000;"}, "", 11, ["piecewise-linear", "not supported"]),
    ("cubic-cost", {11: "2 0 0 4 1 2 3 4;"}, "", 11, ["NCOST 1, 2 or 3", "received 4"]),
    ("short-cost-row", {11: "2 0 0 3 10;"}, "", 11, ["expected 7 columns for NCOST 3", "received 5"]),
    ("unknown-cost-model", {11: "3 0 0 2 10 0;"}, "", 11, ["MODEL 2", "received 3"]),
    ("cost-row-count", {11: "2 0 0 2 10 0; 2 0 0 2 10 0; 2 0 0 2 10 0;"}, "", 10, ["expected 1 rows", "received 3"]),
    ("gen-at-isolated-bus", {5: "2 4 50 0 0 0 1 1 0 230 1 1.1 0.9;", 8: "2 0 0 0 0 1 100 1 100 0;"}, "", 8,
     ["isolated (type 4) bus 2"]),
    ("branch-at-isolated-bus", {5: "2 4 50 0 0 0 1 1 0 230 1 1.1 0.9;"}, "", 14, ["isolated (type 4) bus 2"]),
    ("negative-rating", {14: "1 2 0 0.1 0 -5 100 100 0 0 1 -30 30;"}, "", 14, ["RATE_A >= 0"]),
    ("dcline", {}, "mpc.dcline = [\n1 2 1 10 10 0 0 1 1 0 100 -10 10 -10 10 0 0;\n];\n", 16,
     ["mpc.dcline", "DC lines are not modelled", "received 1 rows"]),
    ("dcline-one-line", {}, "% DC lines\nmpc.dcline = [ 1 2 1 10 10 0 0 1 1 0 100 -10 10 -10 10 0 0 ];\n", 17,
     ["DC lines are not modelled"]),
    ("base-mva-text", {2: "mpc.baseMVA = abc;"}, "", 2, ["mpc.baseMVA", "finite positive number", "'abc'"]),
    ("gen-not-a-matrix", {7: "mpc.gen = 5;", 8: "", 9: ""}, "", 7, ["expected a matrix", "'5;'"]),
    ("section-twice", {}, "mpc.bus = [];\n", 16, ["a second one", "first is on line 3"]),
]


@pytest.mark.parametrize(("replace", "append", "line", "fragments"), [m[1:] for m in MALFORMED],
                         ids=[m[0] for m in MALFORMED])
def test_malformed(replace: dict[int, str], append: str, line: int, fragments: list[str]) -> None:
    with pytest.raises(CaseFormatError) as info:
        parse_case(_mini(replace, append), source="mini.m")
    message = str(info.value)
    assert message.startswith(f"mini.m, line {line}"), message
    for fragment in fragments:
        assert fragment in message, message


@pytest.mark.parametrize(("drop", "expected"), [(2, "'mpc.baseMVA = <number>;', received none"),
                                                (3, "received none for mpc.bus"), (7, "received none for mpc.gen"),
                                                (10, "received none for mpc.gencost"),
                                                (13, "received none for mpc.branch")])
def test_missing_section(drop: int, expected: str) -> None:
    lines = MINI.split("\n")
    if drop == 2:
        text = _mini({2: ""})
    else:  # drop the whole matrix (from its '[' line to its '];')
        end = lines.index("];", drop - 1)
        text = "\n".join(lines[:drop - 1] + lines[end + 1:])
    with pytest.raises(CaseFormatError) as info:
        parse_case(text)
    assert str(info.value).endswith(expected), str(info.value)


def test_empty_bus_matrix() -> None:
    text = _mini({4: "", 5: ""})
    with pytest.raises(CaseFormatError, match="line 3"):
        parse_case(text)


def test_errors_are_schema_errors() -> None:
    assert issubclass(CaseFormatError, SchemaError)


def test_dcline_in_a_file(tmp_path: Path) -> None:
    path = tmp_path / "with_dcline.m"
    path.write_text(QUIRKS.read_text().replace("mpc.dcline = [];",
                                               "mpc.dcline = [\n\t30 12 1 10 10 0 0 1 1 0 100 -10 10 -10 10 0 0;\n];"))
    line = 1 + path.read_text().split("\n").index("mpc.dcline = [")
    with pytest.raises(CaseFormatError, match=rf"line {line} \(mpc\.dcline\): DC lines are not modelled"):
        load_case(path)
