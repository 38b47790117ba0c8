"""Loading a solver from a folder, a file or a module, and coercing what solve returns."""

from __future__ import annotations

import numpy as np
import pytest

from bilevelbench.errors import SubmissionError, UsageError
from bilevelbench.solvers import Prediction, coerce_prediction, load_solver, resolve_solver_class


def test_three_spec_forms(tmp_path):
    folder = tmp_path / "sub"
    folder.mkdir()
    (folder / "solver.py").write_text("class Solver:\n    name = 'folder'\n    def solve(self, p):\n        pass\n")
    (tmp_path / "other.py").write_text("class Mine:\n    name = 'file'\n    def solve(self, p):\n        pass\n")
    assert load_solver(str(folder)).name == "folder"
    assert load_solver(f"{tmp_path / 'other.py'}:Mine").name == "file"
    assert resolve_solver_class("bilevelbench.exact_solver:ExactSolver").__name__ == "ExactSolver"


@pytest.mark.parametrize(("spec", "error", "message"), [
    ("", UsageError, "empty solver spec"),
    ("justaword", UsageError, "is not a folder"),
    ("no_such_module_xyz:Solver", SubmissionError, "no module named 'no_such_module_xyz'"),
    ("bilevelbench.solvers:Nope", SubmissionError, "defines no class 'Nope'"),
    ("bilevelbench.solvers:TaskSpec", SubmissionError, "has no solve"),
    ("bilevelbench.solvers:SPEC_FORMS", SubmissionError, "expected a class"),
    ("missing/file.py:Solver", SubmissionError, "does not exist"),
])
def test_bad_specs(spec, error, message):
    with pytest.raises(error, match=message):
        resolve_solver_class(spec)


def test_constructor_errors_are_submission_errors(tmp_path):
    (tmp_path / "s.py").write_text("class S:\n    def __init__(self):\n        1/0\n    def solve(self, p):\n"
                                   "        pass\n")
    with pytest.raises(SubmissionError, match="ZeroDivisionError"):
        load_solver(f"{tmp_path / 's.py'}:S")


def test_coerce_prediction_forms():
    y, z = coerce_prediction(Prediction(y=[[1, 2]], z=[[3]]), 1, 2, 1)
    assert y.dtype == np.float64 and z.tolist() == [[3.0]]
    assert coerce_prediction({"y": np.zeros((2, 2))}, 2, 2, 1)[1] is None
    assert coerce_prediction(np.zeros(2), 1, 2, 1)[0].shape == (1, 2)  # a flat y for a batch of one
    import torch  # a test dependency
    assert coerce_prediction(torch.zeros(3, 2), 3, 2, 1)[0].shape == (3, 2)
    for bad, msg in [({"z": 1}, "without 'y'"), (np.zeros((2, 3)), r"expected \(2, 2\)"),
                     (np.array([["a", "b"]] * 2), "expected real numbers"), (None, "no y")]:
        with pytest.raises(SubmissionError, match=msg):
            coerce_prediction(bad, 2, 2, 1)
