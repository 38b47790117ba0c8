"""``miqp_sl`` as a submission: supervised: integers fitted to the certified labels; continuous part from the relaxed QP.

Train new weights with ``python -m baselines.miqp_sl.train --dataset FILE --seed 0``.
"""

from __future__ import annotations

from pathlib import Path

from baselines.miqp_common.solver import MIQPBaseline


class Solver(MIQPBaseline):
    name = "miqp-sl"
    version = "1"
    description = "Le, Xie and Mangharam (L4DC 2026), supervised: integers fitted to the certified labels; 4x128 MLP, relaxed QP for the continuous part"
    method = "sl"
    weights_dir = Path(__file__).resolve().parent / "weights"


class PaperSolver(Solver):
    """The same weights without the test-time repair: the method as the paper publishes it."""

    name = "miqp-sl-paper"
    description = Solver.description + "; no test-time repair (as published)"
    repairs = False
