import numpy as np
import pytest

from bilevelbench.errors import SolverError, UsageError
from bilevelbench.families.bqp import problem as bqp
from tests.conftest import random_instances


@pytest.mark.parametrize("text,expected", [("3x2", (3, 2)), ("9X6", (9, 6)), (" 20x15 ", (20, 15))])
def test_parse_size_accepts_mxn(text, expected):
    assert bqp.parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "3", "3x", "x2", "3*2", "0x2", "3x0", "-3x2", "3x2x1", "axb", "1000x2"])
def test_parse_size_rejects_bad_strings(text):
    with pytest.raises(UsageError, match="size"):
        bqp.parse_size(text)


def test_default_constraint_counts_match_authors_9x6():
    assert bqp.default_constraint_counts(9, 6) == (15, 5)
    assert bqp.default_constraint_counts(3, 2) == (5, 2)
    assert bqp.default_constraint_counts(20, 15) == (33, 13)


def test_structure_is_reproducible_and_follows_the_generator():
    a = bqp.sample_structure(np.random.default_rng(5), 6, 4)
    b = bqp.sample_structure(np.random.default_rng(5), 6, 4)
    assert a.digest() == b.digest()
    assert a.digest() != bqp.sample_structure(np.random.default_rng(6), 6, 4).digest()
    assert (a.A.shape, a.F.shape) == ((10, 6), (4, 4))
    assert np.all((a.A >= 0) & (a.A <= 1)) and np.all((a.b >= 0) & (a.b <= 12)) and np.all(a.h <= 8)
    assert np.allclose(a.Q, a.Q.T) and np.allclose(a.H, a.H.T)
    assert np.linalg.eigvalsh(a.H)[0] >= 0.1 - 1e-12  # the ridge makes H definite
    assert a.q == 0.0 and a.g == 0.0


def test_structure_rejects_wrong_shapes_and_nan():
    s = bqp.sample_structure(np.random.default_rng(0), 3, 2)
    arrays = {k: np.asarray(getattr(s, k)) for k in bqp.STRUCTURE_KEYS}
    with pytest.raises(UsageError, match="'E' must have shape"):
        bqp.BQPStructure(**{**arrays, "E": np.ones((5, 3))})
    bad = arrays["Q"].copy()
    bad[0, 0] = np.nan
    with pytest.raises(UsageError, match="NaN"):
        bqp.BQPStructure(**{**arrays, "Q": bad})


def test_follower_response_satisfies_kkt():
    s, _ = random_instances(6, 4, 1, seed=3)
    y = np.linspace(-1, 1, 6)
    r = bqp.follower_response(s, y)
    slack = s.h + s.G @ y - s.F @ r.z
    assert slack.min() > -1e-7
    assert np.abs(s.H @ r.z + s.e + s.F.T @ r.lam).max() < 1e-6
    assert np.abs(r.lam * slack).max() < 1e-6
    assert r.objective == pytest.approx(float(bqp.lower_objective(s, y, r.z)[0]), abs=1e-8)


def test_follower_response_rejects_infeasible_lower_level():
    s = bqp.BQPStructure(Q=np.eye(1), A=np.ones((1, 1)), b=np.ones(1), E=np.ones((1, 1)), H=np.eye(1),
                         e=np.zeros(1), F=np.array([[1.0], [-1.0]]), h=np.array([-1.0, -1.0]),
                         G=np.zeros((2, 1)), f=np.zeros(1), q=0.0, g=0.0)
    with pytest.raises(SolverError, match="expected 'optimal'"):
        bqp.follower_response(s, np.zeros(1))
