"""Mixed-integer MPC families of Le, Xie and Mangharam (L4DC 2026, appendix B), as parametric MIQPs.

Both families are condensed: the decision ``x`` holds the inputs ``u_0..u_{H-1}``
and the integer variables; the states are affine in ``(x, theta)`` through the
dynamics, so a decision cannot violate the dynamics and states need not be
submitted. Objective and constraints are built once per family
(:class:`bilevelbench.families.mimpc.miqp.MIQPStructure`).

``mimpc-robot`` (double integrator among three rectangular obstacles)
    ``p_{k+1} = p_k + tau v_k + tau^2/2 a_k``, ``v_{k+1} = v_k + tau a_k`` (the
    authors' ``robot.run``), tau = 0.25 s, H = 20. For k = 1..H: ``p_k`` in
    [-0.5, 3] x [-3, 0.5], ``|v_k|_inf <= 0.5``; ``|a_k|_inf <= 0.5``. Obstacle o
    (centre c_o, half-sizes (L_o, W_o)) is avoided at every predicted position
    ``p_k`` (k = 1..H) through four binaries, ``b = 1`` relaxing a side::

        +(p_x - c_x) >= L + d_min - M b_1      +(p_y - c_y) >= W + d_min - M b_2
        -(p_x - c_x) >= L + d_min - M b_3      -(p_y - c_y) >= W + d_min - M b_4
        b_1 + b_2 + b_3 + b_4 <= 3

    with the problem's own M = 1e3 and d_min = 0.25 (3 x 20 x 4 = 240 binaries).
    Cost ``w_u sum_k |a_k|^2 + w_p sum_{k=0}^{H-1} |p_k - g|^2 + w_pt |p_H - g|^2``
    with (w_u, w_p, w_pt) = (1, 1, 10). theta = (p_0, v_0, g) in R^6.

``mimpc-tank`` (two tanks, a discrete pump level)
    ``x_{k+1} = A x_k + B_u u_k + B_d delta_k + E d_k``, H = 20, for k = 1..H
    ``0 <= x_k <= (8.4, 3.6)``; ``0 <= u_k <= 8`` (each entry);
    ``delta_k in {0, 1, 2, 3}``; ``|delta_k - delta_{k-1}| <= 1`` for k = 1..H-1.
    Cost ``sum_{k=0}^{H-1} (x_k - r)'Q(x_k - r) + u_k'R u_k + rho delta_k^2 +
    (x_H - r)'Q_t(x_H - r)``. theta = (x_0, d_0, ..., d_19) in R^42.

Choices the paper leaves open are listed in ``docs/families/mimpc.md``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bilevelbench.errors import UsageError
from bilevelbench.families.mimpc.miqp import MIQPStructure

GENERATOR_VERSION = "1"
PAPER = "Le, Xie and Mangharam, A Hybrid Learning-to-Optimize Framework for Mixed-Integer Quadratic Programming"
#: The authors' code reports 100 (f - f*) / (100 + |f*|); bilevelbench stores the offset and reports it beside
#: the plain relative gap.
PAPER_GAP_OFFSET = 100.0
FAMILIES = ("mimpc-robot", "mimpc-tank")


class _Builder:
    """Accumulates a condensed linear MPC into an :class:`MIQPStructure` (all maps act on ``w = [x; theta]``)."""

    def __init__(self, n: int, p: int) -> None:
        self.n, self.p = n, p
        self.W = np.zeros((n + p, n + p))
        self.c = np.zeros(n + p)
        self.c0 = 0.0
        self.rows: list[np.ndarray] = []
        self.rhs: list[float] = []
        self.cls: list[int] = []

    def x(self, index: int | np.ndarray) -> np.ndarray:
        """Rows selecting decision entries."""
        idx = np.atleast_1d(index)
        out = np.zeros((idx.size, self.n + self.p))
        out[np.arange(idx.size), idx] = 1.0
        return out

    def theta(self, index: int | np.ndarray) -> np.ndarray:
        idx = np.atleast_1d(index)
        out = np.zeros((idx.size, self.n + self.p))
        out[np.arange(idx.size), self.n + idx] = 1.0
        return out

    def add_cost(self, L: np.ndarray, l: np.ndarray, Q: np.ndarray) -> None:
        """Add ``(L w + l)' Q (L w + l)``."""
        self.W += 2.0 * L.T @ Q @ L
        self.c += 2.0 * L.T @ Q @ l
        self.c0 += float(l @ Q @ l)

    def add_rows(self, L: np.ndarray, upper: np.ndarray, cls: int) -> None:
        """Add ``L w <= upper``."""
        for row, ub in zip(np.atleast_2d(L), np.atleast_1d(upper)):
            self.rows.append(row)
            self.rhs.append(float(ub))
            self.cls.append(cls)

    def build(self, lb, ub, integer, class_names, decision_names, extra) -> MIQPStructure:
        R = np.array(self.rows)
        W = 0.5 * (self.W + self.W.T)
        return MIQPStructure(W=W, c=self.c, c0=self.c0, G=R[:, : self.n], K=R[:, self.n:], h=np.array(self.rhs),
                             lb=lb, ub=ub, integer=integer, row_class=np.array(self.cls),
                             class_names=class_names, decision_names=decision_names, extra=extra)


