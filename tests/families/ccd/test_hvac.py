"""The HVAC building model against the psl .mat file, and its follower against HiGHS."""

from __future__ import annotations

from importlib import resources

import numpy as np
import pytest
from scipy.io import loadmat

torch = pytest.importorskip("torch")

from bilevelbench.families.ccd import hvac as hv
from bilevelbench.families.ccd.layers import HVACLayer

S = hv.HVACStructure.default()


def raw_mat():
    with resources.as_file(resources.files("bilevelbench.families.ccd.psl") / "SimpleSingleZone.mat") as path:
        return loadmat(path)


def test_matrices_are_two_coupled_copies_of_the_mat_file():
    m = raw_mat()
    Ad, Bd, Cd, Ed = (np.asarray(m[k], float) for k in ("Ad", "Bd", "Cd", "Ed"))
    A = S.A
    np.testing.assert_array_equal(A[4:, 4:][np.ix_([0, 2, 3], [0, 2, 3])], Ad[np.ix_([0, 2, 3], [0, 2, 3])])
    np.testing.assert_array_equal(A[:4, :4][np.ix_([0, 2, 3], [0, 2, 3])], Ad[np.ix_([0, 2, 3], [0, 2, 3])])
    # the interior-facade states (1 and 5) are linked by 0.025, taken from their own diagonal
    assert A[1, 5] == A[5, 1] == 0.025
    assert A[1, 1] == A[5, 5] == pytest.approx(Ad[1, 1] - 0.025, abs=1e-15)
    off = A.copy()
    off[1, 5] = off[5, 1] = 0.0
    assert np.all(off[:4, 4:] == 0) and np.all(off[4:, :4] == 0)
    np.testing.assert_array_equal(S.B_nominal[:4, 0], 5000 * Bd[:, 0])
    np.testing.assert_array_equal(S.B_nominal[4:, 1], 5000 * Bd[:, 0])
    np.testing.assert_array_equal(S.C, np.kron(np.eye(2), Cd))
    np.testing.assert_array_equal(S.E, np.vstack([Ed, Ed]))
    assert S.design_dim == 8 and S.nominal_design.sum() == pytest.approx(2 * 5000 * Bd.sum())
    assert float(np.max(np.abs(np.linalg.eigvals(A)))) < 1.0


def test_the_shipped_mat_file_is_the_documented_one_and_keeps_its_license():
    import hashlib

    folder = resources.files("bilevelbench.families.ccd.psl")
    data = (folder / "SimpleSingleZone.mat").read_bytes()
    assert hashlib.sha256(data).hexdigest() == "7b5c78a12f981b2ec84d531bb7ff2a8f5a98186d46f1f03591fe25791520a41a"
    assert "Battelle Memorial Institute" in (folder / "LICENSE.md").read_text()


def test_sampler_band_and_disturbances():
    rng = np.random.default_rng(0)
    P = hv.sample_instances(S, rng, 50)
    assert P["ymin"].shape == (50, 31, 2) and P["d"].shape == (50, 31, 3) and P["x0"].shape == (50, 8)
    assert P["ymin"].min() >= 18 and P["ymin"].max() <= 22
    np.testing.assert_array_equal(P["ymax"], P["ymin"] + 2)
    series = raw_mat()["disturb"]
    row = np.flatnonzero(np.all(np.isclose(series, P["d"][0, 0]), axis=1))
    assert row.size >= 1 and np.allclose(series[row[0]:row[0] + 31], P["d"][0])
    np.testing.assert_allclose(P["x0"][:, 3], P["ymin"][:, 0, 0] + 1)


def test_free_response_matches_a_plain_simulation():
    rng = np.random.default_rng(1)
    P = hv.sample_instances(S, rng, 2)
    cond = hv.Condensed(S)
    design = np.tile(S.nominal_design, (2, 1)) * 0.5
    u = rng.uniform(0, 1, (2, 60))
    G = cond.gain(torch.tensor(design)).numpy()
    yf = cond.free_response(torch.tensor(P["x0"]), torch.tensor(P["d"])).flatten(1).numpy()
    B = np.zeros((8, 2))
    B[S.mask.astype(bool)] = design[0]
    x = P["x0"][0].copy()
    ys = []
    for k in range(30):
        x = S.A @ x + B @ u[0, 2 * k:2 * k + 2] + S.E @ P["d"][0, k]
        ys.append(S.C @ x)
    np.testing.assert_allclose(yf[0] + G[0] @ u[0], np.concatenate(ys), rtol=1e-12, atol=1e-10)


def test_follower_matches_highs():
    rng = np.random.default_rng(2)
    P = hv.sample_instances(S, rng, 4)
    design = np.tile(S.nominal_design, (4, 1)) * rng.uniform(0.05, 1.0, (4, 1))
    got = hv.evaluate_designs(S, design, P)
    for i in range(4):
        ref = hv.highs_follower_value(S, design[i], {k: v[i] for k, v in P.items()})
        assert got["follower_objective"][i] == pytest.approx(ref, rel=1e-8, abs=1e-9)
    assert np.all(got["follower_converged"])


def test_implicit_gradient_matches_finite_differences():
    rng = np.random.default_rng(3)
    P = hv.sample_instances(S, rng, 3)
    layer = HVACLayer(S)
    Y = torch.tensor(np.tile(S.nominal_design, (3, 1)) * 0.3, requires_grad=True)
    slack, converged = layer.slacks(Y, *hv.as_tensors(P))
    assert bool(converged.all())
    (grad,) = torch.autograd.grad((slack ** 2).sum(), Y)
    for i, j in ((0, 3), (1, 7), (2, 0)):
        yp, ym = Y.detach().numpy().copy(), Y.detach().numpy().copy()
        yp[i, j] += 1e-6
        ym[i, j] -= 1e-6
        fd = (hv.evaluate_designs(S, yp, P)["violation"][i] ** 2 - hv.evaluate_designs(S, ym, P)["violation"][i] ** 2
              ) / 2e-6
        assert grad[i, j].item() == pytest.approx(fd, rel=1e-4, abs=1e-6)


def test_a_warm_start_reaches_the_same_response_in_fewer_iterations():
    rng = np.random.default_rng(4)
    P = hv.sample_instances(S, rng, 3)
    cond = hv.Condensed(S)
    Y = torch.tensor(np.tile(S.nominal_design, (3, 1)) * 0.4)
    tensors = hv.as_tensors(P)
    cold = hv.solve_follower_torch(S, cond, Y, *tensors)
    warm = hv.solve_follower_torch(S, cond, Y * 1.01, *tensors, u0=cold.u)
    again = hv.solve_follower_torch(S, cond, Y * 1.01, *tensors)
    assert torch.allclose(warm.u, again.u, atol=1e-8)                        # strictly convex: one response
    assert int(warm.iterations.sum()) < int(again.iterations.sum())
    res = HVACLayer(S).response(Y, *tensors, u0=cold.u)
    assert torch.allclose(res.u, cold.u, atol=1e-10) and bool(res.converged.all())
