"""Read MATPOWER case files (the format of PGLib-OPF) into the arrays a DC optimal power flow needs.

The parser is a small line-based tokenizer: it never evaluates the file. It reads the assignments
``mpc.baseMVA = ...;`` and the matrices ``mpc.bus``, ``mpc.gen``, ``mpc.gencost`` and ``mpc.branch``
(``mpc.X = [ row; row; ... ];``, rows ended by ``;`` and/or a newline, values separated by blanks, tabs or
commas, ``%`` starting a comment anywhere), refuses a non-empty ``mpc.dcline`` and skips every other
assignment. Out-of-service generators and branches are dropped (and counted); every other departure from
the format raises :class:`~bilevelbench.errors.CaseFormatError` naming the line, the section, what was
expected and what was received.

Five small PGLib-OPF v23.07 cases ship inside the package (see ``cases/SOURCE.md``); :func:`load_case`
reads them by name, and any other case file by path.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from bilevelbench.errors import CaseFormatError, MissingDataError, UsageError

logger = logging.getLogger(__name__)

SHIPPED_CASES: tuple[str, ...] = (
    "pglib_opf_case14_ieee",
    "pglib_opf_case30_ieee",
    "pglib_opf_case57_ieee",
    "pglib_opf_case118_ieee",
    "pglib_opf_case300_ieee",
)

# MATPOWER column indices, 0-based (MATPOWER's idx_bus, idx_gen, idx_brch, idx_cost).
BUS_I, BUS_TYPE, PD, GS = 0, 1, 2, 4
GEN_BUS, GEN_STATUS, PMAX, PMIN = 0, 7, 8, 9
F_BUS, T_BUS, BR_X, RATE_A, TAP, SHIFT, BR_STATUS = 0, 1, 3, 5, 8, 9, 10
MODEL, NCOST, COST = 0, 3, 4
PQ, PV, REF, NONE = 1, 2, 3, 4
PW_LINEAR, POLYNOMIAL = 1, 2

# Fewest columns accepted per section: every column up to the last one MATPOWER requires.
_MIN_COLS = {
    "bus": (13, "BUS_I ... VMIN"),
    "gen": (10, "GEN_BUS ... PMIN"),
    "branch": (11, "F_BUS ... BR_STATUS"),
    "gencost": (5, "MODEL, STARTUP, SHUTDOWN, NCOST and at least one coefficient"),
}
_REQUIRED = ("bus", "gen", "gencost", "branch")

_ASSIGN = re.compile(r"^\s*mpc\.(\w+)\s*=\s*(.*)$")
_NUMBER = re.compile(r"[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|Inf|inf|NaN|nan)\Z")
_SEPARATORS = re.compile(r"[\s,]+")


@dataclass(frozen=True, eq=False, repr=False)
class PowerCase:
    """A power network as a DC optimal power flow sees it, read from a MATPOWER case file.

    Bus arrays hold every bus in file order; generator and branch arrays hold the in-service ones only,
    in file order (``gen_rows`` and ``branch_rows`` give their rows in ``mpc.gen`` and ``mpc.branch``).
    Powers are in MW, reactances in per unit on ``base_mva``, angles in radians. The arrays the parser
    builds are read-only.
    """

    name: str
    base_mva: float
    bus_ids: np.ndarray
    bus_type: np.ndarray
    pd: np.ndarray
    gs: np.ndarray
    ref: int
    gen_bus: np.ndarray
    pmin: np.ndarray
    pmax: np.ndarray
    cost: np.ndarray
    gen_rows: np.ndarray
    branch_from: np.ndarray
    branch_to: np.ndarray
    x: np.ndarray
    tap: np.ndarray
    shift: np.ndarray
    rate_a: np.ndarray
    branch_rows: np.ndarray
    header: str
    source: str
    out_of_service: dict = field(default_factory=lambda: {"gen": 0, "branch": 0})
    sha256: str = ""

    @property
    def n_bus(self) -> int:
        """Number of buses (isolated ones included)."""
        return int(self.bus_ids.shape[0])

    @property
    def n_gen(self) -> int:
        """Number of in-service generators."""
        return int(self.gen_bus.shape[0])

    @property
    def n_branch(self) -> int:
        """Number of in-service branches."""
        return int(self.branch_from.shape[0])

    def digest(self) -> str:
        """SHA-256 over the parsed model data, stable across runs and platforms.

        Covers ``base_mva``, ``ref`` and every bus, generator and branch array that enters a DC-OPF model
        (not the name, source, header, file hash or the ``*_rows`` bookkeeping), so two files that
        describe the same network (up to comments, formatting and out-of-service rows) share a digest.

        Returns
        -------
        str
            Hexadecimal digest.
        """
        h = hashlib.sha256(b"bilevelbench.power.PowerCase/1\n")
        h.update(f"base_mva={float(self.base_mva)!r};ref={int(self.ref)}\n".encode())
        for name in _DIGEST_ARRAYS:
            arr = np.asarray(getattr(self, name))
            if arr.dtype.kind == "f":
                arr = np.ascontiguousarray(arr, dtype="<f8") + 0.0  # + 0.0 turns -0.0 into 0.0
            else:
                arr = np.ascontiguousarray(arr, dtype="<i8")
            h.update(f"{name}:{arr.dtype.str}:{arr.shape}\n".encode())
            h.update(arr.tobytes())
        return h.hexdigest()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PowerCase):
            return NotImplemented
        for name in self.__dataclass_fields__:
            a, b = getattr(self, name), getattr(other, name)
            if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
                if not np.array_equal(a, b):
                    return False
            elif a != b:
                return False
        return True

    def __hash__(self) -> int:
        return hash((self.name, self.sha256, self.source))

    def __repr__(self) -> str:
        return (f"PowerCase(name={self.name!r}, n_bus={self.n_bus}, n_gen={self.n_gen}, "
                f"n_branch={self.n_branch}, base_mva={self.base_mva}, source={self.source!r})")


_DIGEST_ARRAYS = ("bus_ids", "bus_type", "pd", "gs", "gen_bus", "pmin", "pmax", "cost",
                  "branch_from", "branch_to", "x", "tap", "shift", "rate_a")


@dataclass
class _Section:
    """One ``mpc.NAME = ...`` assignment: the rows of a matrix, or the right-hand side of anything else."""

    name: str
    line: int
    rows: list[tuple[int, list[str]]] = field(default_factory=list)
    rhs: str | None = None


def _error(source: str, line: int | None, section: str | None, message: str) -> CaseFormatError:
    where = source if line is None else f"{source}, line {line}"
    if section is not None:
        where += f" (mpc.{section})"
    return CaseFormatError(f"{where}: {message}")


def _strip_comment(line: str) -> str:
    """The line up to its first ``%`` outside a quoted string (MATLAB's rule for when ``'`` opens one)."""
    in_string = False
    prev = ""
    for i, ch in enumerate(line):
        if in_string:
            if ch == "'":
                in_string = False
                prev = ch
        elif ch == "%":
            return line[:i]
        elif ch == "'" and not (prev.isalnum() or prev in "_.)]}'"):
            in_string = True
        elif not ch.isspace():
            prev = ch
    return line


def _scan(lines: list[str], source: str) -> dict[str, _Section]:
    """Split the file into its ``mpc.*`` assignments, tokenizing matrix rows."""
    sections: dict[str, _Section] = {}
    current: _Section | None = None
    closer = ""
    for lineno, raw in enumerate(lines, start=1):
        code = _strip_comment(raw)
        match = _ASSIGN.match(code)
        if current is None:
            if match is None:
                continue
            name, rhs = match.group(1), match.group(2).strip()
            if name in sections:
                raise _error(source, lineno, name, f"expected one assignment to mpc.{name}, received a second one "
                                                   f"(the first is on line {sections[name].line})")
            current = sections[name] = _Section(name, lineno)
            if rhs.startswith("["):
                closer, code = "]", rhs[1:]
            elif rhs.startswith("{"):  # a cell array (bus_name, genfuel, ...): skipped
                closer, code = "}", rhs[1:]
            else:
                current.rhs = rhs
                current = None
                continue
        elif match is not None:
            raise _error(source, current.line, current.name,
                         f"expected the matrix opened on line {current.line} to be closed with '{closer};', "
                         f"received a new assignment to mpc.{match.group(1)} on line {lineno} first")
        end = code.find(closer)
        body = code if end < 0 else code[:end]
        if closer == "]":
            for segment in body.split(";"):
                tokens = [t for t in _SEPARATORS.split(segment.strip()) if t]
                if tokens:
                    current.rows.append((lineno, tokens))
        if end >= 0:
            current = None
    if current is not None:
        raise _error(source, current.line, current.name,
                     f"expected the matrix opened on line {current.line} to be closed with '{closer};', "
                     f"received the end of the file (line {len(lines) - (lines[-1] == '')})")
    return sections


def _matrix(section: _Section, source: str) -> tuple[np.ndarray, list[int]]:
    """The numeric matrix of a required section and the 1-based file line of each row."""
    min_cols, what = _MIN_COLS[section.name]
    lines = [ln for ln, _ in section.rows]
    if not section.rows:
        return np.zeros((0, min_cols)), lines
    width = len(section.rows[0][1])
    values = []
    for k, (ln, tokens) in enumerate(section.rows):
        if len(tokens) < min_cols:
            raise _error(source, ln, section.name, f"expected at least {min_cols} columns ({what}) in row "
                                                   f"{k + 1}, received {len(tokens)}")
        if len(tokens) != width:
            raise _error(source, ln, section.name, f"expected {width} columns in row {k + 1} like the first row "
                                                   f"(line {lines[0]}), received {len(tokens)}")
        for j, tok in enumerate(tokens):
            if not _NUMBER.match(tok):
                raise _error(source, ln, section.name,
                             f"expected a number in row {k + 1}, column {j + 1}, received {tok!r}")
        values.append([float(t) for t in tokens])
    return np.array(values, dtype=np.float64), lines


def _require_finite(data: np.ndarray, columns: dict[str, int], lines: list[int], section: str,
                    source: str) -> None:
    for col_name, j in columns.items():
        bad = np.flatnonzero(~np.isfinite(data[:, j]))
        if bad.size:
            k = int(bad[0])
            raise _error(source, lines[k], section, f"expected a finite {col_name} (column {j + 1}) in row {k + 1}, "
                                                    f"received {data[k, j]}")


def _require_integer(values: np.ndarray, lines: list[int], section: str, col_name: str, source: str) -> np.ndarray:
    bad = np.flatnonzero(values != np.round(values))
    if bad.size:
        k = int(bad[0])
        raise _error(source, lines[k], section, f"expected an integer {col_name} in row {k + 1}, received {values[k]}")
    return values.astype(np.int64)


def _bus_index(ids: np.ndarray, lines: list[int], section: str, col_name: str, index: dict[int, int],
               source: str) -> np.ndarray:
    """Map MATPOWER bus numbers to 0-based positions in ``mpc.bus``."""
    ids = _require_integer(ids, lines, section, col_name, source)
    out = np.empty(ids.shape[0], dtype=np.int64)
    for k, bus_id in enumerate(ids.tolist()):
        if bus_id not in index:
            raise _error(source, lines[k], section,
                         f"expected {col_name} to name a bus of mpc.bus, received bus id {bus_id} (row {k + 1})")
        out[k] = index[bus_id]
    return out


def _header(lines: list[str]) -> str:
    """The first comment block: leading ``%`` lines (PGLib), or those right after the ``function`` line."""
    block: list[str] = []
    for raw in lines:
        stripped = raw.strip()
        if stripped.startswith("%"):
            block.append(raw)
        elif not stripped:
            if block:
                block.append(raw)
        elif not block and stripped.startswith("function"):
            continue
        else:
            break
    while block and not block[-1].strip():
        block.pop()
    return "\n".join(block)


def _base_mva(sections: dict[str, _Section], source: str) -> float:
    section = sections.get("baseMVA")
    if section is None:
        raise _error(source, None, None, "expected an assignment 'mpc.baseMVA = <number>;', received none")
    rhs = (section.rhs or "").rstrip(";").strip()
    if not _NUMBER.match(rhs) or not np.isfinite(float(rhs)) or float(rhs) <= 0:
        raise _error(source, section.line, "baseMVA", f"expected a finite positive number, received {rhs!r}")
    return float(rhs)


def _gen_cost(gencost: np.ndarray, lines: list[int], n_gen_rows: int, kept: np.ndarray, line: int,
              source: str) -> np.ndarray:
    """(c2, c1, c0) per kept generator from polynomial (MODEL 2) gencost rows."""
    if gencost.shape[0] not in (n_gen_rows, 2 * n_gen_rows):
        raise _error(source, line, "gencost", f"expected {n_gen_rows} rows (one per mpc.gen row) or "
                                              f"{2 * n_gen_rows} (with reactive costs), received {gencost.shape[0]}")
    cost = np.zeros((kept.shape[0], 3))
    for i, row_index in enumerate(kept.tolist()):
        row, ln = gencost[row_index], lines[row_index]
        model, ncost = row[MODEL], row[NCOST]
        if model == PW_LINEAR:
            raise _error(source, ln, "gencost", f"piecewise-linear costs (MODEL 1) are not supported; expected "
                                                f"polynomial costs (MODEL 2) for generator row {row_index + 1}")
        if model != POLYNOMIAL:
            raise _error(source, ln, "gencost", f"expected MODEL 2 (polynomial) for generator row {row_index + 1}, "
                                                f"received {_fmt(model)}")
        if ncost not in (1, 2, 3):
            raise _error(source, ln, "gencost", f"expected NCOST 1, 2 or 3 (a polynomial of degree at most 2; cubic "
                                                f"and higher are not supported), received {_fmt(ncost)}")
        n = int(ncost)
        if row.shape[0] < COST + n:
            raise _error(source, ln, "gencost", f"expected {COST + n} columns for NCOST {n}, "
                                                f"received {row.shape[0]}")
        coefficients = row[COST:COST + n]
        if not np.all(np.isfinite(coefficients)):
            raise _error(source, ln, "gencost", f"expected finite cost coefficients, received {coefficients.tolist()}")
        cost[i, 3 - n:] = coefficients
    return cost


def _fmt(value: float) -> str:
    """A number as the file would write it: 4.0 as '4'."""
    return str(int(value)) if np.isfinite(value) and value == int(value) else str(value)


def _readonly(arr: np.ndarray) -> np.ndarray:
    arr.flags.writeable = False
    return arr


def _parse(text: str, name: str, source: str, sha256: str) -> PowerCase:
    lines = [line.rstrip("\r") for line in text.split("\n")]
    sections = _scan(lines, source)

    dcline = sections.get("dcline")
    if dcline is not None and dcline.rows:
        raise _error(source, dcline.line, "dcline", f"DC lines are not modelled: expected no mpc.dcline or an empty "
                                                    f"'mpc.dcline = [];', received {len(dcline.rows)} rows")
    missing = [s for s in _REQUIRED if s not in sections]
    if missing:
        raise _error(source, None, None, "expected the sections " + ", ".join(f"mpc.{s}" for s in _REQUIRED)
                     + ", received none for " + ", ".join(f"mpc.{s}" for s in missing))
    for s in _REQUIRED:
        if sections[s].rhs is not None:
            raise _error(source, sections[s].line, s, f"expected a matrix 'mpc.{s} = [ ... ];', "
                                                      f"received {sections[s].rhs!r}")
    base_mva = _base_mva(sections, source)

    # Buses.
    bus, bus_lines = _matrix(sections["bus"], source)
    if bus.shape[0] == 0:
        raise _error(source, sections["bus"].line, "bus", "expected at least one bus row, received none")
    _require_finite(bus, {"BUS_I": BUS_I, "BUS_TYPE": BUS_TYPE, "PD": PD, "GS": GS}, bus_lines, "bus", source)
    bus_ids = _require_integer(bus[:, BUS_I], bus_lines, "bus", "BUS_I", source)
    bus_type = _require_integer(bus[:, BUS_TYPE], bus_lines, "bus", "BUS_TYPE", source)
    bad = np.flatnonzero(~np.isin(bus_type, (PQ, PV, REF, NONE)))
    if bad.size:
        k = int(bad[0])
        raise _error(source, bus_lines[k], "bus", f"expected BUS_TYPE 1, 2, 3 or 4 in row {k + 1}, "
                                                  f"received {bus_type[k]}")
    index: dict[int, int] = {}
    for k, bus_id in enumerate(bus_ids.tolist()):
        if bus_id in index:
            raise _error(source, bus_lines[k], "bus", f"expected unique bus ids, received bus id {bus_id} again "
                                                      f"(first on line {bus_lines[index[bus_id]]})")
        index[bus_id] = k
    refs = np.flatnonzero(bus_type == REF)
    if refs.size != 1:
        raise _error(source, sections["bus"].line, "bus",
                     f"expected exactly one reference bus (BUS_TYPE 3), found {refs.size}"
                     + (f" (bus ids {bus_ids[refs].tolist()})" if refs.size else ""))
    isolated = bus_type == NONE

    # Generators and their costs.
    gen, gen_lines = _matrix(sections["gen"], source)
    _require_finite(gen, {"GEN_BUS": GEN_BUS, "GEN_STATUS": GEN_STATUS, "PMAX": PMAX, "PMIN": PMIN},
                    gen_lines, "gen", source)
    gen_bus_all = _bus_index(gen[:, GEN_BUS], gen_lines, "gen", "GEN_BUS", index, source)
    gen_rows = np.flatnonzero(gen[:, GEN_STATUS] > 0).astype(np.int64)
    for k in gen_rows.tolist():
        if isolated[gen_bus_all[k]]:
            raise _error(source, gen_lines[k], "gen", f"expected in-service generators at connected buses, received "
                                                      f"one at isolated (type 4) bus {bus_ids[gen_bus_all[k]]}")
    gencost, gencost_lines = _matrix(sections["gencost"], source)
    _require_finite(gencost, {"MODEL": MODEL, "NCOST": NCOST}, gencost_lines, "gencost", source)
    cost = _gen_cost(gencost, gencost_lines, gen.shape[0], gen_rows, sections["gencost"].line, source)

    # Branches.
    branch, branch_lines = _matrix(sections["branch"], source)
    _require_finite(branch, {"F_BUS": F_BUS, "T_BUS": T_BUS, "BR_X": BR_X, "RATE_A": RATE_A, "TAP": TAP,
                             "SHIFT": SHIFT, "BR_STATUS": BR_STATUS}, branch_lines, "branch", source)
    f_all = _bus_index(branch[:, F_BUS], branch_lines, "branch", "F_BUS", index, source)
    t_all = _bus_index(branch[:, T_BUS], branch_lines, "branch", "T_BUS", index, source)
    branch_rows = np.flatnonzero(branch[:, BR_STATUS] > 0).astype(np.int64)
    for k in branch_rows.tolist():
        for end in (f_all[k], t_all[k]):
            if isolated[end]:
                raise _error(source, branch_lines[k], "branch", f"expected in-service branches between connected "
                                                                f"buses, received one touching isolated (type 4) "
                                                                f"bus {bus_ids[end]}")
        if branch[k, BR_X] == 0:
            raise _error(source, branch_lines[k], "branch", f"expected a non-zero BR_X on in-service branch row "
                                                            f"{k + 1}, received 0")
        if branch[k, RATE_A] < 0:
            raise _error(source, branch_lines[k], "branch", f"expected RATE_A >= 0 (0 means unlimited) in row "
                                                            f"{k + 1}, received {branch[k, RATE_A]}")
    kept = branch[branch_rows]
    tap = np.where(kept[:, TAP] == 0, 1.0, kept[:, TAP])
    rate_a = np.where(kept[:, RATE_A] == 0, np.inf, kept[:, RATE_A])

    out_of_service = {"gen": int(gen.shape[0] - gen_rows.shape[0]),
                      "branch": int(branch.shape[0] - branch_rows.shape[0])}
    if out_of_service["gen"] or out_of_service["branch"]:
        logger.info("%s: dropped %d out-of-service generators and %d out-of-service branches", source,
                    out_of_service["gen"], out_of_service["branch"])
    case = PowerCase(
        name=name,
        base_mva=base_mva,
        bus_ids=_readonly(bus_ids),
        bus_type=_readonly(bus_type),
        pd=_readonly(bus[:, PD].copy()),
        gs=_readonly(bus[:, GS].copy()),
        ref=int(refs[0]),
        gen_bus=_readonly(gen_bus_all[gen_rows]),
        pmin=_readonly(gen[gen_rows, PMIN]),
        pmax=_readonly(gen[gen_rows, PMAX]),
        cost=_readonly(cost),
        gen_rows=_readonly(gen_rows),
        branch_from=_readonly(f_all[branch_rows]),
        branch_to=_readonly(t_all[branch_rows]),
        x=_readonly(kept[:, BR_X].copy()),
        tap=_readonly(tap),
        shift=_readonly(np.deg2rad(kept[:, SHIFT])),
        rate_a=_readonly(rate_a),
        branch_rows=_readonly(branch_rows),
        header=_header(lines),
        source=source,
        out_of_service=out_of_service,
        sha256=sha256,
    )
    logger.debug("parsed %r: %d buses, %d generators, %d branches", case.name, case.n_bus, case.n_gen, case.n_branch)
    return case


def parse_case(text: str, name: str = "case", source: str = "<string>") -> PowerCase:
    """Parse the text of a MATPOWER case file.

    Parameters
    ----------
    text : str
        The file's contents.
    name : str, optional
        Name to give the case (``load_case`` uses the file stem).
    source : str, optional
        Where the text came from; error messages start with it.

    Returns
    -------
    PowerCase
        The parsed case; ``sha256`` is the digest of ``text`` encoded as UTF-8.

    Raises
    ------
    CaseFormatError
        If the text is malformed or uses a feature that is not modelled (DC lines, piecewise-linear or
        cubic costs); the message names the line, the section, what was expected and what was received.
    """
    if not isinstance(text, str):
        raise UsageError(f"parse_case expects the file's text as str, received {type(text).__name__}")
    return _parse(text, name, source, hashlib.sha256(text.encode("utf-8")).hexdigest())


def _parse_bytes(data: bytes, name: str, source: str) -> PowerCase:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("latin-1")  # old MATPOWER files carry Latin-1 names in comments
    return _parse(text, name, source, hashlib.sha256(data).hexdigest())


def _aliases() -> dict[str, str]:
    aliases: dict[str, str] = {}
    for stem in SHIPPED_CASES:
        match = re.fullmatch(r"pglib_opf_case(\d+)_(\w+)", stem)
        assert match is not None
        number, kind = match.groups()
        for alias in (stem, f"{stem}.m", f"pglib_opf_case{number}", f"case{number}_{kind}", f"case{number}", number):
            aliases[alias.lower()] = stem
    return aliases


_ALIASES = _aliases()


def load_case(name_or_path: str | os.PathLike) -> PowerCase:
    """Load a shipped PGLib-OPF case by name, or any MATPOWER case file by path.

    Parameters
    ----------
    name_or_path : str or os.PathLike
        A shipped case (a stem of ``SHIPPED_CASES`` such as ``"pglib_opf_case118_ieee"``, or an alias such
        as ``"case118"`` or ``"118"``), or the path of a ``.m`` file. Path-like objects are always paths.

    Returns
    -------
    PowerCase
        The parsed case, named after the file stem; ``source`` is ``"shipped:<stem>"`` or the path.

    Raises
    ------
    MissingDataError
        If the name is not a shipped case and no file exists at that path.
    CaseFormatError
        If the file is malformed or uses a feature that is not modelled.
    """
    if not isinstance(name_or_path, (str, os.PathLike)):
        raise UsageError(f"load_case expects a case name or a path, received {type(name_or_path).__name__}")
    if isinstance(name_or_path, str):
        stem = _ALIASES.get(name_or_path.strip().lower())
        if stem is not None:
            data = (resources.files(__package__) / "cases" / f"{stem}.m").read_bytes()
            return _parse_bytes(data, stem, f"shipped:{stem}")
    path = Path(name_or_path)
    if path.is_file():
        return _parse_bytes(path.read_bytes(), path.stem, str(path))
    reason = f"{str(path)!r} is a directory" if path.is_dir() else f"no file at {str(path)!r}"
    raise MissingDataError(f"expected a shipped power case ({', '.join(SHIPPED_CASES)}; aliases such as 'case118' "
                           f"or '118' work) or a path to a MATPOWER .m file, received {str(name_or_path)!r} "
                           f"({reason})")
