"""DC-OPF labels: HiGHS's answer on a 3-bus system solved by hand, the dual certificate, and failures."""

from __future__ import annotations

import numpy as np
import pytest

from bilevelbench.errors import UsageError
from bilevelbench.families.dcopf.certify import DCOPFCertifierSettings, DCOPFModel, certify_dcopf, check_label
from tests.families.dcopf.test_problem import three_bus

SETTINGS = DCOPFCertifierSettings()


def test_three_bus_optimum_worked_out_by_hand():
    """f_02 = 50 + p0/3 <= 60 caps the cheap generator at 30 MW: pg = (30, 120), cost 3900. Both generators are
    marginal: LMP_0 = 10, LMP_1 = 30 = 10 + mu/3 gives mu = 60, LMP_2 = 10 + 2/3 * 60 = 50."""
    s = three_bus()
    label = certify_dcopf(DCOPFModel(s), s.pd_ref, SETTINGS)
    assert label.status == "certified_optimal", label.reason
    np.testing.assert_allclose(label.pg, [30.0, 120.0], atol=1e-7)
    assert np.isclose(label.objective, 3900.0)
    np.testing.assert_allclose(label.lmp, [10.0, 30.0, 50.0], atol=1e-7)
    assert np.isclose(label.price, 10.0)
    np.testing.assert_allclose(label.line_dual, [0.0, 0.0, 60.0], atol=1e-7)
    np.testing.assert_allclose(label.flow, [-30.0, 90.0, 60.0], atol=1e-7)   # bus 0: 30 = f01 + f02
    assert label.checks["rel_gap"] <= 1e-9
    # the LMP is the marginal cost of load: one more MW at bus 2 costs 50 $
    more = certify_dcopf(DCOPFModel(s), s.pd_ref + np.array([0, 0, 1.0]), SETTINGS)
    assert np.isclose(more.objective - label.objective, 50.0)


def test_cheap_penalty_is_paid_instead_of_redispatch():
    """With M = 30 $/MW a MW of line violation (1/3 MW per MW moved to bus 0) costs 10 < 20 saved: all 150 MW
    come from bus 0 and the line carries 100 MW against 60."""
    s = three_bus(penalty=30.0)
    label = certify_dcopf(DCOPFModel(s), s.pd_ref, SETTINGS)
    assert label.status == "certified_optimal", label.reason
    np.testing.assert_allclose(label.pg, [150.0, 0.0], atol=1e-7)
    np.testing.assert_allclose(label.xi, [0.0, 0.0, 40.0], atol=1e-7)
    assert np.isclose(label.objective, 1500.0 + 30 * 40)


def test_quadratic_costs():
    """c2 = 0.05 on both: unconstrained optimum equalises 10 + 0.1 p0 = 30 + 0.1 p1 with p0 + p1 = 150:
    p0 = 175 is beyond the line; with the line binding p0 = 30 still (f_02 = 50 + p0/3)."""
    s = three_bus(c2=(0.05, 0.05))
    label = certify_dcopf(DCOPFModel(s), s.pd_ref, SETTINGS)
    assert label.status == "certified_optimal", label.reason
    np.testing.assert_allclose(label.pg, [30.0, 120.0], atol=1e-6)
    assert np.isclose(label.objective, 10 * 30 + 0.05 * 900 + 30 * 120 + 0.05 * 14400, rtol=1e-9)


def test_wrong_multipliers_fail_the_certificate():
    s = three_bus()
    model = DCOPFModel(s)
    res = model.solve(s.pd_ref)
    good = check_label(s, s.pd_ref, res["pg"], res["lmp"], res["mu_upper"], res["mu_lower"], res["objective"])
    assert good["checks"]["rel_gap"] < 1e-9 and good["checks"]["lmp_consistency"] < 1e-9
    bad = check_label(s, s.pd_ref, res["pg"], res["lmp"], 0 * res["mu_upper"], res["mu_lower"], res["objective"])
    assert bad["checks"]["rel_gap"] > 1e-3 and bad["checks"]["lmp_consistency"] > 1e-3
    # a dispatch that is not optimal: the dual bound stays valid, the gap shows it
    worse = check_label(s, s.pd_ref, np.array([20.0, 130.0]), res["lmp"], res["mu_upper"], res["mu_lower"])
    assert worse["checks"]["rel_gap"] > 1e-3
    assert worse["dual_bound"] <= 3900.0 + 1e-6


def test_demand_beyond_generation_is_labelled_infeasible():
    s = three_bus()
    label = certify_dcopf(DCOPFModel(s), np.array([0.0, 0.0, 500.0]), SETTINGS)
    assert label.status == "infeasible"
    assert "outside the generation range" in label.reason
    assert np.all(np.isnan(label.pg))


def test_bad_loads_are_refused():
    s = three_bus()
    with pytest.raises(UsageError):
        certify_dcopf(DCOPFModel(s), np.array([0.0, np.nan, 1.0]), SETTINGS)
    with pytest.raises(UsageError):
        certify_dcopf(DCOPFModel(s), np.zeros(2), SETTINGS)
    with pytest.raises(UsageError):
        DCOPFCertifierSettings(gap=0.0)


def test_quadratic_cost_prices_equal_the_marginal_cost_of_free_generators():
    # case14 with c2 = 0.01..0.05: HiGHS's QP duals alone were 2e-6 relative off c1 + 2 c2 pg (13.1009769 against
    # the exact 13.100951 that an independent OPF code returns); the label's prices must be exact
    import dataclasses

    from bilevelbench.families.dcopf.certify import free_generators
    from bilevelbench.families.dcopf.power import load_case
    from bilevelbench.families.dcopf.problem import sample_loads, structure_from_case

    base = structure_from_case(load_case("case14"))
    cost = base.cost.copy()
    cost[:, 0] = np.linspace(0.01, 0.05, base.n_gen)
    s = dataclasses.replace(base, cost=cost)
    model = DCOPFModel(s)
    settings = DCOPFCertifierSettings()
    checked = 0
    for pd in sample_loads(s, np.random.default_rng(0), 20):
        label = certify_dcopf(model, pd, settings)
        assert label.status == "certified_optimal", label.reason
        free = free_generators(s, label.pg)
        marginal = s.cost[free, 1] + 2 * s.cost[free, 0] * label.pg[free]
        np.testing.assert_allclose(label.lmp[s.gen_bus[free]], marginal, rtol=1e-10)
        checked += int(free.sum())
    assert checked > 0
