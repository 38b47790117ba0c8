"""The DC-OPF proxy's differentiable pieces: the hypersimplex projection (balance and bounds for any input,
identity on balanced inputs, the boundary out of range, implicit gradients against finite differences), the
network's feasibility far outside any training range, and dense-PTDF flows equal to the family's."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from bilevelbench.families.dcopf.generate import load_structure
from bilevelbench.families.dcopf.problem import DCOPFStructure
from bilevelbench.families.dcopf.proxy import (
    SHIFT_METHODS,
    DCOPFObjective,
    DCOPFProxy,
    FrozenProxy,
    bound_clamp,
    dense_ptdf,
    find_shift,
    hypersimplex_projection,
    project_numpy,
)
from tests.families.dcopf.test_problem import three_bus

F64 = torch.float64


@pytest.fixture(scope="module")
def case14() -> DCOPFStructure:
    return load_structure("case14")[0]


def limits(pmin, pmax):
    return torch.tensor(pmin, dtype=F64), torch.tensor(pmax, dtype=F64)


def assert_feasible(pg, demand, pmin, pmax, rtol=1e-9):
    """Bounds hold exactly; balance holds to ``rtol`` relative where demand is in range."""
    assert torch.all(pg >= pmin) and torch.all(pg <= pmax)
    inside = (demand >= pmin.sum()) & (demand <= pmax.sum())
    err = (pg.sum(1) - demand).abs() / demand.abs().clamp(min=1.0)
    assert torch.all(err[inside] <= rtol), err[inside].max()


@pytest.mark.parametrize("method", SHIFT_METHODS)
def test_projection_balances_random_and_adversarial_inputs(method):
    rng = np.random.default_rng(0)
    ng = 12
    lo = rng.uniform(-20, 50, ng)
    lo[:3] = 0.0
    hi = lo + rng.uniform(0, 200, ng)
    hi[3] = lo[3]                                     # a generator fixed at its only value
    pmin, pmax = limits(lo, hi)
    B = 400
    p0 = torch.tensor(rng.uniform(lo, hi, (B, ng)))
    p0[:50] = torch.tensor(rng.uniform(-1e7, 1e7, (50, ng)))   # far outside the limits
    p0[50:60] = pmin                                           # corners
    p0[60:70] = pmax
    demand = torch.tensor(rng.uniform(float(pmin.sum()), float(pmax.sum()), B))
    demand[70:80] = pmin.sum()                                  # exactly at the ends of the range
    demand[80:90] = pmax.sum()
    pg = hypersimplex_projection(p0, demand, pmin, pmax, method)
    assert_feasible(pg, demand, pmin, pmax)
    # both shift searches, and the NumPy inference copy, compute the same function
    other = SHIFT_METHODS[1 - SHIFT_METHODS.index(method)]
    np.testing.assert_allclose(pg.numpy(), find_shift(p0, demand, pmin, pmax, other)[1].numpy(), atol=1e-7)
    pg_np = project_numpy(p0.numpy(), demand.numpy(), lo, hi)
    np.testing.assert_allclose(pg_np, pg.numpy(), atol=1e-7)
    assert_feasible(torch.tensor(pg_np), demand, pmin, pmax)
    out = project_numpy(p0[:4].numpy(), np.array([-5.0, 0.0, 1e9, np.inf]), lo, hi)
    np.testing.assert_array_equal(out, np.vstack([lo, lo, hi, hi]))


@pytest.mark.parametrize("method", SHIFT_METHODS)
def test_projection_is_the_identity_on_balanced_inputs(method):
    rng = np.random.default_rng(1)
    pmin, pmax = limits(np.zeros(6), np.full(6, 100.0))
    p0 = torch.tensor(rng.uniform(5, 95, (20, 6)))
    t, pg, free = find_shift(p0, p0.sum(1), pmin, pmax, method)
    np.testing.assert_allclose(pg.numpy(), p0.numpy(), rtol=0, atol=1e-10)
    assert torch.all(t.abs() < 1e-10) and torch.all(free)


@pytest.mark.parametrize("method", SHIFT_METHODS)
def test_demand_out_of_range_gives_the_nearest_bound_vector(method):
    pmin, pmax = limits([0.0, 10.0, 5.0], [50.0, 40.0, 5.0])
    p0 = torch.tensor([[20.0, 20.0, 5.0], [50.0, 10.0, 5.0]], dtype=F64, requires_grad=True)
    low = torch.tensor([3.0, -1e9], dtype=F64, requires_grad=True)
    high = torch.tensor([95.0 + 1e-6, 1e12], dtype=F64, requires_grad=True)
    out_low = hypersimplex_projection(p0, low, pmin, pmax, method)
    out_high = hypersimplex_projection(p0, high, pmin, pmax, method)
    assert torch.equal(out_low.detach(), pmin.expand(2, 3))
    assert torch.equal(out_high.detach(), pmax.expand(2, 3))
    (out_low.sum() + out_high.sum()).backward()
    assert torch.all(p0.grad == 0) and torch.all(low.grad == 0) and torch.all(high.grad == 0)


@pytest.mark.parametrize("method", SHIFT_METHODS)
def test_projection_gradient_matches_finite_differences(method):
    """Random points where no generator sits on a limit's edge: the active set is stable under eps."""
    rng = np.random.default_rng(2)
    pmin, pmax = limits([0.0, 10.0, 0.0, 5.0, 0.0, 0.0], [50.0, 40.0, 30.0, 5.0, 100.0, 20.0])
    p0 = (pmin + (pmax - pmin) * torch.tensor(rng.uniform(0.05, 0.95, (5, 6)))).requires_grad_()
    demand = torch.tensor([60.0, 120.0, 150.0, 20.0, 200.0], dtype=F64, requires_grad=True)
    # every row has some generator strictly inside its limits, and some pinned at one
    _, _, free = find_shift(p0.detach(), demand.detach(), pmin, pmax, method)
    assert torch.all(free.any(1)) and bool((~free).any())
    assert torch.autograd.gradcheck(lambda a, d: hypersimplex_projection(a, d, pmin, pmax, method), (p0, demand),
                                     eps=1e-6, atol=1e-6, fast_mode=True)


