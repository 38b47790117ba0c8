"""The MIQP certifier: labels pass their independent checks, infeasibility is double-checked, backends agree."""

from __future__ import annotations

import numpy as np
import pytest

from bilevelbench.core.backends import gurobi_status
from bilevelbench.errors import UsageError
from bilevelbench.families.mimpc import problem as mimpc
from bilevelbench.families.mimpc.certify import (
    MIQP_CHECK_FIELDS,
    MIQPCertifierSettings,
    MIQPLabel,
    certify_miqp,
    check_point,
    choose_backend,
)
from bilevelbench.families.mimpc.miqp import integer_feasibility, objective

TANK = mimpc.tank_structure()


def test_certified_tank_label_passes_every_check_and_is_the_fixed_integer_optimum():
    theta = mimpc.tank_sample(np.random.default_rng(4), 1)[0]
    label = certify_miqp(TANK, theta, MIQPCertifierSettings(time_limit=120))
    assert label.status == "certified_optimal", label.reason
    assert label.checks["rel_gap"] <= 1e-6
    assert label.checks["row_violation"] <= 1e-7 and label.checks["bound_violation"] <= 1e-7
    assert label.checks["objective_agreement"] <= 1e-6
    assert np.all(label.x[TANK.integer] == np.round(label.x[TANK.integer]))
    assert objective(TANK, label.x, theta)[0] == pytest.approx(label.objective, rel=1e-12)
    # moving any integer by one step (where the ramp allows) never helps: a local optimality sanity check
    k = int(np.argmax(TANK.integer))
    worse = label.x.copy()
    worse[k] = label.x[k] + (1 if label.x[k] < 3 else -1)
    rows, _, _ = check_point(TANK, theta, worse)
    assert rows > 0 or objective(TANK, worse, theta)[0] >= label.objective - 1e-9


def test_infeasible_instance_is_proven_by_both_solvers():
    # tanks almost empty and a long, large outflow burst on tank 2: no pump schedule keeps x2 >= 0
    theta = np.concatenate([[0.1, 0.05], np.tile([0.0, 16.0], 20)])
    label = certify_miqp(TANK, theta, MIQPCertifierSettings(backend="scip", time_limit=120))
    assert label.status == "infeasible"
    assert label.checks["milp_infeasible"] == 1.0
    assert np.all(np.isnan(label.x)) and np.isnan(label.objective)
    assert integer_feasibility(TANK, theta) == "infeasible"


def test_scip_and_gurobi_agree_on_tank_optima():
    ok, why = gurobi_status()
    if not ok:
        pytest.skip(f"Gurobi unavailable: {why}")
    thetas = mimpc.tank_sample(np.random.default_rng(9), 2)
    for theta in thetas:
        scip = certify_miqp(TANK, theta, MIQPCertifierSettings(backend="scip", time_limit=120), "scip")
        grb = certify_miqp(TANK, theta, MIQPCertifierSettings(backend="gurobi", time_limit=120), "gurobi")
        assert scip.status == grb.status == "certified_optimal"
        assert scip.objective == pytest.approx(grb.objective, rel=2e-6)


def test_backend_choice_and_settings_validation():
    assert choose_backend(mimpc.robot_structure(), "auto") == "scip"  # 280 variables: over the free license
    assert choose_backend(TANK, "scip") == "scip"
    with pytest.raises(UsageError, match="backend"):
        MIQPCertifierSettings(backend="cplex")
    with pytest.raises(UsageError, match="gap"):
        MIQPCertifierSettings(gap=0.5)


def test_solver_stop_gap_is_separate_from_the_certified_gap():
    """The solver may be asked for a tighter gap than the certificate checks (the oracle asks for a tenth); files
    and journals written without the field keep their settings dictionary."""
    plain = MIQPCertifierSettings()
    assert plain.stop_gap == plain.gap and "solver_gap" not in plain.as_dict()
    tight = MIQPCertifierSettings(solver_gap=1e-7)
    assert tight.stop_gap == 1e-7 and tight.as_dict()["solver_gap"] == 1e-7
    theta = mimpc.tank_sample(np.random.default_rng(4), 1)[0]
    label = certify_miqp(TANK, theta, MIQPCertifierSettings(backend="scip", time_limit=120, solver_gap=1e-8))
    assert label.status == "certified_optimal" and label.checks["rel_gap"] <= 1e-6


def test_label_json_round_trip_keeps_every_bit():
    theta = mimpc.tank_sample(np.random.default_rng(1), 1)[0]
    label = certify_miqp(TANK, theta, MIQPCertifierSettings(time_limit=120))
    back = MIQPLabel.from_json(label.to_json())
    assert back.objective == label.objective and np.array_equal(back.x, label.x)
    assert back.checks.keys() == set(MIQP_CHECK_FIELDS)
    empty = MIQPLabel.from_json(MIQPLabel.empty(3, "failed", "why").to_json())
    assert np.all(np.isnan(empty.x)) and empty.dual_bound == -np.inf
