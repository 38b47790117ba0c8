"""``ccd-hvac``: control co-design of a two-zone building HVAC system (Kotary et al., the authors' ``HVAC/`` code).

The building is two copies of the linear single-zone envelope of ``SimpleSingleZone.mat`` (pnnl/psl, shipped in
``bilevelbench/families/psl`` with its Battelle BSD-style license), states (floor, interior facade, exterior
facade, zone temperature) per zone, coupled through the interior-facade states by ``0.025`` as in the authors'
``building_utils.link_zones_long``: ``A = blockdiag(Ad, Ad)``, ``A[1, 5] = A[5, 1] = 0.025``,
``A[1, 1] = A[5, 5] = Ad[1, 1] - 0.025``. Inputs are in units of 5000 W (psl's ``umax``), so the nominal input
matrix is ``blockdiag(5000 Bd, 5000 Bd)`` (8 x 2) and ``0 <= u <= 1`` (heating only, the paper's bounds; the
code defaults to [-1, 1]). Disturbances ``d`` (outdoor temperature, occupant load, solar) are the real series of
the .mat file (the code zeroes them by default), the same window for both zones.

Design ``Y >= 0``: the 8 entries of the input matrix that are non-zero in the nominal one (4 per zone, in
row-major order). For a design, the follower is the convex QP (``N = 30``)

    min_u  sum_k ||u_k||^2 + 50 sum_{k=1}^{N} (||s_lo,k||^2 + ||s_up,k||^2),   0 <= u <= 1,
    x_{k+1} = A x_k + B(Y) u_k + E d_k,   y_k = C x_k,   ymin_k - s_lo,k <= y_k <= ymax_k + s_up,k,  s >= 0,

whose optimal slacks are ``relu(ymin - y)`` and ``relu(y - ymax)``. It is strictly convex, so its response is
unique; :func:`solve_follower` computes it by a projected semismooth Newton method to machine precision (the
verify command re-solves it with HiGHS). The leader pays ``Tr(V'Y) = sum(Y)`` and wants slacks 0; the score
is ``sum(Y) + kappa ||s||^2`` with ``kappa = 5``.

Parameters of an instance: the initial state ``x0`` (8), the comfort band ``ymin`` (N+1, 2) with
``ymax = ymin + 2``, and ``d`` (N+1, 3). Sampling (:func:`sample_instances`, seeded): each zone's lower comfort
bound is psl's beta random walk between 18 and 22 C (max step 3, change probability 0.1); the walls start at the
.mat file's 20 C and the zone at its band's midpoint; ``d`` is a window of the series at a uniform start.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources

import numpy as np

from bilevelbench.errors import UsageError
from bilevelbench.families.ccd.twotank import _torch, structure_digest

FAMILY = "ccd-hvac"
N_ZONES = 2
HORIZON = 30
COUPLING = 0.025
#: psl's umax: inputs are in units of this many watts.
INPUT_SCALE = 5000.0
STRUCTURE_KEYS = ("A", "B_nominal", "mask", "E", "C", "u_lo", "u_hi", "control_weight", "slack_weight", "kappa",
                  "horizon", "follower_tol", "follower_max_iter")


@cache
def psl_model() -> dict[str, np.ndarray]:
    """``Ad, Bd, Cd, Ed, x0`` and ``disturb`` of the shipped ``SimpleSingleZone.mat`` (float64)."""
    from scipy.io import loadmat

    with resources.as_file(resources.files("bilevelbench.families.ccd.psl") / "SimpleSingleZone.mat") as path:
        raw = loadmat(path)
    return {key: np.asarray(raw[key], dtype=float) for key in ("Ad", "Bd", "Cd", "Ed", "x0", "disturb")}


def building_matrices(n_zones: int = N_ZONES, coupling: float = COUPLING) -> dict[str, np.ndarray]:
    """``A`` (4z x 4z), nominal ``B`` (4z x z, scaled by 5000), ``E`` (4z x 3: every zone sees the same
    disturbances), ``C`` (z x 4z), as the authors' ``HVAC/main.py`` builds them."""
    m = psl_model()
    A = np.kron(np.eye(n_zones), m["Ad"])
    B = np.kron(np.eye(n_zones), m["Bd"] * INPUT_SCALE)
    E = np.vstack([m["Ed"]] * n_zones)
    C = np.kron(np.eye(n_zones), m["Cd"])
    nx = m["Ad"].shape[0]
    for k in range(n_zones - 1):
        i, j = k * nx + 1, (k + 1) * nx + 1
        A[j, i] += coupling
        A[i, j] += coupling
    for k in range(n_zones):
        i = k * nx + 1
        A[i, i] -= coupling if k in (0, n_zones - 1) else 2 * coupling
    return {"A": A, "B": B, "E": E, "C": C}


