"""Exact reference solver, in the shape of a submission (``--solver baselines/exact``).

The implementation lives in the package (``bilevelbench.exact_solver``) because
the evaluator also uses it to measure ``speedup_vs_exact``.
"""

from bilevelbench.exact_solver import ExactSolver


class Solver(ExactSolver):
    """SOS1 KKT-MIP solved by SCIP; gap 0 by construction (up to solver tolerances)."""
