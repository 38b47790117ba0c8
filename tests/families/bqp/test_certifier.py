"""The KKT-MIP certifier against an exact method that does not use it, and across solvers."""

import numpy as np
import pytest

from bilevelbench.core.backends import gurobi_status
from bilevelbench.errors import BackendUnavailableError, UsageError
from bilevelbench.families.bqp.backends import gurobi_fits_free_license, make_backend
from bilevelbench.families.bqp.certifier import Certifier, CertifierSettings
from bilevelbench.families.bqp.enumeration import solve_by_enumeration
from tests.conftest import random_instances


def _q_distance(s, y1, y2):
    """1/2 ||y1 - y2||_Q^2: the objective scale on which two optima must agree (Q may be
    ill-conditioned, so y itself is only determined to about sqrt(gap / mu_min(Q)))."""
    dy = y1 - y2
    return 0.5 * float(dy @ s.Q @ dy)


def _assert_matches_enumeration(s, params, backend="scip"):
    cert = Certifier(s, CertifierSettings(backend=backend, time_limit=60))
    for c, d in zip(params["c"], params["d"]):
        label = cert.certify(c, d)
        exact = solve_by_enumeration(s, c, d)
        assert label.status == "certified_optimal", label.reason
        assert label.objective == pytest.approx(exact.objective, rel=1e-6)
        assert label.dual_bound <= exact.objective + 1e-6 * abs(exact.objective)
        assert _q_distance(s, label.y, exact.y) < 1e-5


@pytest.mark.parametrize("size,seed,count", [((3, 2), 10, 12), ((6, 4), 11, 8), ((9, 6), 12, 4)])
def test_scip_certifier_matches_active_set_enumeration(size, seed, count):
    s, params = random_instances(*size, count=count, seed=seed)
    _assert_matches_enumeration(s, params)


def test_certifier_records_certificate_fields():
    s, params = random_instances(3, 2, count=1, seed=1)
    label = Certifier(s).certify(params["c"][0], params["d"][0])
    assert label.backend == "scip" and label.solve_time > 0 and label.nodes >= 0
    assert label.primal_bound == pytest.approx(label.objective, rel=1e-6)
    assert all(np.isfinite(v) for v in label.checks.values())
    assert label.bounds_radius > 0


def test_time_limit_gives_best_known_not_certified():
    s, params = random_instances(20, 15, count=1, seed=0)
    label = Certifier(s, CertifierSettings(time_limit=0.05)).certify(params["c"][0], params["d"][0])
    assert label.status in ("best_known", "failed")
    assert label.status != "certified_optimal"
    assert label.reason


def test_unknown_backend_is_refused():
    s, _ = random_instances(3, 2, count=1, seed=0)
    with pytest.raises(UsageError, match="backend must be one of"):
        make_backend("cplex", s)


GUROBI_OK, GUROBI_WHY = gurobi_status()


@pytest.mark.skipif(not GUROBI_OK, reason=f"cross-solver check needs Gurobi: {GUROBI_WHY}")
@pytest.mark.parametrize("size,seed", [((3, 2), 20), ((6, 4), 21), ((9, 6), 22)])
def test_cross_solver_scip_and_gurobi_agree(size, seed):
    s, params = random_instances(*size, count=4, seed=seed)
    assert gurobi_fits_free_license(s)
    scip = Certifier(s, CertifierSettings(backend="scip"))
    gurobi = Certifier(s, CertifierSettings(backend="gurobi"))
    assert gurobi.backend.name == "gurobi"
    for c, d in zip(params["c"], params["d"]):
        a, b = scip.certify(c, d), gurobi.certify(c, d)
        assert a.status == b.status == "certified_optimal", (a.reason, b.reason)
        assert a.objective == pytest.approx(b.objective, rel=1e-6)
        assert _q_distance(s, a.y, b.y) < 1e-5


@pytest.mark.skipif(not GUROBI_OK, reason=f"needs Gurobi: {GUROBI_WHY}")
def test_auto_falls_back_to_scip_when_gurobi_license_is_too_small():
    s, _ = random_instances(3, 2, count=1, seed=0)
    assert make_backend("auto", s).name == "gurobi"
    big, _ = random_instances(100, 60, count=1, seed=0)  # 260 KKT variables > 200
    if gurobi_fits_free_license(big):
        pytest.fail("test premise broken: the model should exceed the free license")
    assert make_backend("auto", big).name == "scip"
    with pytest.raises(BackendUnavailableError, match="200"):
        make_backend("gurobi", big)
