"""``adv-control``: optimal control of a linear system against a bounded adversary (BiGrad's Table 1 task).

Every instance shares a system drawn once per data set: dynamics ``x[t+1] = A x[t] + B u[t] + D w[t]`` with
``n_x`` states, ``n_u`` controls and ``n_w`` disturbance channels over a horizon of ``T`` steps. An instance is
an initial state ``x0``. Stacking ``U = (u[0], ..., u[T-1])``, ``W`` likewise and ``X = (x[1], ..., x[T])``::

    X = Phi x0 + Gu U + Gw W

Leader (the controller, regulating the system to rest)::

    min_U  J(U, W) = X' X + r U' U      s.t.  |U| <= u_max,   W in O(U)

Follower (the adversary, a hijacker with bounded authority steering the state towards its own target ``a``)::

    O(U) = argmin_W  ||X - 1_T (x) a||^2 + gamma^2 W' W   s.t.  |W| <= w_max

An instance is an initial state ``x0`` and the adversary's target ``a``. ``gamma`` (the adversary's price of
effort) is ``gamma_factor`` times the square root of the largest eigenvalue of ``Gw' Gw``, fixed per data set; the
adversary's problem is strictly convex, so its answer is unique for every ``U``. With a small ``gamma_factor`` the
adversary pushes against its bounds: which of them are active is the combinatorial core of the leader's problem
(its cost ``J(U, W*(U))`` is piecewise quadratic and not convex).

The two objectives differ, so the leader's cost moves with the adversary's answer (``dJ/dW != 0`` at the
follower's optimum): a method that differentiates through the adversary (BiGrad) sees a different gradient from
one that holds it fixed (the two-step layer). In a zero-sum game the envelope theorem would make them equal.

In the follower's form used throughout, ``M = gamma^2 I + Gw' Gw`` and ``g(U) = Gw' (1_T (x) a - Phi x0 - Gu U)``::

    O(U) = argmin_W  1/2 W' M W - g(U)' W    s.t.  -w_max <= W <= w_max
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from bilevelbench.core.structure_digest import arrays_digest
from bilevelbench.errors import SolverError, UsageError

FAMILY = "adv-control"
#: The first spawn-key entry of the family's streams (splits 0, 1, 2; the structure :data:`STRUCTURE_KEY`).
SEED_STREAM = 15
#: Spawn-key entry of the structure draw (the splits use 0, 1, 2).
STRUCTURE_KEY = 9
#: The largest horizon times disturbance channels the exact certifier is offered.
MAX_FOLLOWER_VARS = 60


def _finite(name: str, a: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    if a.shape != shape:
        raise UsageError(f"adv-control: {name} must have shape {shape}, received {a.shape}")
    if not np.all(np.isfinite(a)):
        raise UsageError(f"adv-control: {name} holds NaN or inf")
    return a


@dataclass(frozen=True, eq=False)
class AdvStructure:
    """The system every instance of a data set shares (see the module docstring)."""

    A: np.ndarray
    B: np.ndarray
    D: np.ndarray
    horizon: int
    r: float
    u_max: float
    w_max: float
    gamma: float
    x0_max: float

    def __post_init__(self) -> None:
        A = np.asarray(self.A, dtype=np.float64)
        if A.ndim != 2 or A.shape[0] != A.shape[1] or A.shape[0] < 1:
            raise UsageError(f"adv-control: A must be a square matrix, received shape {A.shape}")
        nx = A.shape[0]
        B, D = np.asarray(self.B, dtype=np.float64), np.asarray(self.D, dtype=np.float64)
        if B.ndim != 2 or B.shape[0] != nx or D.ndim != 2 or D.shape[0] != nx:
            raise UsageError(f"adv-control: B and D need {nx} rows (the states), received {B.shape} and {D.shape}")
        object.__setattr__(self, "A", _finite("A", A, A.shape))
        object.__setattr__(self, "B", _finite("B", B, B.shape))
        object.__setattr__(self, "D", _finite("D", D, D.shape))
        if int(self.horizon) < 1:
            raise UsageError(f"adv-control: --horizon must be at least 1, received {self.horizon}")
        if int(self.horizon) * D.shape[1] > MAX_FOLLOWER_VARS:
            raise UsageError(f"adv-control: horizon x disturbances = {int(self.horizon) * D.shape[1]} adversary "
                             f"variables; the exact certifier is offered at most {MAX_FOLLOWER_VARS}")
        for name in ("r", "u_max", "w_max", "gamma", "x0_max"):
            value = float(getattr(self, name))
            if not (np.isfinite(value) and value > 0):
                raise UsageError(f"adv-control: {name} must be a positive number, received {value}")

    # -- sizes ------------------------------------------------------------------------------------------------
    @property
    def nx(self) -> int:
        return self.A.shape[0]

    @property
    def nu(self) -> int:
        return self.B.shape[1]

    @property
    def nw(self) -> int:
        return self.D.shape[1]

    @property
    def n_controls(self) -> int:
        return int(self.horizon) * self.nu

    @property
    def n_disturbances(self) -> int:
        return int(self.horizon) * self.nw

    @property
    def size(self) -> str:
        return f"{self.nx}x{self.nu}x{self.nw}-T{int(self.horizon)}"

    # -- prediction matrices --------------------------------------------------------------------------------
    @cached_property
    def phi(self) -> np.ndarray:
        """(T nx, nx): the free response, block t = A^(t+1)."""
        blocks, power = [], np.eye(self.nx)
        for _ in range(int(self.horizon)):
            power = self.A @ power
            blocks.append(power)
        return np.vstack(blocks)

    def _gamma_of(self, M: np.ndarray) -> np.ndarray:
        T, nx, k = int(self.horizon), self.nx, M.shape[1]
        out = np.zeros((T * nx, T * k))
        powers = [np.eye(nx)]
        for _ in range(T):
            powers.append(self.A @ powers[-1])
        for t in range(T):                          # x[t+1] depends on input s <= t through A^(t-s) M
            for s in range(t + 1):
                out[t * nx:(t + 1) * nx, s * k:(s + 1) * k] = powers[t - s] @ M
        return out

    @cached_property
    def gu(self) -> np.ndarray:
        return self._gamma_of(self.B)

    @cached_property
    def gw(self) -> np.ndarray:
        return self._gamma_of(self.D)

    @cached_property
    def follower_hessian(self) -> np.ndarray:
        """``M = gamma^2 I + Gw' Gw``."""
        return float(self.gamma) ** 2 * np.eye(self.n_disturbances) + self.gw.T @ self.gw

    def arrays(self) -> dict[str, np.ndarray]:
        return {"A": self.A, "B": self.B, "D": self.D, "horizon": np.array(int(self.horizon)),
                "r": np.array(float(self.r)), "u_max": np.array(float(self.u_max)),
                "w_max": np.array(float(self.w_max)), "gamma": np.array(float(self.gamma)),
                "x0_max": np.array(float(self.x0_max))}

    def digest(self) -> str:
        return arrays_digest(self.arrays())


