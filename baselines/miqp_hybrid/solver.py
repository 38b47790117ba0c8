"""``miqp_hybrid`` as a submission: hybrid: objective + penalty + supervised loss; continuous part from the relaxed QP.

Train new weights with ``python -m baselines.miqp_hybrid.train --dataset FILE --seed 0``.
"""

from __future__ import annotations

from pathlib import Path

from baselines.miqp_common.solver import MIQPBaseline


class Solver(MIQPBaseline):
    name = "miqp-hybrid"
    version = "1"
    description = "Le, Xie and Mangharam (L4DC 2026), hybrid: objective + penalty + supervised loss; 4x128 MLP, relaxed QP for the continuous part"
    method = "hybrid"
    weights_dir = Path(__file__).resolve().parent / "weights"


class PaperSolver(Solver):
    """The same weights without the test-time repair: the method as the paper publishes it."""

    name = "miqp-hybrid-paper"
    description = Solver.description + "; no test-time repair (as published)"
    repairs = False
