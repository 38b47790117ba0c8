"""The exact reference solver of every family, behind the submission contract.

It gives every leaderboard its gap-0 row and the latency learned methods are compared with
(``speedup_vs_exact``). :class:`ExactSolver` names no family: in ``setup`` it asks the data set's family for its
exact solver (``Family.exact_solver``, a ``module:Class`` spec) and delegates to it. ``baselines/exact/solver.py``
exposes it in the same shape as a user's submission. Instances the family's solver cannot finish (time limit,
numerical failure, infeasible) get NaN rows, which the evaluator records as failures.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from bilevelbench.solvers import Prediction, Solver, TaskSpec


class ExactSolver(Solver):
    """Delegates to the family's exact reference solver (``Family.exact_solver``)."""

    name = "exact"
    description = "each family's exact reference solver (bilevelbench.core.family.Family.exact_solver)"

    def __init__(self) -> None:
        import bilevelbench

        self.version = bilevelbench.__version__
        self._impl = None

    def skip(self, spec: TaskSpec) -> tuple[bool, str | None]:
        from bilevelbench.core.registry import get_family
        from bilevelbench.errors import UnknownFamilyError

        try:
            family = get_family(spec.family)
        except UnknownFamilyError as exc:
            return True, str(exc)
        if not family.exact_solver:
            return True, f"family {spec.family!r} names no exact reference solver"
        return False, None

    def setup(self, spec: TaskSpec, train_set) -> None:
        from bilevelbench.core.registry import get_family
        from bilevelbench.solvers import resolve_solver_class

        impl = resolve_solver_class(get_family(spec.family).exact_solver)()
        if callable(getattr(impl, "setup", None)):
            impl.setup(spec, train_set)
        self._impl = impl
        self.version = str(getattr(impl, "version", self.version))
        self.description = str(getattr(impl, "description", self.description))

    def solve(self, params: Mapping[str, np.ndarray]) -> Prediction:
        return self._impl.solve(params)
