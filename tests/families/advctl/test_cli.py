"""adv-control from the command line: generate, verify --oracle, evaluate; bad input gets one line (issue 19)."""

from __future__ import annotations

import json

import pytest

from bilevelbench.cli import main


@pytest.mark.parametrize(("args", "message"), [
    (["--horizon", "40"], "the exact certifier is offered at most 60"),
    (["--gamma-factor", "-1"], "--gamma-factor must be a positive number"),
    (["--rel-gap", "0.5"], "--rel-gap must be between 0 and 1e-3"),
    (["--u-max", "0"], "u_max must be a positive number"),
])
def test_bad_generator_arguments_get_one_line(args, message, tmp_path, capsys):
    assert main(["-q", "generate", "adv-control", *args, "--n-test", "2", "--out", str(tmp_path / "x.h5")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert not (tmp_path / "x.h5").exists()


def test_a_submission_over_the_control_bound_is_infeasible(tmp_path, capsys):
    path = tmp_path / "adv.h5"
    assert main(["-q", "generate", "adv-control", "--horizon", "2", "--states", "2", "--n-test", "3", "--seed",
                 "2", "--out", str(path)]) == 0
    solver = tmp_path / "loud.py"
    solver.write_text("import numpy as np\nfrom bilevelbench.solvers import Prediction, Solver\n"
                      "class Loud(Solver):\n    name = 'loud'\n    version = '1'\n"
                      "    def solve(self, params):\n"
                      "        return Prediction(y=np.full((len(params['x0']), 4), 2.0))\n")
    out = tmp_path / "r.json"
    assert main(["-q", "evaluate", "--dataset", str(path), "--solver", f"{solver}:Loud", "--out", str(out),
                 "--exact-instances", "0"]) == 0
    record = json.loads(out.read_text())
    assert record["metrics"]["feasible_rate"] == 0.0
