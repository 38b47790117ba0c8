"""The derived KKT bounds must contain every bilevel-feasible point below the objective cap."""

import numpy as np
import pytest

from bilevelbench.errors import CertificationError
from bilevelbench.families.bqp.bounds import BoundDeriver
from bilevelbench.families.bqp.enumeration import solve_by_enumeration
from bilevelbench.families.bqp.problem import coupling_residual, follower_response, upper_objective
from tests.conftest import random_instances


def _inside(x, lo, hi):
    return bool(np.all(x >= lo) and np.all(x <= hi))


@pytest.mark.parametrize("size,seed", [((3, 2), 0), ((6, 4), 1), ((9, 6), 2)])
def test_bounds_contain_the_global_optimum(size, seed):
    s, params = random_instances(*size, count=6, seed=seed)
    deriver = BoundDeriver(s)
    for c, d in zip(params["c"], params["d"]):
        exact = solve_by_enumeration(s, c, d)
        b = deriver.derive(c, d, exact.objective)  # the tightest valid cap
        assert _inside(exact.y, b.y_lo, b.y_hi) and _inside(exact.z, b.z_lo, b.z_hi)
        lam = follower_response(s, exact.y).lam
        assert np.all(lam <= b.lam_hi)
        assert np.all(s.h + s.G @ exact.y - s.F @ exact.z <= b.slack_hi)


def test_bounds_contain_random_feasible_points_below_the_cap():
    s, params = random_instances(3, 2, count=1, seed=4)
    c, d = params["c"][0], params["d"][0]
    rng = np.random.default_rng(0)
    points = []
    for y in rng.normal(scale=3.0, size=(300, 3)):
        z = follower_response(s, y).z
        if coupling_residual(s, y, z).max() <= 0:
            points.append((y, z, float(upper_objective(s, c, d, y, z)[0])))
    assert len(points) > 20
    cap = float(np.median([p[2] for p in points]))
    b = BoundDeriver(s).derive(c, d, cap)
    below = [(y, z) for y, z, obj in points if obj <= cap]
    assert below
    for y, z in below:
        assert _inside(y, b.y_lo, b.y_hi) and _inside(z, b.z_lo, b.z_hi)


def test_no_strictly_feasible_direction_is_refused():
    s, _ = random_instances(3, 2, count=1, seed=0)
    arrays = s.arrays()
    # Rows z1 <= . and -z1 <= . : no direction makes both strictly decrease.
    arrays["F"] = np.array([[1.0, 0.0], [-1.0, 0.0]])
    arrays["G"] = np.zeros((2, 3))
    arrays["h"] = np.ones(2)
    from bilevelbench.families.bqp.problem import BQPStructure

    with pytest.raises(CertificationError, match="strictly feasible direction"):
        BoundDeriver(BQPStructure(**arrays))
