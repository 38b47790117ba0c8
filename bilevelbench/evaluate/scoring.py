"""The scoring loop's shared pieces: a split's per-instance scores and the helpers every family's scorer uses.

Each family scores in its own package (``Family.score``); what they share lives here and names no family.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from bilevelbench.core.statuses import SOLUTION_STATUSES
from bilevelbench.errors import UsageError


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


def score_rows(decisions: np.ndarray, answered: np.ndarray, reasons: dict[int, str], labels: dict[str, np.ndarray],
               fields: tuple[str, ...], measure: Callable[[np.ndarray, np.ndarray], tuple[dict, np.ndarray]], *,
               name: str = "y", chunk: int | None = None, gap_floor: float | None = None,
               progress: Callable[[int], object] | None = None, sense: str = "min") -> SplitScore:
    """The scoring loop the vectorised family scorers share.

    Rows that are unanswered or not finite become failures (:func:`usable_rows`); the others are measured in
    chunks by ``measure(rows, reference) -> (values, feasible)``, where ``values`` maps field names to arrays over
    ``rows`` (it must hold ``objective``) and ``reference`` holds the rows' reference objectives
    (:func:`stored_references`). ``reference_objective``, ``gap`` and ``signed_gap`` are filled here (denominator
    floor ``gap_floor``, default :data:`bilevelbench.evaluate.metrics.GAP_FLOOR`).

    Parameters
    ----------
    decisions : (n, d) array
    answered : (n,) bool array
    reasons : dict
        Why an unanswered instance has no row.
    labels : dict
        The split's label arrays (``objective``, ``status``).
    fields : tuple of str
        Every per-instance field reported (NaN where not measured).
    measure : callable
        See above.
    name : str
        The decision's name in failure messages.
    chunk : int, optional
        Rows per ``measure`` call (all at once by default).
    gap_floor : float, optional
    progress : callable, optional
        Called with the number of instances scored in each chunk.
    sense : {"min", "max"}
        The family's objective sense: ``signed_gap`` is positive when the answer is worse than the reference,
        ``(f - f*)`` for a minimisation and ``(f* - f)`` for a maximisation, over ``max(|f*|, floor)``.
    """
    from bilevelbench.evaluate import metrics

    if sense not in ("min", "max"):
        raise UsageError(f"sense must be 'min' or 'max', received {sense!r}")
    n = answered.shape[0]
    values = {key: np.full(n, np.nan) for key in fields}
    feasible = np.zeros(n, bool)
    scored = np.zeros(n, bool)
    reference = stored_references(labels)
    finite, failures = usable_rows(decisions, answered, reasons, name)
    rows = np.flatnonzero(finite)
    floor = metrics.GAP_FLOOR if gap_floor is None else gap_floor
    for part in row_chunks(rows, n, chunk or max(rows.size, 1), progress):
        measured, ok = measure(part, reference[part])
        for key, value in measured.items():
            values[key][part] = value
        objective = np.asarray(measured["objective"], float)
        values["reference_objective"][part] = reference[part]
        values["gap"][part] = metrics.relative_gap(objective, reference[part], floor)
        signed = metrics.signed_relative_gap(objective, reference[part], floor)
        values["signed_gap"][part] = signed if sense == "min" else -signed
        scored[part] = True
        feasible[part] = ok
    if progress is not None and 0 < rows.size < n:
        progress(n - rows.size)                     # the rows that failed before measuring
    return SplitScore(values=values, feasible=feasible, scored=scored, failures=failures, z_submitted=False,
                      references_missing=int(np.sum(~np.isfinite(reference))))


def restrict_score(score: SplitScore, rows: np.ndarray, labels: dict[str, np.ndarray]) -> SplitScore:
    """The scores of ``rows`` only, renumbered ``0..len(rows)-1`` (a fixed subset of a split, scored alone).

    Every per-instance array is indexed on its first axis; failures of other rows are dropped and the kept ones
    take their position in ``rows``; ``labels`` (the whole split's) give the subset's missing references.
    """
    rows = np.asarray(rows, dtype=np.int64)
    if rows.ndim != 1 or (rows.size and (rows.min() < 0 or rows.max() >= score.n)):
        raise UsageError(f"rows must be positions 0..{score.n - 1} of the split; received {rows!r}")
    position = {int(i): k for k, i in enumerate(rows)}
    failures = [{**failure, "instance": position[failure["instance"]]} for failure in score.failures
                if isinstance(failure.get("instance"), int) and failure["instance"] in position]
    missing = int(np.sum(~np.isfinite(stored_references(labels)[rows])))
    return SplitScore(values={key: np.asarray(value)[rows] for key, value in score.values.items()},
                      feasible=score.feasible[rows], scored=score.scored[rows], failures=failures,
                      z_submitted=score.z_submitted, references_missing=missing)
