"""The leaderboard table as plain data: columns, cell text and sort values.

Cell text here is *unescaped*; each renderer escapes it for its own format.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from bilevelbench.core.family import Column
from bilevelbench.leaderboard.ranking import DatasetGroup, RankedEntry, front_eligible
from bilevelbench.leaderboard.records import Record

NULL = "\u2014"  # an em dash, shown for a missing value

#: Longest submitter string shown in a table cell; longer ones are cut with an ellipsis.
MAX_CELL_CHARS = 80
#: Longest description or failure reason shown in the notes under a table.
MAX_NOTE_CHARS = 300
#: How many per-instance failure reasons are listed per record.
MAX_FAILURES_SHOWN = 3

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")



@dataclass(frozen=True)
class Cell:
    """One table cell: the text shown and the value it sorts by (``None`` sorts last)."""

    text: str
    value: float | str | None


COLUMNS = (
    Column("rank", "rank", True),
    Column("solver", "solver", False),
    Column("gap_mean", "gap mean", True),
    Column("gap_max", "gap max", True),
    Column("feasible_rate", "feasible rate", True),
    Column("coupling_violation_mean", "coupling violation mean", True),
    Column("latency_ms_median", "latency median (ms)", True),
    Column("latency_ms_p95", "latency p95 (ms)", True),
    Column("throughput_per_s", "throughput (/s)", True),
    Column("speedup_vs_exact", "speedup vs exact", True),
    Column("pareto", "Pareto front", False),
    Column("mode", "mode", False),
    Column("status", "status", False),
    Column("date", "date", False),
    Column("git_commit", "commit", False),
)


#: Families that support ``verify-proxy`` show its bounds beside the test-set gaps (relative to the optimum at
#: the witness; a record without a ``worst_case`` block shows a dash).
WORST_CASE_COLUMNS = (Column("worst_case_gap_found", "worst-case gap found", True),
                      Column("worst_case_upper_bound", "certified upper bound", True))


def columns_for(family: str) -> tuple[Column, ...]:
    """The table columns of a dataset of ``family``: :data:`COLUMNS`, with the bilevel coupling column replaced
    by the family's own violation measures (``Family.leaderboard_columns``); a family whose plugin is not
    installed keeps the common columns."""
    from bilevelbench.core.registry import find_family

    found = find_family(family)
    extra = found.leaderboard_columns if found is not None else ()
    worst = WORST_CASE_COLUMNS if found is not None and found.supports_verification else ()
    out: list[Column] = []
    for column in COLUMNS:
        if column.key == "coupling_violation_mean" and extra:
            out.extend(extra)
        else:
            out.append(column)
        if column.key == "gap_max":
            out.extend(worst)
    return tuple(out)


def clean_text(text: str, limit: int | None = None) -> str:
    """One line of text: control characters and line breaks become single spaces; cut to ``limit``."""
    text = _CONTROL.sub(" ", text).strip()
    if limit is not None and len(text) > limit:
        text = text[: limit - 1] + "\u2026"
    return text


def format_sci(x: float | None) -> str:
    """Gaps and violations: scientific notation with 3 significant digits, ``0`` for exact zero."""
    if x is None:
        return NULL
    return "0" if x == 0 else f"{x:.2e}"


def format_rate(x: float | None) -> str:
    """A fraction as a percentage, rounded down so that anything below 1 never shows as 100%."""
    if x is None:
        return NULL
    return f"{math.floor(x * 10000 + 1e-9) / 100:.2f}%"


def format_plain(x: float | None) -> str:
    """Latency, throughput, speedup: about three significant digits without an exponent when practical."""
    if x is None:
        return NULL
    a = abs(x)
    if a >= 100:
        return f"{x:.0f}"
    if a >= 10:
        return f"{x:.1f}"
    if a >= 1:
        return f"{x:.2f}"
    if a >= 0.01 or a == 0:
        return f"{x:.3f}"
    return f"{x:.2e}"


def solver_label(record: Record, limit: int | None = MAX_CELL_CHARS) -> str:
    """``name version`` of the solver, cleaned and cut to ``limit`` characters."""
    return clean_text(f"{record.solver.name} {record.solver.version}".strip(), limit)


def entry_cells(entry: RankedEntry, columns: tuple[Column, ...] = COLUMNS) -> list[Cell]:
    """The cells of one table row, in the order of ``columns`` (:func:`columns_for` the row's family)."""
    r = entry.record
    m = r.metrics
    verified = r.latency_verified

    def latency(x: float | None) -> Cell:
        text = format_plain(x)
        if x is not None and not verified:
            text += " (unverified)"
        return Cell(text, x)

    commit = clean_text(r.git_commit or "")[:7]
    if commit and r.git_dirty:
        commit += "-dirty"
    date = clean_text(r.date, 40)
    date_text = date[:10] if re.match(r"\d{4}-\d{2}-\d{2}", date) else date
    speedup = m["speedup_vs_exact"]
    cells = {
        "rank": Cell(str(entry.rank), float(entry.rank)),
        "solver": Cell(solver_label(r), solver_label(r, None).casefold()),
        "gap_mean": Cell(format_sci(m["gap_mean"]), m["gap_mean"]),
        "gap_max": Cell(format_sci(m["gap_max"]), m["gap_max"]),
        "feasible_rate": Cell(format_rate(m["feasible_rate"]), m["feasible_rate"]),
        "coupling_violation_mean": Cell(format_sci(m["coupling_violation_mean"]), m["coupling_violation_mean"]),
        "latency_ms_median": latency(m["latency_ms_median"]),
        "latency_ms_p95": latency(m["latency_ms_p95"]),
        "throughput_per_s": Cell(format_plain(m["throughput_per_s"]), m["throughput_per_s"]),
        "speedup_vs_exact": Cell(NULL if speedup is None else format_plain(speedup) + "\u00d7", speedup),
        "pareto": _pareto_cell(entry),
        "mode": Cell(r.mode if verified else f"{r.mode} (unverified)", r.mode),
        "status": Cell(r.status, r.status),
        "date": Cell(date_text or NULL, date or None),
        "git_commit": Cell(commit or NULL, commit or None),
    }
    for column in columns:
        if column.key not in cells:
            x = m.get(column.key)
            text = format_rate(x) if column.key.endswith("_rate") else (
                format_sci(x) if column.key.endswith(("cost_mean", "gap_mean", "objective_gap", "gap_found",
                                                      "upper_bound")) else format_plain(x))
            cells[column.key] = Cell(text, x)
    return [cells[c.key] for c in columns]


def _pareto_cell(entry: RankedEntry) -> Cell:
    if not front_eligible(entry.record):
        return Cell(NULL, None)
    return Cell("yes", "yes") if entry.on_front else Cell("no", "no")


def entry_notes(entry: RankedEntry) -> list[str]:
    """Plain-text notes about one record: spec, description, status reason, failures."""
    r = entry.record
    notes = []
    if r.solver.spec:
        notes.append(f"spec: {clean_text(r.solver.spec, MAX_CELL_CHARS)}")
    if r.solver.description.strip():
        notes.append(clean_text(r.solver.description, MAX_NOTE_CHARS))
    m = r.metrics
    if m.get("cost_ratio_mean") is not None or r.mode == "closed_loop":
        notes.append(f"closed loop: cost / exact MPC {format_plain(m.get('cost_ratio_mean'))}, episodes completed "
                     f"{format_rate(m.get('completed_rate'))}, with a collision "
                     f"{format_rate(m.get('collision_episode_rate'))}, with a safety-margin violation "
                     f"{format_rate(m.get('safety_violation_episode_rate'))}")
    if r.status_reason:
        notes.append(f"{r.status}: {clean_text(r.status_reason, MAX_NOTE_CHARS)}")
    if r.failures:
        shown = "; ".join(
            ("run" if f.instance is None else f"instance {f.instance}") + f": {clean_text(f.reason, MAX_NOTE_CHARS)}"
            for f in r.failures[:MAX_FAILURES_SHOWN]
        )
        more = len(r.failures) - MAX_FAILURES_SHOWN
        notes.append(f"{len(r.failures)} failure(s): {shown}" + (f"; and {more} more" if more > 0 else ""))
    return notes


def dataset_facts(group: DatasetGroup) -> list[tuple[str, str]]:
    """``(label, text)`` pairs describing a dataset, shown above its table."""
    d = group.dataset
    return [
        ("dataset", clean_text(d.name, MAX_CELL_CHARS)),
        ("family", clean_text(d.family, MAX_CELL_CHARS)),
        ("size", clean_text(d.size, MAX_CELL_CHARS)),
        ("split", clean_text(d.split, MAX_CELL_CHARS)),
        ("instances", str(d.n_instances)),
        ("sha256", clean_text(d.sha256)[:12]),
    ]
