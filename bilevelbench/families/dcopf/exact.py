"""The dcopf exact reference solver: the label model (HiGHS, built once in ``setup``, warm-started per instance),
certified by its duals as the labels are."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from bilevelbench.core.backends import backend_version
from bilevelbench.core.statuses import SOLUTION_STATUSES
from bilevelbench.solvers import Prediction, Solver, TaskSpec


class ExactDCOPFSolver(Solver):
    """HiGHS on the angle formulation, certified by its duals."""

    name = "exact"
    description = "dcopf: HiGHS on the angle formulation, certified by its duals"
    time_limit = 120.0

    def __init__(self) -> None:
        import bilevelbench

        self.version = f"{bilevelbench.__version__} ({backend_version('highs')})"
        self._state = None

    def setup(self, spec: TaskSpec, train_set) -> None:
        from bilevelbench.families.dcopf.certify import DCOPFCertifierSettings, DCOPFModel

        settings = DCOPFCertifierSettings(time_limit=self.time_limit)
        self._state = (DCOPFModel(spec.structure, settings.time_limit), settings)

    def solve(self, params: Mapping[str, np.ndarray]) -> Prediction:
        from bilevelbench.families.dcopf.certify import certify_dcopf

        model, settings = self._state
        pd = np.atleast_2d(params["pd"])
        pg = np.full((pd.shape[0], model.s.n_gen), np.nan)
        for k in range(pd.shape[0]):
            label = certify_dcopf(model, pd[k], settings)
            if label.status in SOLUTION_STATUSES:
                pg[k] = label.pg
        return Prediction(y=pg)
