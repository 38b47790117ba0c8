"""Repair candidates of the MIQP L2O model (bilevelbench.families.mimpc.miqp_l2o)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from bilevelbench.errors import UsageError
from bilevelbench.families.mimpc import problem as mimpc
from bilevelbench.families.mimpc.miqp_l2o import MIQPL2O, SHIFTS, step_moves


def test_step_moves_hold_the_shifted_and_block_moved_plans():
    H = 6
    plan = torch.tensor([[0.0, 1.0, 2.0, 3.0, 2.0, 1.0]])
    value = plan + torch.tensor([[0.2, -0.3, 0.1, 0.0, 0.4, -0.1]])
    moves = step_moves(value, H)
    assert moves.shape == (1, 2 + len(SHIFTS) + 4 * H, H)
    got = {tuple(row.tolist()) for row in moves[0]}
    assert (0.0, 0.0, 1.0, 2.0, 3.0, 2.0) in got                  # one step later, first step repeated
    assert (1.0, 2.0, 3.0, 2.0, 1.0, 1.0) in got                  # one step earlier, last step repeated
    assert (1.0, 2.0, 3.0, 3.0, 2.0, 1.0) in got                  # first three steps raised
    assert (0.0, 1.0, 2.0, 3.0, 1.0, 0.0) in got                  # last two steps lowered
    assert tuple(torch.floor(value)[0].tolist()) in got and tuple(torch.ceil(value)[0].tolist()) in got


def test_step_moves_keep_the_per_step_layout():
    """Several integers per step (the robot's 12): a shift moves whole steps."""
    value = torch.arange(12.0).reshape(1, 12)                    # 3 steps x 4 integers
    moves = step_moves(value, 3)
    later = torch.cat([value[:, :4], value[:, :8]], 1)
    assert any(torch.equal(row, later[0]) for row in moves[0])
    with pytest.raises(UsageError, match="step by step"):
        step_moves(torch.zeros(1, 10), 3)


def test_candidates_are_clipped_to_the_bounds():
    s = mimpc.structure_for("mimpc-tank")
    p = s.p
    model = MIQPL2O(s, np.zeros(p), np.ones(p), [8])
    value = torch.full((2, 20), 2.9)
    value[1] = 0.1
    cand = model.candidates(value, 4, moves=True)
    assert cand.shape == (2, 4 + 2 + len(SHIFTS) + 80, 20)
    assert float(cand.min()) >= 0.0 and float(cand.max()) <= 3.0
    assert torch.equal(cand, torch.round(cand))
