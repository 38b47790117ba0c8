"""The shared scoring loop: the objective's sense decides the sign of the signed gap."""

from __future__ import annotations

import numpy as np
import pytest

from bilevelbench.errors import UsageError
from bilevelbench.evaluate.scoring import score_rows

LABELS = {"objective": np.array([10.0, 10.0]), "status": np.array([b"certified_optimal"] * 2)}


def _score(sense: str):
    y = np.array([[8.0], [12.0]])

    def measure(rows, reference):
        return {"objective": y[rows, 0]}, np.ones(rows.size, bool)

    return score_rows(y, np.ones(2, bool), {}, LABELS, ("objective", "reference_objective", "gap", "signed_gap"),
                      measure, sense=sense)


def test_signed_gap_is_positive_when_worse_for_either_sense():
    np.testing.assert_allclose(_score("min").values["signed_gap"], [-0.2, 0.2])
    np.testing.assert_allclose(_score("max").values["signed_gap"], [0.2, -0.2])
    np.testing.assert_allclose(_score("max").values["gap"], [0.2, 0.2])


def test_unknown_sense():
    with pytest.raises(UsageError, match="sense must be 'min' or 'max', received 'up'"):
        _score("up")