def _predict_states(b: _Builder, A: np.ndarray, s0: np.ndarray, step_input) -> list[np.ndarray]:
    """State maps ``s_k = S_k w`` for k = 0..H from ``s_{k+1} = A s_k + step_input(k)``."""
    states = [s0]
    for k in range(len(step_input)):
        states.append(A @ states[-1] + step_input[k])
    return states


# -- robot -------------------------------------------------------------------------------
@dataclass(frozen=True)
class RobotConfig:
    """Constants of ``mimpc-robot`` (appendix B of the paper, as given in issue 5)."""

    tau: float = 0.25
    horizon: int = 20
    box_lo: tuple[float, float] = (-0.5, -3.0)
    box_hi: tuple[float, float] = (3.0, 0.5)
    v_max: float = 0.5
    a_max: float = 0.5
    obstacle_centres: tuple[tuple[float, float], ...] = ((1.0, 0.0), (0.7, -1.1), (0.4, -2.5))
    obstacle_half_sizes: tuple[tuple[float, float], ...] = ((0.8, 1.0), (1.0, 0.8), (0.8, 1.0))
    d_min: float = 0.25
    big_m: float = 1e3
    w_pt: float = 10.0
    w_p: float = 1.0
    w_u: float = 1.0
    #: Binaries per obstacle and step: 4 (one per side, ``b = 1`` relaxing it, at most 3 relaxed: the
    #: ``disjunction`` rows) or 2 (the authors' code: two bits pick the one enforced side, no integer-only row).
    side_binaries: int = 4


#: The robot as the authors' code builds it (mlab-upenn/L2O-MIQP, ``robot_nav/generate_data.py``): its
#: ``obstacle(x, y, L, W)`` halves the sizes it is given (0.4 x 0.5, 0.5 x 0.4, 0.4 x 0.5), and ``x_max = 2``.
AUTHORS_ROBOT = RobotConfig(box_hi=(2.0, 0.5), obstacle_half_sizes=((0.2, 0.25), (0.25, 0.2), (0.2, 0.25)),
                            side_binaries=2)
#: Robot geometries by name: ``issue`` (the family's default: the sizes of issue 5, read as half-sizes, and the
#: paper's 3 m box) and ``authors`` (:data:`AUTHORS_ROBOT`).
ROBOT_GEOMETRIES = {"issue": RobotConfig(), "authors": AUTHORS_ROBOT}
GEOMETRIES = tuple(ROBOT_GEOMETRIES)
#: Closed-loop collection (``sampling = "closed-loop"``): an episode ends within this distance of the goal
#: (the authors' ``reaching_goals``, checked at the state the MPC is solved for) or after ``collect_steps``.
GOAL_REACHED = 0.2


def robot_config(geometry: str = "issue") -> RobotConfig:
    """The robot constants of a named geometry (:data:`ROBOT_GEOMETRIES`)."""
    if geometry not in ROBOT_GEOMETRIES:
        raise UsageError(f"unknown robot geometry {geometry!r}; expected one of {', '.join(GEOMETRIES)}")
    return ROBOT_GEOMETRIES[geometry]


#: Outward directions of the four sides, in the order of the binaries b_1..b_4.
SIDES = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])
#: The authors' two-bit code (``Controller.solve_MIQP``): side j is enforced unless
#: ``M (alpha_j + beta_j b + gamma_j c) > 0``, rows ``(alpha, beta, gamma)``; exactly one side is enforced for
#: each of the four values of ``(b, c)``: +x at (0, 0), +y at (1, 0), -x at (0, 1), -y at (1, 1).
TWO_BIT = np.array([[0.0, 1.0, 1.0], [1.0, -1.0, 1.0], [1.0, 1.0, -1.0], [2.0, -1.0, -1.0]])