@dataclass(frozen=True)
class HVACStructure:
    """Everything shared by the instances of a ``ccd-hvac`` set."""

    A: np.ndarray
    B_nominal: np.ndarray
    mask: np.ndarray
    E: np.ndarray
    C: np.ndarray
    u_lo: float = 0.0
    u_hi: float = 1.0
    control_weight: float = 1.0
    slack_weight: float = 50.0
    kappa: float = 5.0
    horizon: int = HORIZON
    follower_tol: float = 1e-10
    follower_max_iter: int = 100

    family = FAMILY
    param_names = ("x0", "ymin", "ymax", "d")

    @property
    def design_dim(self) -> int:
        return int(np.count_nonzero(self.mask))

    @property
    def n_zones(self) -> int:
        return int(self.C.shape[0])

    @property
    def size(self) -> str:
        return f"{self.n_zones}z/{self.horizon}s"

    @property
    def nominal_design(self) -> np.ndarray:
        return self.B_nominal[self.mask.astype(bool)]

    def arrays(self) -> dict[str, np.ndarray]:
        return {key: np.asarray(getattr(self, key), dtype=float) for key in STRUCTURE_KEYS}

    def digest(self) -> str:
        """SHA-256 over every structure array (:func:`~bilevelbench.families.ccd_twotank.structure_digest`)."""
        return structure_digest(FAMILY, self.arrays())

    @classmethod
    def default(cls) -> HVACStructure:
        m = building_matrices()
        return cls(A=m["A"], B_nominal=m["B"], mask=(m["B"] != 0).astype(float), E=m["E"], C=m["C"])

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> HVACStructure:
        a = {key: np.asarray(arrays[key], dtype=float) for key in STRUCTURE_KEYS}
        scalars = {key: float(a[key]) for key in ("u_lo", "u_hi", "control_weight", "slack_weight", "kappa",
                                                  "follower_tol")}
        return cls(A=a["A"], B_nominal=a["B_nominal"], mask=a["mask"], E=a["E"], C=a["C"], horizon=int(a["horizon"]),
                   follower_max_iter=int(a["follower_max_iter"]), **scalars)


# -- sampling -------------------------------------------------------------------------------------------------
def beta_walk(rng: np.random.Generator, n: int, lo: float = 18.0, hi: float = 22.0, max_step: float = 3.0,
              p: float = 0.1) -> np.ndarray:
    """psl's ``beta_walk_max_step`` with an explicit generator: x_0 ~ U(lo, hi); with probability ``p`` a step
    ``x_t = a + (b - a) Beta(2, 2)`` with ``[a, b] = [max(lo, x_{t-1} - max_step), min(hi, x_{t-1} + max_step)]``,
    else ``x_t = x_{t-1}``."""
    out = np.empty(n)
    out[0] = rng.uniform(lo, hi)
    for t in range(1, n):
        if rng.random() < p:
            a, b = max(lo, out[t - 1] - max_step), min(hi, out[t - 1] + max_step)
            out[t] = a + (b - a) * rng.beta(2.0, 2.0)
        else:
            out[t] = out[t - 1]
    return out