def test_gradient_moves_only_free_generators():
    pmin, pmax = limits([0.0, 0.0, 0.0], [10.0, 10.0, 10.0])
    p0 = torch.tensor([[9.0, 5.0, 2.0]], dtype=F64, requires_grad=True)
    demand = torch.tensor([20.0], dtype=F64, requires_grad=True)   # t = 1.5: generator 0 pinned at 10
    pg = hypersimplex_projection(p0, demand, pmin, pmax)
    np.testing.assert_allclose(pg.detach().numpy(), [[10.0, 6.5, 3.5]], atol=1e-12)
    w = torch.tensor([[1.0, 2.0, 5.0]], dtype=F64)
    (pg * w).sum().backward()
    np.testing.assert_allclose(p0.grad.numpy(), [[0.0, -1.5, 1.5]], atol=1e-12)
    np.testing.assert_allclose(demand.grad.numpy(), [3.5], atol=1e-12)


def test_bound_clamp_stays_within_limits():
    pmin, pmax = limits([0.0, -5.0, 3.0], [10.0, 5.0, 3.0])
    raw = torch.tensor([[-1e9, 0.0, 1e9], [1e9, -1e9, 0.0]], dtype=F64)
    p0 = bound_clamp(raw, pmin, pmax)
    assert torch.all(p0 >= pmin) and torch.all(p0 <= pmax)


