"""Re-run the independent checks on every label of an instance-set file (``bilevelbench verify``).

Nothing here trusts the solver that produced the labels, and nothing here knows a family: each family's
descriptor supplies its re-check of one label (``Family.label_checker``: residuals recomputed from the stored
structure and parameters, lower levels re-solved by a second solver) and, for ``oracle=True``, a re-solve of every
certified instance by an independent exact method (``Family.oracle_checker``). A family without such a method
raises :class:`~bilevelbench.errors.OracleUnavailableError` before any work is done: an oracle is never reported
as passed when it did not run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from bilevelbench.data.instance_set import InstanceSet


@dataclass
class VerifyReport:
    """Outcome of :func:`verify_instance_set`: one entry per failing instance.

    Attributes
    ----------
    checked : int
        Labels re-checked.
    failures : list of (index, status, reason)
    oracle_checked : int
        Certified labels the oracle re-solved (0 without ``oracle=True``).
    oracle_method : str
        What the oracle re-solved them with.
    """

    checked: int = 0
    failures: list[tuple[int, str, str]] = field(default_factory=list)
    oracle_checked: int = 0
    oracle_method: str = ""

    @property
    def ok(self) -> bool:
        return not self.failures


def verify_instance_set(ds: InstanceSet, oracle: bool = False,
                        progress: Callable[[int], object] | None = None) -> VerifyReport:
    """Check every label of ``ds`` with its family's checks (and its oracle with ``oracle=True``).

    Raises
    ------
    OracleUnavailableError
        With ``oracle=True``, when the family (or this file) has no independent exact method.
    """
    family = ds.family_descriptor
    check = family.label_checker(ds)
    exact = family.oracle_checker(ds) if oracle else None
    report = VerifyReport(oracle_method=family.oracle_method if oracle else "")
    statuses = ds.labels["status"]
    bar = progress(len(ds)) if progress else None
    try:
        for pos, index in enumerate(ds.indices):
            status = str(statuses[pos])
            problems = check(pos, status)
            if exact is not None and not problems and status == "certified_optimal":
                problems = exact(pos, status)
                report.oracle_checked += 1
            report.checked += 1
            if problems:
                report.failures.append((int(index), status, "; ".join(problems)))
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return report