def structure_from_arrays(arrays: dict[str, np.ndarray]) -> AdvStructure:
    f = lambda key: float(np.asarray(arrays[key]))
    return AdvStructure(np.asarray(arrays["A"], float), np.asarray(arrays["B"], float),
                        np.asarray(arrays["D"], float), int(np.asarray(arrays["horizon"])), f("r"), f("u_max"),
                        f("w_max"), f("gamma"), f("x0_max"))


def draw_structure(seed: int, states: int, controls: int, disturbances: int, horizon: int, r: float,
                   u_max: float, w_max: float, gamma_factor: float, x0_max: float,
                   spectral_radius: float) -> AdvStructure:
    """The system of a data set, drawn from ``SeedSequence(seed, spawn_key=(stream, STRUCTURE_KEY))``.

    ``A`` is a Gaussian matrix rescaled to the given spectral radius (above 1: open-loop unstable); ``B`` and
    ``D`` are Gaussian over ``sqrt(n_x)``. ``gamma = gamma_factor * sqrt(lambda_max(Gw' Gw))``.
    """
    for name, value in (("states", states), ("controls", controls), ("disturbances", disturbances)):
        if int(value) < 1:
            raise UsageError(f"adv-control: --{name} must be at least 1, received {value}")
    if not (np.isfinite(gamma_factor) and gamma_factor > 0.0):
        raise UsageError(f"adv-control: --gamma-factor must be a positive number (the adversary's price of "
                         f"effort), received {gamma_factor}")
    if not (np.isfinite(spectral_radius) and spectral_radius > 0):
        raise UsageError(f"adv-control: --spectral-radius must be positive, received {spectral_radius}")
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(SEED_STREAM, STRUCTURE_KEY)))
    A = rng.standard_normal((states, states))
    A *= spectral_radius / max(np.abs(np.linalg.eigvals(A)))
    B = rng.standard_normal((states, controls)) / np.sqrt(states)
    D = rng.standard_normal((states, disturbances)) / np.sqrt(states)
    A, B, D = (np.round(a, 12) for a in (A, B, D))
    probe = AdvStructure(A, B, D, horizon, r, u_max, w_max, 1e6, x0_max)
    top = float(np.linalg.eigvalsh(probe.gw.T @ probe.gw)[-1])
    return AdvStructure(A, B, D, horizon, r, u_max, w_max, float(np.round(gamma_factor * np.sqrt(top), 12)),
                        x0_max)


