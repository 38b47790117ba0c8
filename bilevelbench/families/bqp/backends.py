"""Exact mixed-integer backends for the KKT reformulation, behind one interface.

The single-level reformulation of a BQP (lower level replaced by its KKT
conditions; complementarity as SOS1 pairs, never a big-M)::

    min  t + c'y + d'z + q
    s.t. A y - E z <= b                      (upper constraints)
         F z + s - G y = h,  s >= 0          (lower primal feasibility, slacks)
         H z + F' lam = -e,  lam >= 0        (lower stationarity, dual feasibility)
         SOS1(lam_i, s_i)  for every lower row i   (complementarity)
         1/2 y'Qy <= t                       (epigraph, for SCIP)

Every variable gets the provably valid bounds of :mod:`bilevelbench.certify.bounds`.
A backend object is built once per structure; each instance only changes the
objective and the bounds.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from bilevelbench.core.backends import (
    GUROBI_FREE_QUADRATIC_VARS,
    GUROBI_FREE_ROWS,
    gurobi_status,
)
from bilevelbench.errors import BackendUnavailableError, UsageError
from bilevelbench.families.bqp.bounds import VariableBounds
from bilevelbench.families.bqp.problem import BQPStructure

log = logging.getLogger(__name__)

BACKEND_CHOICES = ("auto", "scip", "gurobi")



@dataclass(frozen=True)
class MIPResult:
    """What an exact backend returns for one instance.

    ``status`` is one of ``optimal``, ``infeasible``, ``time_limit``, ``error``;
    ``primal_bound``/``dual_bound`` are the solver's own values (inf when absent).
    """

    status: str
    y: np.ndarray
    z: np.ndarray
    lam: np.ndarray
    primal_bound: float
    dual_bound: float
    solve_time: float
    nodes: int
    message: str = ""


class KKTBackend(Protocol):
    """What every exact backend offers."""

    name: str
    version: str

    def solve(self, c: np.ndarray, d: np.ndarray, bounds: VariableBounds, time_limit: float,
              upper_rhs: np.ndarray | None = None) -> MIPResult:
        """Solve the KKT-MIP for one instance within the given bounds.

        ``upper_rhs`` replaces ``b`` in the upper constraints (used only to search for
        strictly feasible incumbents; labels always use ``b``).
        """


@dataclass(frozen=True)
class BackendSettings:
    """Solver settings recorded in every data set.

    Attributes
    ----------
    feasibility_tol : float
        Primal feasibility tolerance handed to the MIP solver.
    seed : int
        Random seed of the MIP solver (labels are reproducible with it).
    threads : int
        Threads per MIP solve (parallelism is across instances).
    """

    feasibility_tol: float = 1e-7
    seed: int = 0
    threads: int = 1


def kkt_variable_count(s: BQPStructure) -> int:
    """Variables of the Gurobi KKT model: y, z, lam and slacks."""
    return s.m + s.n + 2 * s.n_lower_constraints


def gurobi_fits_free_license(s: BQPStructure) -> bool:
    """Whether the KKT model fits the size limits of Gurobi's free license."""
    rows = s.n_upper_constraints + s.n_lower_constraints + s.n + s.n_lower_constraints
    return kkt_variable_count(s) <= GUROBI_FREE_QUADRATIC_VARS and rows <= GUROBI_FREE_ROWS




def make_backend(name: str, s: BQPStructure, settings: BackendSettings | None = None) -> KKTBackend:
    """Build the exact backend ``name`` for structure ``s``.

    ``auto`` takes Gurobi when gurobipy is installed, a license starts and the model
    fits it (the free license takes quadratic models of at most 200 variables);
    otherwise SCIP.

    Raises
    ------
    UsageError
        For an unknown backend name.
    BackendUnavailableError
        When ``gurobi`` is requested but cannot take the model.
    """
    settings = settings or BackendSettings()
    if name not in BACKEND_CHOICES:
        raise UsageError(f"backend must be one of {', '.join(BACKEND_CHOICES)}, got {name!r}")
    if name in ("gurobi", "auto"):
        ok, why = gurobi_status()
        if ok and not gurobi_fits_free_license(s):
            ok, why = False, (f"the KKT model has {kkt_variable_count(s)} variables, above the "
                              f"{GUROBI_FREE_QUADRATIC_VARS} a size-limited Gurobi license takes for quadratic models")
        if ok:
            from bilevelbench.families.bqp.kkt_gurobi import GurobiKKT

            return GurobiKKT(s, settings)
        if name == "gurobi":
            raise BackendUnavailableError(f"backend 'gurobi' requested but {why}")
        log.info("backend auto: using SCIP because %s", why)
    from bilevelbench.families.bqp.kkt_scip import ScipKKT

    return ScipKKT(s, settings)