def robot_structure(cfg: RobotConfig = RobotConfig()) -> MIQPStructure:
    """The ``mimpc-robot`` MIQP (decision: accelerations ``a_k`` (H x 2), then binaries ``b[k, o, side]``)."""
    H, tau = cfg.horizon, cfg.tau
    n_obs = len(cfg.obstacle_centres)
    per = cfg.side_binaries
    if per not in (2, 4):
        raise UsageError(f"side_binaries must be 2 or 4, got {per}")
    n_u, n_b = 2 * H, per * n_obs * H
    n, p = n_u + n_b, 6
    b = _Builder(n, p)
    A = np.block([[np.eye(2), tau * np.eye(2)], [np.zeros((2, 2)), np.eye(2)]])
    B = np.vstack([0.5 * tau**2 * np.eye(2), tau * np.eye(2)])
    s0 = b.theta(np.arange(4))
    states = _predict_states(b, A, s0, [B @ b.x([2 * k, 2 * k + 1]) for k in range(H)])
    goal = b.theta([4, 5])
    zero2 = np.zeros(2)
    for k in range(H):
        b.add_cost(b.x([2 * k, 2 * k + 1]), zero2, cfg.w_u * np.eye(2))
        b.add_cost(states[k][:2] - goal, zero2, cfg.w_p * np.eye(2))
    b.add_cost(states[H][:2] - goal, zero2, cfg.w_pt * np.eye(2))
    lo, hi = np.array(cfg.box_lo), np.array(cfg.box_hi)
    STATE, OBSTACLE, DISJUNCTION = 0, 1, 2
    for k in range(1, H + 1):
        pos, vel = states[k][:2], states[k][2:]
        b.add_rows(pos, hi, STATE)
        b.add_rows(-pos, -lo, STATE)
        b.add_rows(vel, np.full(2, cfg.v_max), STATE)
        b.add_rows(-vel, np.full(2, cfg.v_max), STATE)
    for k in range(1, H + 1):
        pos = states[k][:2]
        for o, (centre, half) in enumerate(zip(cfg.obstacle_centres, cfg.obstacle_half_sizes)):
            reach = np.array([half[0], half[1], half[0], half[1]]) + cfg.d_min
            bins = [n_u + ((k - 1) * n_obs + o) * per + j for j in range(per)]
            for j in range(4):
                if per == 4:
                    # s_j'(p - c) >= reach_j - M b_j   <=>   -s_j'p - M b_j <= -reach_j - s_j'c
                    row = -SIDES[j] @ pos - cfg.big_m * b.x(bins[j])[0]
                    b.add_rows(row, -reach[j] - SIDES[j] @ np.array(centre), OBSTACLE)
                else:
                    alpha, beta, gamma = TWO_BIT[j]
                    row = -SIDES[j] @ pos - cfg.big_m * (beta * b.x(bins[0])[0] + gamma * b.x(bins[1])[0])
                    b.add_rows(row, -reach[j] - SIDES[j] @ np.array(centre) + cfg.big_m * alpha, OBSTACLE)
            if per == 4:
                b.add_rows(b.x(bins).sum(0), 3.0, DISJUNCTION)
    lb = np.concatenate([np.full(n_u, -cfg.a_max), np.zeros(n_b)])
    ub = np.concatenate([np.full(n_u, cfg.a_max), np.ones(n_b)])
    integer = np.concatenate([np.zeros(n_u, bool), np.ones(n_b, bool)])
    names = [f"a[{k}].{ax}" for k in range(H) for ax in "xy"]
    names += [f"b[{k + 1},{o},{j + 1}]" for k in range(H) for o in range(n_obs) for j in range(per)]
    extra = {"tau": cfg.tau, "horizon": H, "box_lo": lo, "box_hi": hi, "v_max": cfg.v_max, "a_max": cfg.a_max,
             "obstacle_centres": np.array(cfg.obstacle_centres), "obstacle_half_sizes": np.array(
                 cfg.obstacle_half_sizes), "d_min": cfg.d_min, "big_m": cfg.big_m,
             "weights_pt_p_u": np.array([cfg.w_pt, cfg.w_p, cfg.w_u]), "A": A, "B": B}
    if per == 2:        # only then: the default structure (and its hash) stays what it was
        extra["side_binaries"] = 2
    classes = ("state", "obstacle", "disjunction") if per == 4 else ("state", "obstacle")
    return b.build(lb, ub, integer, classes, names, extra)


def _inside(points: np.ndarray, centres: np.ndarray, half: np.ndarray, margin: float) -> np.ndarray:
    """Whether each point lies strictly inside some rectangle grown by ``margin``."""
    d = np.abs(points[:, None, :] - centres[None, :, :]) - (half[None, :, :] + margin)
    return np.any(np.all(d < 0, axis=2), axis=1)