def sample_instances(s: HVACStructure, rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """``x0`` (n, 8), ``ymin``/``ymax`` (n, N+1, zones), ``d`` (n, N+1, 3) (module docstring)."""
    m = psl_model()
    series = m["disturb"]
    steps = s.horizon + 1
    z = s.n_zones
    nx = s.A.shape[0] // z
    ymin = np.empty((n, steps, z))
    d = np.empty((n, steps, series.shape[1]))
    x0 = np.tile(np.repeat(m["x0"].ravel()[:nx][None], z, 0).ravel(), (n, 1))
    for i in range(n):
        for k in range(z):
            ymin[i, :, k] = beta_walk(rng, steps)
        start = int(rng.integers(0, series.shape[0] - steps + 1))
        d[i] = series[start:start + steps]
    for k in range(z):
        x0[:, k * nx + nx - 1] = ymin[:, 0, k] + 1.0
    return {"x0": x0, "ymin": ymin, "ymax": ymin + 2.0, "d": d}


# -- the condensed lower level ----------------------------------------------------------------------------------
class Condensed:
    """Batched condensed form ``y = y_free + G(Y) u`` of the outputs ``y_1..y_N`` (torch, float64)."""

    def __init__(self, s: HVACStructure) -> None:
        torch = _torch()
        self.s = s
        N = s.horizon
        A, C = s.A, s.C
        powers = [np.eye(A.shape[0])]
        for _ in range(N):
            powers.append(A @ powers[-1])
        self.CA = torch.as_tensor(np.stack([C @ P for P in powers[:N]]))      # (N, z, nx): C A^m
        k_idx, j_idx = np.tril_indices(N)
        self.k_idx, self.j_idx = torch.as_tensor(k_idx), torch.as_tensor(j_idx)
        self.m_idx = torch.as_tensor(k_idx - j_idx)
        self.mask = torch.as_tensor(s.mask.astype(bool))
        self.A = torch.as_tensor(A)
        self.E = torch.as_tensor(s.E)
        self.C = torch.as_tensor(C)

    def input_matrix(self, design):
        """``B(Y)`` (batch, nx, nu) with the design's entries at the mask's positions (row-major)."""
        torch = _torch()
        Bm = torch.zeros(design.shape[0], *self.mask.shape, dtype=design.dtype)
        Bm[:, self.mask] = design
        return Bm

    def free_response(self, x0, d):
        """``y_1..y_N`` with ``u = 0``: (batch, N, z)."""
        x = x0
        ys = []
        for k in range(self.s.horizon):
            x = x @ self.A.T + d[:, k] @ self.E.T
            ys.append(x @ self.C.T)
        return self._stack(ys)

    @staticmethod
    def _stack(ys):
        return _torch().stack(ys, 1)

    def gain(self, design):
        """``G`` (batch, N z, N nu): output ``y_{k+1}`` (rows k z..) against control ``u_j`` (columns j nu..)."""
        torch = _torch()
        Bm = self.input_matrix(design)                                         # (b, nx, nu)
        blocks = torch.einsum("mzx,bxu->bmzu", self.CA, Bm)                     # (b, N, z, nu)
        b, N = design.shape[0], self.s.horizon
        z, nu = blocks.shape[2], blocks.shape[3]
        G = torch.zeros(b, N, N, z, nu, dtype=design.dtype)
        G[:, self.k_idx, self.j_idx] = blocks[:, self.m_idx]
        return G.permute(0, 1, 3, 2, 4).reshape(b, N * z, N * nu)


def _objective(s: HVACStructure, u, y, lo, hi):
    torch = _torch()
    slack = torch.relu(lo - y) + torch.relu(y - hi)
    return s.control_weight * (u ** 2).sum(1) + s.slack_weight * (slack ** 2).sum(1)


def _grad_hess(s: HVACStructure, u, y, lo, hi, G):
    torch = _torch()
    over, under = torch.relu(y - hi), torch.relu(lo - y)
    g = 2 * s.control_weight * u + 2 * s.slack_weight * torch.bmm(G.transpose(1, 2), (over - under).unsqueeze(-1)
                                                                  ).squeeze(-1)
    active = ((y > hi) | (y < lo)).to(u.dtype)
    Ga = G * active.unsqueeze(-1)
    H = 2 * s.slack_weight * torch.bmm(Ga.transpose(1, 2), Ga) + 2 * s.control_weight * torch.eye(
        u.shape[1], dtype=u.dtype)
    return g, H


@dataclass
class HVACFollower:
    """The follower's response for a batch (torch tensors)."""

    u: object            # (b, N nu)
    y: object            # (b, N z)
    slack: object        # (b, N z): relu(ymin - y) + relu(y - ymax)
    objective: object    # (b,)
    stationarity: object  # (b,)
    iterations: object   # (b,)
    G: object            # (b, N z, N nu)
    y_free: object       # (b, N z)


def solve_follower_torch(s: HVACStructure, cond: Condensed, design, x0, ymin, ymax, d, u0=None) -> HVACFollower:
    """Projected semismooth Newton on the condensed QP (no autograd); everything torch float64.

    ``u0`` (b, N nu), optional, is a warm start (default zero); the QP is strictly convex, so the response does
    not depend on it beyond the tolerance.
    """
    from bilevelbench.families.ccd.twotank import newton_direction

    torch = _torch()
    with torch.no_grad():
        G = cond.gain(design)
        y_free = cond.free_response(x0, d).flatten(1)
        lo, hi = ymin[:, 1:].flatten(1), ymax[:, 1:].flatten(1)
        b, n = design.shape[0], G.shape[2]
        u = (torch.zeros(b, n, dtype=design.dtype) if u0 is None
             else torch.clamp(torch.as_tensor(u0, dtype=design.dtype).reshape(b, n), s.u_lo, s.u_hi).clone())
        iters = torch.zeros(b, dtype=torch.int64)
        stat = torch.zeros(b, dtype=design.dtype)
        live = torch.arange(b)
        alphas = torch.tensor([0.5 ** k for k in range(20)], dtype=design.dtype)
        for _ in range(s.follower_max_iter + 1):
            if live.numel() == 0:
                break
            ul, Gl = u[live], G[live]
            yl = y_free[live] + torch.bmm(Gl, ul.unsqueeze(-1)).squeeze(-1)
            g, H = _grad_hess(s, ul, yl, lo[live], hi[live], Gl)
            pg = (ul - torch.clamp(ul - g, s.u_lo, s.u_hi)).abs().amax(1)
            stat[live] = pg
            keep = (pg > s.follower_tol * (1.0 + g.abs().amax(1))) & (iters[live] < s.follower_max_iter)
            live, ul, Gl, yl, g, H, pg = live[keep], ul[keep], Gl[keep], yl[keep], g[keep], H[keep], pg[keep]
            if live.numel() == 0:
                break
            eps = torch.clamp(pg, max=1e-6).unsqueeze(1)
            free = ~(((ul <= s.u_lo + eps) & (g > 0)) | ((ul >= s.u_hi - eps) & (g < 0)))
            step = newton_direction(g, H, free)
            f = _objective(s, ul, yl, lo[live], hi[live])
            na = alphas.numel()
            cand = torch.clamp(ul.unsqueeze(1) + alphas.view(1, -1, 1) * step.unsqueeze(1), s.u_lo, s.u_hi)
            yc = yl.unsqueeze(1) + torch.einsum("bij,baj->bai", Gl, cand - ul.unsqueeze(1))
            fc = _objective(s, cand.flatten(0, 1), yc.flatten(0, 1), lo[live].repeat_interleave(na, 0),
                            hi[live].repeat_interleave(na, 0)).view(-1, na)
            dec = ((cand - ul.unsqueeze(1)) * g.unsqueeze(1)).sum(2)
            ok = fc <= f.unsqueeze(1) + 1e-4 * dec + 8 * torch.finfo(f.dtype).eps * f.abs().unsqueeze(1)
            first = ok.to(torch.int64).argmax(1)
            u[live] = torch.where(ok.any(1).unsqueeze(1), cand[torch.arange(live.numel()), first], ul)
            iters[live] += 1
            iters[live[~ok.any(1)]] = s.follower_max_iter
        y = y_free + torch.bmm(G, u.unsqueeze(-1)).squeeze(-1)
        slack = torch.relu(lo - y) + torch.relu(y - hi)
        obj = _objective(s, u, y, lo, hi)
    return HVACFollower(u=u, y=y, slack=slack, objective=obj, stationarity=stat, iterations=iters, G=G, y_free=y_free)


def as_tensors(params: dict[str, np.ndarray]):
    torch = _torch()
    return tuple(torch.as_tensor(np.asarray(params[k], dtype=float)) for k in ("x0", "ymin", "ymax", "d"))


def design_violation(s: HVACStructure, design: np.ndarray) -> np.ndarray:
    """Largest negative part of each design (``Y >= 0``)."""
    return np.maximum(-np.asarray(design, dtype=float), 0.0).max(1)


def evaluate_designs(s: HVACStructure, design: np.ndarray, params: dict[str, np.ndarray],
                     cond: Condensed | None = None) -> dict[str, np.ndarray]:
    """Cost ``sum(Y)``, coupling violation ``||s||``, penalised objective and the follower's data per design."""
    torch = _torch()
    design = np.asarray(design, dtype=float)
    if design.ndim != 2 or design.shape[1] != s.design_dim:
        raise UsageError(f"expected designs of shape (batch, {s.design_dim}), received {design.shape}")
    cond = cond or Condensed(s)
    res = solve_follower_torch(s, cond, torch.as_tensor(design), *as_tensors(params))
    violation = torch.linalg.norm(res.slack, dim=1).numpy()
    cost = design.sum(1)
    return {"cost": cost, "violation": violation, "objective": cost + s.kappa * violation ** 2,
            "follower_objective": res.objective.numpy(), "follower_stationarity": res.stationarity.numpy(),
            "follower_converged": (res.iterations < s.follower_max_iter).numpy(),
            "u": res.u.numpy()}


def highs_follower_value(s: HVACStructure, design: np.ndarray, params: dict[str, np.ndarray]) -> float:
    """The follower's optimal value for one instance from HiGHS on the QP with explicit slacks (an independent
    check of :func:`solve_follower_torch`): variables ``(u, s_lo, s_up)``, rows ``G u + s_lo >= ymin - y_free``
    and ``G u - s_up <= ymax - y_free``."""
    from bilevelbench.qp import INF, solve_convex_qp

    torch = _torch()
    cond = Condensed(s)
    G = cond.gain(torch.as_tensor(np.asarray(design, float)[None]))[0].numpy()
    x0, ymin, ymax, d = (np.asarray(params[k], float)[None] for k in ("x0", "ymin", "ymax", "d"))
    y_free = cond.free_response(torch.as_tensor(x0), torch.as_tensor(d)).flatten(1)[0].numpy()
    lo, hi = ymin[0, 1:].ravel() - y_free, ymax[0, 1:].ravel() - y_free
    m, n = G.shape
    P = np.zeros((n + 2 * m, n + 2 * m))
    P[:n, :n] = 2 * s.control_weight * np.eye(n)
    P[n:, n:] = 2 * s.slack_weight * np.eye(2 * m)
    A = np.block([[G, np.eye(m), np.zeros((m, m))], [G, np.zeros((m, m)), -np.eye(m)]])
    res = solve_convex_qp(P, np.zeros(n + 2 * m), A, np.concatenate([lo, np.full(m, -INF)]),
                          np.concatenate([np.full(m, INF), hi]),
                          np.concatenate([np.full(n, s.u_lo), np.zeros(2 * m)]),
                          np.concatenate([np.full(n, s.u_hi), np.full(2 * m, INF)]))
    if res.status != "optimal":
        return float("nan")
    return float(res.objective)