@pytest.mark.parametrize("method", SHIFT_METHODS)
def test_network_is_feasible_far_outside_the_training_range(case14, method):
    s = case14
    torch.manual_seed(0)
    rng = np.random.default_rng(3)
    model = DCOPFProxy(s, s.pd_ref, 0.1 * s.pd_ref + 1.0, hidden=(16, 16), method=method)
    with torch.no_grad():                              # make the network say something strong
        for p in model.mlp.parameters():
            p.mul_(30.0)
    ref = s.pd_ref
    loads = np.vstack([ref * 10.0, ref * 0.0, -ref, ref * rng.uniform(0.5, 1.5, (20, s.n_bus)),
                       rng.uniform(-1e6, 1e6, (20, s.n_bus)), rng.normal(0.0, 1e3, (20, s.n_bus)),
                       np.full((1, s.n_bus), 1e30), ref * 1e-12])
    pd = torch.tensor(loads)
    pg = model(pd)
    assert torch.all(torch.isfinite(pg))
    pmin, pmax = limits(s.pmin, s.pmax)
    demand = model.demand(pd)
    assert_feasible(pg, demand, pmin, pmax)
    assert bool(((demand >= pmin.sum()) & (demand <= pmax.sum())).any())
    # out of range: all at pmin (zero or negative load) or all at pmax (tenfold or absurd load)
    below, above = demand < pmin.sum(), demand > pmax.sum()
    assert torch.equal(pg[below], pmin.expand(int(below.sum()), -1))
    assert torch.equal(pg[above], pmax.expand(int(above.sum()), -1))
    assert bool(below.any()) and bool(above.any())
    np.testing.assert_array_equal(model.predict(loads[0]), pg[:1].detach().numpy())
    # the NumPy copy used at inference: the same answers up to float32 rounding in the MLP, just as feasible
    frozen = FrozenProxy(model)
    pg_np = frozen(loads)
    assert np.all(np.isfinite(pg_np))
    assert_feasible(torch.tensor(pg_np), demand, pmin, pmax)
    np.testing.assert_allclose(pg_np, pg.detach().numpy(), rtol=0, atol=1e-3 * float(pmax.max()))
    np.testing.assert_array_equal(pg_np[below.numpy()], np.broadcast_to(s.pmin, (int(below.sum()), s.n_gen)))


def shifter_grid() -> DCOPFStructure:
    """Four buses, reference 1, a phase shifter, a tap, a shunt, one unlimited branch, two generators at bus 0."""
    return DCOPFStructure(
        gen_bus=np.array([0, 0, 3]), pmin=np.zeros(3), pmax=np.array([100.0, 80.0, 60.0]),
        cost=np.array([[0.01, 10.0, 5.0], [0.0, 20.0, 0.0], [0.02, 15.0, 1.0]]),
        branch_from=np.array([0, 1, 2, 0, 3]), branch_to=np.array([1, 2, 3, 2, 1]),
        b=np.array([10.0, 1 / (0.05 * 0.97), 8.0, 5.0, 12.0]), shift=np.array([0.0, 0.05, 0.0, 0.0, -0.02]),
        rate=np.array([40.0, np.inf, 30.0, 25.0, 50.0]), gs=np.array([0.0, 3.0, 0.0, 1.0]),
        pd_ref=np.array([10.0, 50.0, 40.0, 30.0]), penalty=1500.0, base_mva=100.0, ref=1,
        bus_ids=np.array([1, 2, 3, 4]))


@pytest.mark.parametrize("make", [three_bus, shifter_grid, lambda: load_structure("case14")[0]])
def test_torch_flows_and_objective_equal_the_family(make):
    s = make()
    rng = np.random.default_rng(4)
    ptdf = dense_ptdf(s)
    assert ptdf.shape == (s.n_branch, s.n_bus) and np.all(ptdf[:, s.ref] == 0)
    obj = DCOPFObjective(s, ptdf)
    pd = s.pd_ref[None] * rng.uniform(0.5, 1.5, (7, s.n_bus))
    pg = rng.uniform(s.pmin, s.pmax, (7, s.n_gen))
    f = obj.flows(torch.tensor(pg), torch.tensor(pd)).numpy()
    np.testing.assert_allclose(f, s.flows(pg, pd), rtol=1e-10, atol=1e-9)
    base = obj.base_flows(torch.tensor(pd))
    total, cost, xi = obj(torch.tensor(pg), base=base)
    np.testing.assert_allclose(total.numpy(), s.objective(pg, pd), rtol=1e-10)
    np.testing.assert_allclose(cost.numpy(), s.generation_cost(pg), rtol=1e-12)
    np.testing.assert_allclose(xi.numpy(), s.thermal_violation(s.flows(pg, pd)).sum(1), atol=1e-8)


def test_margin_tightens_the_penalised_limit():
    s = three_bus(rate13=60.0)
    pg = torch.tensor([[150.0, 0.0]], dtype=F64)                # line 0-2 carries 100 MW
    pd = torch.tensor(s.pd_ref[None])
    _, _, xi = DCOPFObjective(s)(pg, pd)
    _, _, xi_tight = DCOPFObjective(s, margin=0.5)(pg, pd)
    assert float(xi) == pytest.approx(40.0) and float(xi_tight) == pytest.approx(70.0)
