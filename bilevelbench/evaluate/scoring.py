"""The scoring loop's shared pieces: a split's per-instance scores and the helpers every family's scorer uses.

Each family scores in its own package (``Family.score``); what they share lives here and names no family.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from bilevelbench.core.statuses import SOLUTION_STATUSES


@dataclass
class SplitScore:
    """Per-instance scores of one split (arrays of length ``n``; NaN where a value does not exist)."""

    values: dict[str, np.ndarray]
    feasible: np.ndarray
    scored: np.ndarray
    failures: list[dict] = field(default_factory=list)
    z_submitted: bool = False
    references_missing: int = 0

    @property
    def n(self) -> int:
        return int(self.feasible.shape[0])


def usable_rows(decisions: np.ndarray, answered: np.ndarray, reasons: dict[int, str], name: str
                ) -> tuple[np.ndarray, list[dict]]:
    """Which rows can be scored (answered, all finite), and a failure record for each row that cannot.

    ``name`` is the decision's name in the messages (``"x contains NaN"``, ``"pg contains inf"``).
    """
    n = answered.shape[0]
    finite = np.zeros(n, bool)
    failures: list[dict] = []
    for i in range(n):
        if not answered[i]:
            failures.append({"instance": i, "reason": reasons.get(i, "no prediction for this instance")})
        elif not np.all(np.isfinite(decisions[i])):
            bad = "NaN" if np.any(np.isnan(decisions[i])) else "inf"
            failures.append({"instance": i, "reason": f"{name} contains {bad}"})
        else:
            finite[i] = True
    return finite, failures


def stored_references(labels: dict[str, np.ndarray]) -> np.ndarray:
    """The labels' objectives where the status stores a solution (``SOLUTION_STATUSES``), NaN elsewhere."""
    status = np.asarray(labels["status"]).astype(str)
    return np.where(np.isin(status, SOLUTION_STATUSES), np.asarray(labels["objective"], float), np.nan)


def row_chunks(rows: np.ndarray, n: int, chunk: int, progress: Callable[[int], object] | None
               ) -> Iterator[np.ndarray]:
    """Yield ``rows`` in pieces of ``chunk``, reporting each piece's size to ``progress`` once it is scored; with
    no rows at all, report the split's ``n`` instances at once."""
    for start in range(0, rows.size, chunk):
        part = rows[start:start + chunk]
        yield part
        if progress is not None:
            progress(part.size)
    if progress is not None and rows.size == 0:
        progress(n)


def paper_offset(meta: dict) -> float | None:
    """The objective offset of a reproduced paper's gap convention (root attribute ``paper_convention``), if any."""
    convention = meta.get("paper_convention")
    if isinstance(convention, dict) and isinstance(convention.get("gap_offset"), (int, float)):
        return float(convention["gap_offset"])
    return None