def sample_instances(s: AdvStructure, rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """``n`` instances: initial states ``x0`` and adversary targets ``target`` (n, n_x), both uniform in
    ``[-x0_max, x0_max]^n_x``."""
    x0 = rng.uniform(-s.x0_max, s.x0_max, size=(n, s.nx))
    return {"x0": x0, "target": rng.uniform(-s.x0_max, s.x0_max, size=(n, s.nx))}


# -- the two levels ------------------------------------------------------------------------------------------
def states(s: AdvStructure, x0: np.ndarray, U: np.ndarray, W: np.ndarray) -> np.ndarray:
    """Stacked states ``X`` (..., T nx) of initial states (..., nx), controls and disturbances."""
    return x0 @ s.phi.T + U @ s.gu.T + W @ s.gw.T


def leader_cost(s: AdvStructure, x0: np.ndarray, U: np.ndarray, W: np.ndarray) -> np.ndarray:
    """``J(U, W) = X'X + r U'U`` (Q = I), batched over leading axes."""
    X = states(s, x0, U, W)
    return np.sum(X * X, axis=-1) + float(s.r) * np.sum(U * U, axis=-1)


def stacked_target(s: AdvStructure, target: np.ndarray) -> np.ndarray:
    """``1_T (x) a``: the target repeated over the horizon, batched."""
    return np.tile(np.asarray(target, float), int(s.horizon))


def follower_linear(s: AdvStructure, x0: np.ndarray, target: np.ndarray, U: np.ndarray) -> np.ndarray:
    """``g(U) = Gw' (1_T (x) a - Phi x0 - Gu U)``, batched."""
    return (stacked_target(s, target) - x0 @ s.phi.T - U @ s.gu.T) @ s.gw


def box_qp(M: np.ndarray, g: np.ndarray, bound: float, max_iter: int = 500) -> tuple[np.ndarray, bool]:
    """``argmin 1/2 w'Mw - g'w`` over ``|w| <= bound`` (M positive definite): :func:`bounded_qp` with symmetric
    bounds. Returns ``(w, converged)``."""
    n = g.shape[0]
    return bounded_qp(M, g, np.full(n, -float(bound)), np.full(n, float(bound)), max_iter)


def bounded_qp(M: np.ndarray, g: np.ndarray, lo: np.ndarray, hi: np.ndarray,
               max_iter: int = 500) -> tuple[np.ndarray, bool]:
    """``argmin 1/2 w'Mw - g'w`` over ``lo <= w <= hi`` (M positive definite) by a primal active-set method.

    Starts from the clipped unconstrained minimiser; each iteration either moves the free entries towards their
    minimiser until one hits a bound (which joins the fixed set) or, at a free minimiser, releases the fixed entry
    whose multiplier has the wrong sign most. Returns ``(w, converged)``: on convergence ``w`` satisfies the KKT
    conditions up to round-off (free entries solve their linear system, fixed entries sit on a bound with a
    multiplier of the right sign).
    """
    n = g.shape[0]
    w = np.clip(np.linalg.solve(M, g), lo, hi)
    fixed = (w <= lo) | (w >= hi)
    scale = float(np.max(np.maximum(np.abs(lo), np.abs(hi)), initial=0.0))
    tol = 1e-10 * (1.0 + float(np.abs(g).max(initial=0.0)) + float(np.abs(M).max()) * scale)
    for _ in range(max_iter):
        free = ~fixed
        goal = w.copy()
        if free.any():
            goal[free] = np.linalg.solve(M[np.ix_(free, free)], g[free] - M[np.ix_(free, fixed)] @ w[fixed])
        outside = free & ((goal > hi) | (goal < lo))
        if not outside.any():
            w = goal
            mu = g - M @ w                           # -gradient: >= 0 at an upper bound, <= 0 at a lower one
            wrong = np.where(fixed, np.where(w >= hi, -mu, mu), -np.inf)
            wrong = np.where(fixed & (lo == hi), -np.inf, wrong)      # a fixed variable is never released
            i = int(np.argmax(wrong))
            if wrong[i] <= tol:
                return w, True
            fixed[i] = False
            continue
        step = goal - w
        edge = np.where(goal > hi, hi, lo)
        alphas = np.full(n, np.inf)
        alphas[outside] = (edge[outside] - w[outside]) / step[outside]
        i = int(np.argmin(alphas))
        w = w + min(max(alphas[i], 0.0), 1.0) * step
        w[i] = edge[i]
        fixed[i] = True
        w = np.clip(w, lo, hi)
    return w, False


def follower_response(s: AdvStructure, x0: np.ndarray, target: np.ndarray, U: np.ndarray) -> np.ndarray:
    """The adversary's unique answer ``W*(U)`` (n, T nw) for a batch of initial states and controls.

    Solved by :func:`box_qp`; where that does not converge, by HiGHS (the convex QP), and a HiGHS failure raises.
    """
    x0, target, U = np.atleast_2d(x0), np.atleast_2d(target), np.atleast_2d(U)
    M, g = s.follower_hessian, follower_linear(s, x0, target, U)
    out = np.empty((g.shape[0], s.n_disturbances))
    for i in range(g.shape[0]):
        w, ok = box_qp(M, g[i], float(s.w_max))
        if not ok:
            w = follower_highs(s, g[i])
        out[i] = w
    return out


def follower_highs(s: AdvStructure, g: np.ndarray, time_limit: float = 60.0) -> np.ndarray:
    """The adversary's answer for one linear term ``g`` by HiGHS (an independent solver of the same QP)."""
    from bilevelbench.qp import solve_convex_qp

    n = s.n_disturbances
    res = solve_convex_qp(s.follower_hessian, -np.asarray(g, float), np.zeros((0, n)), np.zeros(0), np.zeros(0),
                          np.full(n, -float(s.w_max)), np.full(n, float(s.w_max)), time_limit=time_limit)
    if not res.optimal:
        raise SolverError(f"adv-control: HiGHS did not solve the adversary's QP (status {res.status})")
    return np.clip(res.x, -float(s.w_max), float(s.w_max))


def true_cost(s: AdvStructure, x0: np.ndarray, target: np.ndarray,
              U: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(J(U, W*(U)), W*(U))``: the leader's cost with the adversary's answer re-solved, batched."""
    W = follower_response(s, x0, target, U)
    return leader_cost(s, np.atleast_2d(x0), np.atleast_2d(U), W), W