def _free_points(rng: np.random.Generator, count: int, cfg: RobotConfig, margin: float) -> np.ndarray:
    """``count`` points uniform in the box and outside every obstacle grown by ``margin`` (rejection)."""
    lo, hi = np.array(cfg.box_lo), np.array(cfg.box_hi)
    centres, half = np.array(cfg.obstacle_centres), np.array(cfg.obstacle_half_sizes)
    out = np.empty((0, 2))
    while out.shape[0] < count:
        cand = lo + (hi - lo) * rng.random((max(64, 4 * (count - out.shape[0])), 2))
        out = np.vstack([out, cand[~_inside(cand, centres, half, margin)]])
    return out[:count]


def robot_sample(rng: np.random.Generator, count: int, cfg: RobotConfig = RobotConfig()) -> np.ndarray:
    """theta = (p_0, v_0, g): ``p_0`` uniform in the free space (obstacles grown by d_min), ``v_0`` uniform in
    the velocity box, ``g`` uniform in the free space grown by a further 0.1 (the authors' goal margin).

    A fast ``v_0`` towards an obstacle can make the instance infeasible; such draws are kept (infeasible split).
    """
    if count < 0:
        raise UsageError(f"instance count must be >= 0, got {count}")
    p0 = _free_points(rng, count, cfg, cfg.d_min)
    v0 = cfg.v_max * (2 * rng.random((count, 2)) - 1)
    goal = _free_points(rng, count, cfg, cfg.d_min + 0.1)
    return np.hstack([p0, v0, goal])


def robot_episode_starts(rng: np.random.Generator, count: int, cfg: RobotConfig = AUTHORS_ROBOT) -> np.ndarray:
    """Starts of closed-loop collection episodes, as the authors draw them (``goal_position``,
    ``init_position``): the goal uniform in the box rounded to 0.01 m, the start rounded to 0.001 m, both outside
    every obstacle grown by d_min + 0.1, the start more than 2 (d_min + 0.1) from the goal, at rest.
    theta0 = (p_0, 0, 0, g)."""
    if count < 0:
        raise UsageError(f"episode count must be >= 0, got {count}")
    margin = cfg.d_min + 0.1
    out = np.empty((count, 6))
    for i in range(count):
        goal = np.round(_free_points(rng, 1, cfg, margin)[0], 2)
        while True:
            start = np.round(_free_points(rng, 1, cfg, margin)[0], 3)
            if np.linalg.norm(start - goal) > 2 * margin:
                break
        out[i] = [*start, 0.0, 0.0, *goal]
    return out


# -- tank --------------------------------------------------------------------------------
@dataclass(frozen=True)
class TankConfig:
    """Constants of ``mimpc-tank`` (appendix B of the paper, as given in issue 5)."""

    A: tuple = ((0.9983, 0.001), (0.0, 0.9966))
    b_u: float = 0.075
    b_delta: tuple = (0.0, 0.0825)
    e: float = -0.0833
    x_max: tuple = (8.4, 3.6)
    u_max: float = 8.0
    delta_max: int = 3
    ramp: int = 1
    reference: tuple = (4.2, 1.8)
    rho: float = 0.1
    r_weight: float = 0.5
    horizon: int = 20


def tank_structure(cfg: TankConfig = TankConfig()) -> MIQPStructure:
    """The ``mimpc-tank`` MIQP (decision: inputs ``u_k`` (H x 2), then ``delta_k`` (H))."""
    H = cfg.horizon
    n_u = 2 * H
    n, p = n_u + H, 2 + 2 * H
    b = _Builder(n, p)
    A = np.array(cfg.A, float)
    Bu = cfg.b_u * np.eye(2)
    Bd = np.array(cfg.b_delta, float).reshape(2, 1)
    E = cfg.e * np.eye(2)
    step = [Bu @ b.x([2 * k, 2 * k + 1]) + Bd @ b.x(n_u + k) + E @ b.theta([2 + 2 * k, 3 + 2 * k])
            for k in range(H)]
    states = _predict_states(b, A, b.theta([0, 1]), step)
    r = np.array(cfg.reference, float)
    for k in range(H):
        b.add_cost(states[k], -r, np.eye(2))
        b.add_cost(b.x([2 * k, 2 * k + 1]), np.zeros(2), cfg.r_weight * np.eye(2))
        b.add_cost(b.x(n_u + k), np.zeros(1), cfg.rho * np.eye(1))
    b.add_cost(states[H], -r, np.eye(2))
    STATE, RAMP = 0, 1
    xmax = np.array(cfg.x_max, float)
    for k in range(1, H + 1):
        b.add_rows(states[k], xmax, STATE)
        b.add_rows(-states[k], np.zeros(2), STATE)
    for k in range(1, H):
        diff = b.x(n_u + k)[0] - b.x(n_u + k - 1)[0]
        b.add_rows(diff, cfg.ramp, RAMP)
        b.add_rows(-diff, cfg.ramp, RAMP)
    lb = np.zeros(n)
    ub = np.concatenate([np.full(n_u, cfg.u_max), np.full(H, float(cfg.delta_max))])
    integer = np.concatenate([np.zeros(n_u, bool), np.ones(H, bool)])
    names = [f"u[{k}].{i + 1}" for k in range(H) for i in range(2)] + [f"delta[{k}]" for k in range(H)]
    extra = {"A": A, "B_u": Bu, "B_delta": Bd, "E": E, "x_max": xmax, "u_max": cfg.u_max,
             "delta_max": cfg.delta_max, "reference": r, "rho": cfg.rho, "r_weight": cfg.r_weight, "horizon": H}
    return b.build(lb, ub, integer, ("state", "ramp"), names, extra)


