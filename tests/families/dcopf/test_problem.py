"""The dcopf family: DC conventions (susceptance, taps, phase shifters, shunts), PTDF products, objective."""

from __future__ import annotations

import numpy as np
import pytest

from bilevelbench.errors import UsageError
from bilevelbench.families.dcopf.problem import DCOPFStructure, sample_loads


def three_bus(rate13: float = 60.0, penalty: float = 1500.0, c2=(0.0, 0.0)) -> DCOPFStructure:
    """Buses 0, 1, 2 (reference 0), lines 0-1, 1-2, 0-2 with x = 0.1; generators at 0 (10 $/MWh) and 1
    (30 $/MWh), 0..200 MW; 150 MW of load at bus 2; only line 0-2 is limited."""
    return DCOPFStructure(
        gen_bus=np.array([0, 1]), pmin=np.zeros(2), pmax=np.full(2, 200.0),
        cost=np.array([[c2[0], 10.0, 0.0], [c2[1], 30.0, 0.0]]),
        branch_from=np.array([0, 1, 0]), branch_to=np.array([1, 2, 2]), b=np.full(3, 10.0), shift=np.zeros(3),
        rate=np.array([np.inf, np.inf, rate13]), gs=np.zeros(3), pd_ref=np.array([0.0, 0.0, 150.0]),
        penalty=penalty, base_mva=100.0, ref=0, bus_ids=np.array([1, 2, 3]), case="three-bus")


def test_flows_split_by_reactance():
    """A transfer from bus 0 to bus 2 goes 2/3 over the direct line and 1/3 over 0-1-2."""
    s = three_bus()
    f = s.flows(np.array([150.0, 0.0]), s.pd_ref)[0]
    np.testing.assert_allclose(f, [50.0, 50.0, 100.0], atol=1e-9)
    # the PTDF row of line 0-2 (reference 0): bus 1 -> -1/3, bus 2 -> -2/3; PTDF' e_2 returns it
    w = np.array([0.0, 0.0, 1.0])
    np.testing.assert_allclose(s.ptdf_t(w)[0], [0.0, -1 / 3, -2 / 3], atol=1e-12)


def test_ptdf_transpose_is_the_adjoint_of_flows():
    rng = np.random.default_rng(0)
    s = three_bus()
    P = rng.normal(size=3)
    P -= P.mean()                                    # balanced injections
    w = rng.normal(size=3)
    f = (s.Bf @ s.angles(P[None])[0]) + 0.0          # no phase shifters: flows are PTDF P
    assert np.isclose(w @ f, s.ptdf_t(w[None])[0] @ P)


def test_tap_and_phase_shift_follow_matpower():
    """One line 0-1 with x = 0.2, tap 0.5 (b = 1/(x tap) = 10 p.u.) and a 0.1 rad shifter, parallel to a plain
    line with b = 10: the shifter pushes -b * shift * base = -100 MW around the loop."""
    s = DCOPFStructure(
        gen_bus=np.array([0]), pmin=np.zeros(1), pmax=np.full(1, 500.0), cost=np.array([[0.0, 1.0, 0.0]]),
        branch_from=np.array([0, 0]), branch_to=np.array([1, 1]), b=np.array([1 / (0.2 * 0.5), 10.0]),
        shift=np.array([0.1, 0.0]), rate=np.full(2, np.inf), gs=np.array([0.0, 20.0]),
        pd_ref=np.array([0.0, 80.0]), penalty=1500.0, base_mva=100.0, ref=0, bus_ids=np.array([5, 9]))
    pg = np.array([100.0])                            # 80 MW load + 20 MW shunt at bus 1
    f = s.flows(pg, s.pd_ref)[0]
    assert np.isclose(f.sum(), 100.0)                 # everything reaches bus 1
    # angles: 100 = 1000 (0 - va1) * 2 + (-100) -> va1 = -0.1; shifted line: 1000 * (0.1) - 100 = 0
    np.testing.assert_allclose(f, [0.0, 100.0], atol=1e-9)
    assert np.isclose(s.balance_residual(pg, s.pd_ref)[0], 0.0)


def test_objective_prices_thermal_violation():
    s = three_bus(penalty=30.0)
    pg = np.array([150.0, 0.0])                       # line 0-2 carries 100 MW against 60
    assert np.isclose(s.objective(pg, s.pd_ref)[0], 1500.0 + 30.0 * 40.0)
    assert s.bound_violation(np.array([[-1.0, 201.0]]))[0] == 1.0


def test_sampling_scales_only_loaded_buses():
    s = three_bus()
    pd = sample_loads(s, np.random.default_rng(0), 1000)
    assert np.all(pd[:, :2] == 0)
    ratio = pd[:, 2] / 150.0
    assert 0.6 * 0.85 <= ratio.min() and ratio.max() <= 1.0 * 1.15
    fixed = sample_loads(s, np.random.default_rng(0), 3, load_scale=(1, 1), load_noise=0)
    np.testing.assert_array_equal(fixed, np.tile(s.pd_ref, (3, 1)))
    with pytest.raises(UsageError):
        sample_loads(s, np.random.default_rng(0), 1, load_scale=(1.0, 0.5))
    with pytest.raises(UsageError):
        sample_loads(s, np.random.default_rng(0), 1, load_noise=1.5)


def test_bad_shapes_are_refused():
    s = three_bus()
    with pytest.raises(UsageError, match=r"shape \(B, 2\)"):
        s.objective(np.zeros(3), s.pd_ref)
    with pytest.raises(UsageError, match="pmin > pmax"):
        DCOPFStructure(**{**{k: getattr(s, k) for k in ("gen_bus", "cost", "branch_from", "branch_to", "b",
                                                          "shift", "rate", "gs", "pd_ref", "penalty", "base_mva",
                                                          "ref", "bus_ids")},
                          "pmin": np.full(2, 5.0), "pmax": np.zeros(2)})


def test_digest_changes_with_any_array():
    a, b = three_bus(), three_bus(rate13=61.0)
    assert a.digest() == three_bus().digest() != b.digest()
