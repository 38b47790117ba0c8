"""``ccd-twotank``: control co-design of the nonconvex two-tank system (Kotary et al., the authors' ``TT/`` code).

Design ``y = (c1, c2)`` in ``[0.01, 0.32]^2`` (pump and outflow coefficients); target ``p = (p1, p2)`` (the
instance's parameters). For a design, the follower is the tracking MPC

    min_u  1/2 sum_{t=1}^{T} ||x_t - p||^2 + 1/2 w sum_{t=0}^{T-1} ||u_t||^2,   u_t in [0, 1]^2,
    x_{t+1} = x_t + dt f(x_t, u_t; c),   x_0 = 0,

with ``f_1 = c1 (1 - v) q - c2 sqrt(h1 + 1e-5)``, ``f_2 = c1 v q + c2 sqrt(h1 + 1e-5) - c2 sqrt(h2 + 1e-5)``,
``(q, v) = u`` (pump, valve), ``h = clip(x, 0, 1)`` inside the right-hand side only (as the authors' code does),
``dt = 0.5``, ``T = 20``, ``w = 1e-3``. The leader pays ``c1 + c2`` and wants ``x_T = p``; the score is the
penalised objective ``c1 + c2 + kappa ||x_T - p||^2`` with ``kappa = 100``.

**The follower's response is defined, not left to a solver's luck.** The lower level is nonconvex and has
several local minima for some ``(y, p)``. :func:`solve_follower` runs a projected Gauss-Newton method (Bertsekas'
projected Newton with an Armijo search along the projection arc) from each of the fixed constant starts in
:data:`STARTS` (the authors' single start ``u = 0`` is the first) to the stationarity tolerance, and returns the
start with the lowest lower-level objective (ties: the earlier start). The evaluator, the labels and the
baselines all use this one response.

Everything is batched torch (float64); inputs and outputs of the public functions are numpy or torch.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from bilevelbench.errors import UsageError

FAMILY = "ccd-twotank"
#: Constant control starts (pump, valve) of the follower, in order of preference for ties.
STARTS = ((0.0, 0.0), (1.0, 0.5), (0.5, 0.5), (1.0, 0.0), (1.0, 1.0))
STRUCTURE_KEYS = ("dt", "steps", "x0", "design_lo", "design_hi", "kappa", "control_weight", "sqrt_eps", "starts",
                  "follower_tol", "follower_max_iter")


@dataclass(frozen=True)
class TwoTankStructure:
    """Everything shared by the instances of a ``ccd-twotank`` set (the defaults are the family's)."""

    dt: float = 0.5
    steps: int = 20
    x0: np.ndarray = field(default_factory=lambda: np.zeros(2))
    design_lo: np.ndarray = field(default_factory=lambda: np.full(2, 0.01))
    design_hi: np.ndarray = field(default_factory=lambda: np.full(2, 0.32))
    kappa: float = 100.0
    control_weight: float = 1e-3
    sqrt_eps: float = 1e-5
    starts: np.ndarray = field(default_factory=lambda: np.array(STARTS, dtype=float))
    #: A start has converged when its projected gradient's largest entry is below this.
    follower_tol: float = 1e-9
    follower_max_iter: int = 50

    family = FAMILY
    design_dim = 2
    param_names = ("p",)

    @property
    def size(self) -> str:
        return f"2x{self.steps}"

    def arrays(self) -> dict[str, np.ndarray]:
        return {key: np.asarray(getattr(self, key), dtype=float) for key in STRUCTURE_KEYS}

    def digest(self) -> str:
        """SHA-256 over every structure array (:func:`structure_digest`)."""
        return structure_digest(FAMILY, self.arrays())

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> TwoTankStructure:
        a = {key: np.asarray(arrays[key], dtype=float) for key in STRUCTURE_KEYS}
        return cls(dt=float(a["dt"]), steps=int(a["steps"]), x0=a["x0"], design_lo=a["design_lo"],
                   design_hi=a["design_hi"], kappa=float(a["kappa"]), control_weight=float(a["control_weight"]),
                   sqrt_eps=float(a["sqrt_eps"]), starts=a["starts"].reshape(-1, 2),
                   follower_tol=float(a["follower_tol"]), follower_max_iter=int(a["follower_max_iter"]))


def structure_digest(family: str, arrays: dict[str, np.ndarray]) -> str:
    """SHA-256 over the family name and every array (name, shape and float64 bytes, in the dict's order)."""
    h = hashlib.sha256(family.encode())
    for key, value in arrays.items():
        value = np.ascontiguousarray(value, dtype=np.float64)
        h.update(key.encode())
        h.update(str(value.shape).encode())
        h.update(value.tobytes())
    return h.hexdigest()


def sample_targets(rng: np.random.Generator, n: int) -> np.ndarray:
    """Targets as in the authors' ``TT/main.py``: ``p2 ~ U(0.2, 1)``, ``p1 = p2 U(0.5, 1)``; (n, 2)."""
    p2 = 0.2 + 0.8 * rng.random(n)
    p1 = p2 * (0.5 + 0.5 * rng.random(n))
    return np.stack([p1, p2], axis=1)


# -- dynamics ------------------------------------------------------------------------------------------------
def _torch():
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is in the test and torch extras
        raise UsageError("the ccd families need torch: pip install 'bilevelbench[torch]' "
                         "(pip install torch==2.13.0 gives the CPU wheel)") from None
    return torch


def step(s: TwoTankStructure, x, u, c, with_jacobians: bool = False):
    """One Euler step ``x + dt f(x, u; c)`` for batches x (B, 2), u (B, 2), c (B, 2) (torch).

    With ``with_jacobians`` also return ``dx+/dx`` (B, 2, 2), ``dx+/du`` (B, 2, 2) (the clip's derivative is
    0 outside [0, 1], 1 inside).
    """
    torch = _torch()
    h = torch.clamp(x, 0.0, 1.0)
    q, v = u[:, 0], u[:, 1]
    c1, c2 = c[:, 0], c[:, 1]
    s1, s2 = torch.sqrt(h[:, 0] + s.sqrt_eps), torch.sqrt(h[:, 1] + s.sqrt_eps)
    f1 = c1 * (1.0 - v) * q - c2 * s1
    f2 = c1 * v * q + c2 * s1 - c2 * s2
    nxt = x + s.dt * torch.stack([f1, f2], dim=1)
    if not with_jacobians:
        return nxt
    inside1 = ((x[:, 0] > 0.0) & (x[:, 0] < 1.0)).to(x.dtype)
    inside2 = ((x[:, 1] > 0.0) & (x[:, 1] < 1.0)).to(x.dtype)
    d1 = 0.5 / s1 * inside1
    d2 = 0.5 / s2 * inside2
    zero = torch.zeros_like(d1)
    one = torch.ones_like(d1)
    ax = torch.stack([torch.stack([one - s.dt * c2 * d1, zero], 1),
                      torch.stack([s.dt * c2 * d1, one - s.dt * c2 * d2], 1)], 1)
    au = s.dt * torch.stack([torch.stack([c1 * (1.0 - v), -c1 * q], 1),
                             torch.stack([c1 * v, c1 * q], 1)], 1)
    return nxt, ax, au


def rollout(s: TwoTankStructure, u, c):
    """States x_0..x_T (B, T+1, 2) under controls u (B, T, 2) and designs c (B, 2) (torch)."""
    torch = _torch()
    x = torch.as_tensor(s.x0, dtype=u.dtype).expand(u.shape[0], 2)
    xs = [x]
    for t in range(s.steps):
        x = step(s, x, u[:, t], c)
        xs.append(x)
    return torch.stack(xs, 1)


def rollout_with_sensitivity(s: TwoTankStructure, u, c):
    """States (B, T+1, 2) and ``S`` (B, 2T, 2T): rows ``x_1..x_T`` (stacked), columns ``u_0..u_{T-1}``."""
    torch = _torch()
    B, T = u.shape[0], s.steps
    x = torch.as_tensor(s.x0, dtype=u.dtype).expand(B, 2)
    xs = [x]
    sens = torch.zeros(B, 2, 2 * T, dtype=u.dtype)
    rows = []
    for t in range(T):
        x_next, ax, au = step(s, x, u[:, t], c, with_jacobians=True)
        sens = torch.bmm(ax, sens)
        sens = torch.cat([sens[:, :, :2 * t], sens[:, :, 2 * t:2 * t + 2] + au, sens[:, :, 2 * t + 2:]], dim=2)
        rows.append(sens)
        x = x_next
        xs.append(x)
    return torch.stack(xs, 1), torch.cat(rows, dim=1)


def lower_objective(s: TwoTankStructure, x, u, p):
    """``1/2 sum_t ||x_t - p||^2 + 1/2 w sum_t ||u_t||^2`` per row (torch)."""
    r = x[:, 1:] - p[:, None, :]
    return 0.5 * (r ** 2).sum((1, 2)) + 0.5 * s.control_weight * (u ** 2).sum((1, 2))


# -- the follower ---------------------------------------------------------------------------------------------
@dataclass
class FollowerResult:
    """The follower's response for a batch (numpy arrays, instance axis first)."""

    u: np.ndarray           # (B, T, 2)
    x: np.ndarray           # (B, T+1, 2)
    objective: np.ndarray   # (B,) lower-level objective
    stationarity: np.ndarray  # (B,) largest entry of the projected gradient at the returned point
    converged: np.ndarray   # (B,) bool: the returned start met ``follower_tol``
    start: np.ndarray       # (B,) index of the chosen start in ``STARTS``
    iterations: np.ndarray  # (B,) iterations of the chosen start
    start_objectives: np.ndarray  # (B, K) final lower objective of every start


def _gradient_and_hessian(s: TwoTankStructure, u, c, p):
    torch = _torch()
    B = u.shape[0]
    x, S = rollout_with_sensitivity(s, u.view(B, s.steps, 2), c)
    r = (x[:, 1:] - p[:, None, :]).reshape(B, -1)
    w = s.control_weight
    g = torch.bmm(S.transpose(1, 2), r.unsqueeze(-1)).squeeze(-1) + w * u
    H = torch.bmm(S.transpose(1, 2), S) + w * torch.eye(u.shape[1], dtype=u.dtype)
    f = 0.5 * (r ** 2).sum(1) + 0.5 * w * (u ** 2).sum(1)
    return f, g, H, x


def exact_hessian(s: TwoTankStructure, u, c, p):
    """The exact Hessian (B, 2T, 2T) of the lower objective in ``u`` (flattened, (B, 2T)), in closed form.

    ``H = S'S + w I + sum_t J_t' M_t J_t``: the Gauss-Newton part plus each Euler step's second derivatives
    weighted by the adjoint ``lambda_{t+1}`` (the total derivative of the tracking cost in ``x_{t+1}``), with
    ``J_t`` the sensitivity of ``(x_t, u_t)`` to ``u``. The step's only second derivatives are the square roots'
    in ``x`` (inside the clip; the clip's own second derivative is zero almost everywhere) and the bilinear pump
    and valve term ``c1 q v``. Agrees with ``torch.func.hessian`` of the rollout to rounding (tested); about a
    thousand times cheaper for a batch.
    """
    torch = _torch()
    B, T = u.shape[0], s.steps
    uu = u.view(B, T, 2)
    x, S = rollout_with_sensitivity(s, uu, c)
    c1, c2 = c[:, 0], c[:, 1]
    lam = x[:, T] - p
    weights = []                                     # per state x_t, t = T-1..1: the x-second-derivative weights
    uv_terms = []                                    # per step t = T-1..0: the (q_t, v_t) cross term
    for t in range(T - 1, -1, -1):
        xt = x[:, t]
        uv_terms.append(s.dt * (lam[:, 1] - lam[:, 0]) * c1)
        if t == 0:
            break
        h = torch.clamp(xt, 0.0, 1.0)
        inside = ((xt > 0.0) & (xt < 1.0)).to(u.dtype)
        curv = 0.25 * c2.unsqueeze(1) * (h + s.sqrt_eps) ** -1.5 * inside          # (B, 2)
        weights.append(s.dt * torch.stack([(lam[:, 0] - lam[:, 1]) * curv[:, 0], lam[:, 1] * curv[:, 1]], 1))
        _, ax, _ = step(s, xt, uu[:, t], c, with_jacobians=True)
        lam = (xt - p) + torch.bmm(ax.transpose(1, 2), lam.unsqueeze(-1)).squeeze(-1)
    m = torch.cat(weights[::-1], dim=1)                                         # (B, 2(T-1)): x_1..x_{T-1}
    Sx = S[:, :2 * (T - 1)]
    H = torch.bmm(S.transpose(1, 2), S) + torch.bmm(Sx.transpose(1, 2), m.unsqueeze(-1) * Sx)
    H = H + s.control_weight * torch.eye(2 * T, dtype=u.dtype)
    cross = torch.stack(uv_terms[::-1], dim=1)                                  # (B, T)
    idx = torch.arange(T)
    H[:, 2 * idx, 2 * idx + 1] += cross
    H[:, 2 * idx + 1, 2 * idx] += cross
    return H


def solve_from(s: TwoTankStructure, design, p, u0):
    """Projected Newton from the given controls ``u0`` (B, T, 2) or (B, 2T) only: a warm start, for methods.

    Not the defined response (that is :func:`solve_follower`, from the fixed starts); returns ``(u (B, 2T),
    lower objective (B,), stationarity (B,), converged (B,) bool)`` as torch tensors.
    """
    torch = _torch()
    c = torch.as_tensor(design, dtype=torch.float64).reshape(-1, 2)
    pt = torch.as_tensor(p, dtype=torch.float64).reshape(-1, 2)
    u = torch.as_tensor(u0, dtype=torch.float64).reshape(c.shape[0], 2 * s.steps).clone()
    with torch.no_grad():
        u, f, stat, _ = _minimise(s, u, c, pt)
    return u, f, stat, stat <= s.follower_tol


def projected_gradient(u, g):
    """``u - clip(u - g, 0, 1)``: zero exactly at the stationary points of the box-constrained problem."""
    torch = _torch()
    return u - torch.clamp(u - g, 0.0, 1.0)


def _free_mask(u, g, pg_norm):
    torch = _torch()
    eps = torch.clamp(pg_norm, max=1e-3).unsqueeze(1)
    active = ((u <= eps) & (g > 0)) | ((u >= 1.0 - eps) & (g < 0))
    return ~active


def free_block(H, fm):
    """``H`` restricted to the free variables (mask ``fm``, 1.0 free / 0.0 active), the identity on the others."""
    return H * fm.unsqueeze(1) * fm.unsqueeze(2) + _torch().diag_embed(1.0 - fm)


def newton_direction(g, H, free):
    """Projected Newton direction: solve the free block of ``H d = -g``; a scaled gradient on the active set."""
    torch = _torch()
    fm = free.to(g.dtype)
    Hm = free_block(H, fm)
    L, info = torch.linalg.cholesky_ex(Hm)
    d_free = torch.cholesky_solve((-g * fm).unsqueeze(-1), L).squeeze(-1)
    bad = info != 0
    if bool(bad.any()):
        d_free[bad] = -g[bad] * fm[bad]
    return d_free * fm - g * (1.0 - fm)


_ALPHAS = tuple(0.5 ** k for k in range(8))


def _minimise(s: TwoTankStructure, u, c, p):
    """Projected Gauss-Newton from u (R, 2T); returns the final u, objective, stationarity and iterations."""
    torch = _torch()
    R = u.shape[0]
    iters = torch.zeros(R, dtype=torch.int64)
    stat = torch.full((R,), float("inf"), dtype=u.dtype)
    fval = torch.full((R,), float("inf"), dtype=u.dtype)
    live = torch.arange(R)
    alphas = torch.tensor(_ALPHAS, dtype=u.dtype)
    for _ in range(s.follower_max_iter + 1):
        if live.numel() == 0:
            break
        ul, cl, pl = u[live], c[live], p[live]
        f, g, H, _ = _gradient_and_hessian(s, ul, cl, pl)
        pg = projected_gradient(ul, g).abs().amax(1)
        fval[live], stat[live] = f, pg
        done = pg <= s.follower_tol
        out_of_budget = iters[live] >= s.follower_max_iter
        keep = ~(done | out_of_budget)
        live, ul, cl, pl, f, g, H, pg = (live[keep], ul[keep], cl[keep], pl[keep], f[keep], g[keep], H[keep],
                                         pg[keep])
        if live.numel() == 0:
            break
        d = newton_direction(g, H, _free_mask(ul, g, pg))
        na = alphas.numel()
        cand = torch.clamp(ul.unsqueeze(1) + alphas.view(1, -1, 1) * d.unsqueeze(1), 0.0, 1.0)  # (L, A, 2T)
        flat = cand.reshape(-1, ul.shape[1])
        xs = rollout(s, flat.view(-1, s.steps, 2), cl.repeat_interleave(na, 0))
        fc = lower_objective(s, xs, flat.view(-1, s.steps, 2), pl.repeat_interleave(na, 0)).view(-1, na)
        decrease = ((cand - ul.unsqueeze(1)) * g.unsqueeze(1)).sum(2)
        # Armijo, with the objective's rounding error allowed: near the solution a Newton step's decrease is
        # below float64 resolution of f while it still shrinks the projected gradient.
        slack = 8 * torch.finfo(f.dtype).eps * f.abs().unsqueeze(1)
        ok = fc <= f.unsqueeze(1) + 1e-4 * decrease + slack
        accepted = ok.any(1)
        first = ok.to(torch.int64).argmax(1)
        chosen = cand[torch.arange(live.numel()), first]
        u[live] = torch.where(accepted.unsqueeze(1), chosen, ul)
        iters[live] += 1
        stalled = ~accepted
        if bool(stalled.any()):                 # no step of the arc is acceptable: stop (stationarity says how far)
            iters[live[stalled]] = s.follower_max_iter
    return u, fval, stat, iters


def solve_follower(s: TwoTankStructure, design, p) -> FollowerResult:
    """The follower's response (module docstring) for designs (B, 2) and targets (B, 2)."""
    torch = _torch()
    c = torch.as_tensor(np.asarray(design, dtype=float)).reshape(-1, 2)
    pt = torch.as_tensor(np.asarray(p, dtype=float)).reshape(-1, 2)
    if c.shape[0] != pt.shape[0]:
        raise UsageError(f"designs and targets differ in batch size: {c.shape[0]} vs {pt.shape[0]}")
    B, K, T = c.shape[0], len(s.starts), s.steps
    starts = torch.as_tensor(np.asarray(s.starts, dtype=float))
    u0 = starts.unsqueeze(1).expand(K, T, 2).reshape(K, 2 * T).repeat(B, 1).clone()
    cr, pr = c.repeat_interleave(K, 0), pt.repeat_interleave(K, 0)
    with torch.no_grad():
        u, f, stat, iters = _minimise(s, u0, cr, pr)
    f, stat, iters = f.view(B, K), stat.view(B, K), iters.view(B, K)
    best = torch.argmin(f, dim=1)
    rows = torch.arange(B)
    u_best = u.view(B, K, T, 2)[rows, best]
    with torch.no_grad():
        x = rollout(s, u_best, c)
    st = stat[rows, best]
    return FollowerResult(u=u_best.numpy(), x=x.numpy(), objective=f[rows, best].numpy(), stationarity=st.numpy(),
                          converged=(st <= s.follower_tol).numpy(), start=best.numpy(),
                          iterations=iters[rows, best].numpy(), start_objectives=f.numpy())


# -- the leader -----------------------------------------------------------------------------------------------
def design_violation(s: TwoTankStructure, design: np.ndarray) -> np.ndarray:
    """Largest distance of each design's entries outside ``[design_lo, design_hi]`` (0 inside)."""
    design = np.asarray(design, dtype=float)
    return np.maximum(np.maximum(s.design_lo - design, design - s.design_hi), 0.0).max(1)


def upper_cost(design: np.ndarray) -> np.ndarray:
    """``c1 + c2``."""
    return np.asarray(design, dtype=float).sum(1)


def evaluate_designs(s: TwoTankStructure, design: np.ndarray, p: np.ndarray) -> dict[str, np.ndarray]:
    """Cost, coupling violation ``||x_T - p||``, penalised objective and the follower's data for each design."""
    res = solve_follower(s, design, p)
    miss = res.x[:, -1] - np.asarray(p, dtype=float)
    violation = np.linalg.norm(miss, axis=1)
    cost = upper_cost(design)
    return {"cost": cost, "violation": violation, "objective": cost + s.kappa * violation ** 2,
            "follower_objective": res.objective, "follower_stationarity": res.stationarity,
            "follower_converged": res.converged, "follower_start": res.start, "x_final": res.x[:, -1]}