def tank_disturbances(rng: np.random.Generator, count: int, length: int) -> np.ndarray:
    """Disturbance sequences (count, length, 2) as the authors' generator draws them.

    ``d1 = 7 Beta(0.6, 1.4)`` i.i.d.; ``d2`` is zero plus ``n_peaks ~ U{1, ..., max(2, length // 6) - 1}``
    bursts, each of amplitude U(1, 16) over 2-5 consecutive steps starting uniformly in
    ``0..max(1, length - duration) - 1`` (overlapping bursts add up).
    """
    d = np.zeros((count, length, 2))
    d[:, :, 0] = 7.0 * rng.beta(0.6, 1.4, size=(count, length))
    for i in range(count):
        for _ in range(int(rng.integers(1, max(2, length // 6)))):
            amp = rng.uniform(1.0, 16.0)
            dur = int(rng.integers(2, 6))
            start = int(rng.integers(0, max(1, length - dur)))
            d[i, start:start + dur, 1] += amp
    return d


def tank_sample(rng: np.random.Generator, count: int, cfg: TankConfig = TankConfig()) -> np.ndarray:
    """theta = (x_0, d_0..d_{H-1}): ``x_0`` uniform in the state box, disturbances by :func:`tank_disturbances`."""
    if count < 0:
        raise UsageError(f"instance count must be >= 0, got {count}")
    x0 = rng.random((count, 2)) * np.array(cfg.x_max)
    d = tank_disturbances(rng, count, cfg.horizon)
    return np.hstack([x0, d.reshape(count, 2 * cfg.horizon)])


# -- one registry ------------------------------------------------------------------------------
def _check_geometry(family: str, geometry: str) -> None:
    if family == "mimpc-tank" and geometry != "issue":
        raise UsageError(f"geometry {geometry!r} is a robot option; mimpc-tank has one geometry")


def structure_for(family: str, geometry: str = "issue") -> MIQPStructure:
    """The (fixed) structure of a mixed-integer family (``geometry``: the robot's, :data:`ROBOT_GEOMETRIES`)."""
    _check_geometry(family, geometry)
    if family == "mimpc-robot":
        return robot_structure(robot_config(geometry))
    if family == "mimpc-tank":
        return tank_structure()
    raise UsageError(f"unknown mixed-integer family {family!r}; expected one of {', '.join(FAMILIES)}")


def sample_theta(family: str, rng: np.random.Generator, count: int, geometry: str = "issue") -> np.ndarray:
    """Draw ``count`` parameter vectors of ``family``."""
    _check_geometry(family, geometry)
    if family == "mimpc-robot":
        return robot_sample(rng, count, robot_config(geometry))
    if family == "mimpc-tank":
        return tank_sample(rng, count)
    raise UsageError(f"unknown mixed-integer family {family!r}; expected one of {', '.join(FAMILIES)}")


def geometry_of(s: MIQPStructure) -> str:
    """The name of the robot geometry a structure was built with (``issue`` for the tank)."""
    if "obstacle_half_sizes" not in s.extra:
        return "issue"
    for name, cfg in ROBOT_GEOMETRIES.items():
        if (np.allclose(s.extra["obstacle_half_sizes"], cfg.obstacle_half_sizes)
                and np.allclose(s.extra["box_hi"], cfg.box_hi)):
            return name
    raise UsageError("this robot structure matches none of the known geometries "
                     f"({', '.join(GEOMETRIES)})")
