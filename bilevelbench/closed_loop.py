"""Receding-horizon simulation of the mixed-integer MPC families.

A *policy* maps the current parameter ``theta_t`` to a decision ``x_t`` (the
whole horizon's plan); only its first input is applied to the plant, the state
moves by the family's dynamics, and ``theta_{t+1}`` is formed from the new state:

* ``mimpc-robot``: ``theta = (p, v, g)``; the goal stays fixed.
* ``mimpc-tank``: ``theta = (x, d_t, ..., d_{t+H-1})``; the disturbance
  sequence of an episode has ``steps + H`` entries, its first ``H`` are the
  test instance's own, the rest drawn by the family's disturbance sampler from
  ``SeedSequence(seed, spawn_key=(3, index))`` (``index``: position in the file).

Each step records the stage cost ``l(state_t, applied input)`` (the MPC's own
stage cost at the real state) and flags for the constraint classes the applied
move violates. The same functions run the exact MPC at generation time (stored
as reference episodes) and a submission in the evaluator's sandbox; the
evaluator re-simulates from the submitted decisions, so it never trusts the
child's states.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from bilevelbench.errors import UsageError
from bilevelbench.families import mimpc
from bilevelbench.families.miqp import MIQPStructure

#: Per-step violation flags, in the order they are stored.
STEP_FLAGS = ("state_violation", "input_violation", "integer_violation", "safety_violation", "collision")
#: Absolute tolerance of the per-step constraint flags.
STEP_TOL = 1e-6


def episode_disturbances(family: str, s: MIQPStructure, theta0: np.ndarray, steps: int, seed: int,
                         index: int) -> np.ndarray:
    """The disturbance sequence of one episode: (steps + H, 2) for the tank, (0, 2) for the robot."""
    if family == "mimpc-robot":
        return np.zeros((0, 2))
    if family == "mimpc-tank":
        H = int(s.extra["horizon"])
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(3, int(index))))
        d = mimpc.tank_disturbances(rng, 1, steps + H)[0]
        d[:H] = np.asarray(theta0, float)[2:].reshape(H, 2)
        return d
    raise UsageError(f"closed-loop simulation is defined for {', '.join(mimpc.FAMILIES)}, not {family!r}")


def state_of(family: str, theta: np.ndarray) -> np.ndarray:
    """The plant state inside ``theta``."""
    return np.asarray(theta, float)[:4 if family == "mimpc-robot" else 2].copy()


@dataclass
class StepOutcome:
    """What applying one decision did."""

    next_state: np.ndarray
    stage_cost: float
    flags: dict[str, bool]
    applied: np.ndarray


def apply_first_move(family: str, s: MIQPStructure, theta: np.ndarray, x: np.ndarray,
                     disturbance: np.ndarray | None = None) -> StepOutcome:
    """Apply the first input of decision ``x`` at ``theta``: next state, stage cost and violation flags."""
    theta, x = np.asarray(theta, float), np.asarray(x, float)
    e = s.extra
    if family == "mimpc-robot":
        state, goal = theta[:4], theta[4:6]
        a = x[:2]
        nxt = e["A"] @ state + e["B"] @ a
        w_pt, w_p, w_u = e["weights_pt_p_u"]
        cost = float(w_p * np.sum((state[:2] - goal) ** 2) + w_u * np.sum(a**2))
        p, v = nxt[:2], nxt[2:]
        lo, hi = e["box_lo"], e["box_hi"]
        centres, half = e["obstacle_centres"], e["obstacle_half_sizes"]
        gap = np.abs(p[None, :] - centres) - half  # > 0 on some axis: outside that obstacle
        flags = {
            "state_violation": bool(np.any(p < lo - STEP_TOL) or np.any(p > hi + STEP_TOL)
                                    or np.any(np.abs(v) > e["v_max"] + STEP_TOL)),
            "input_violation": bool(np.any(np.abs(a) > e["a_max"] + STEP_TOL)),
            "integer_violation": False,
            "safety_violation": bool(np.any(np.all(gap < e["d_min"] - STEP_TOL, axis=1))),
            "collision": bool(np.any(np.all(gap < -STEP_TOL, axis=1))),
        }
        return StepOutcome(nxt, cost, flags, a.copy())
    if family == "mimpc-tank":
        H = int(e["horizon"])
        state = theta[:2]
        u, delta = x[:2], x[2 * H]
        d = theta[2:4] if disturbance is None else disturbance
        nxt = e["A"] @ state + e["B_u"] @ u + e["B_delta"][:, 0] * delta + e["E"] @ d
        r = e["reference"]
        cost = float(np.sum((state - r) ** 2) + e["r_weight"] * np.sum(u**2) + e["rho"] * delta**2)
        flags = {
            "state_violation": bool(np.any(nxt < -STEP_TOL) or np.any(nxt > e["x_max"] + STEP_TOL)),
            "input_violation": bool(np.any(u < -STEP_TOL) or np.any(u > e["u_max"] + STEP_TOL)),
            "integer_violation": bool(abs(delta - round(delta)) > STEP_TOL or delta < -STEP_TOL
                                      or delta > e["delta_max"] + STEP_TOL),
            "safety_violation": False,
            "collision": False,
        }
        return StepOutcome(nxt, cost, flags, np.append(u, delta))
    raise UsageError(f"closed-loop simulation is defined for {', '.join(mimpc.FAMILIES)}, not {family!r}")


def next_theta(family: str, s: MIQPStructure, theta: np.ndarray, state: np.ndarray, t: int,
               disturbances: np.ndarray) -> np.ndarray:
    """``theta_{t+1}`` from the new state (``t``: index of the step just taken)."""
    theta = np.asarray(theta, float)
    if family == "mimpc-robot":
        return np.concatenate([state, theta[4:6]])
    H = int(s.extra["horizon"])
    return np.concatenate([state, disturbances[t + 1:t + 1 + H].reshape(-1)])


@dataclass
class EpisodeResult:
    """One simulated episode; arrays have one entry per step actually taken."""

    thetas: np.ndarray
    decisions: np.ndarray
    stage_cost: np.ndarray
    flags: dict[str, np.ndarray]
    completed: bool
    reason: str = ""
    extra: dict = field(default_factory=dict)


Policy = Callable[[np.ndarray], "np.ndarray | None"]


def run_episode(family: str, s: MIQPStructure, theta0: np.ndarray, steps: int, policy: Policy,
                disturbances: np.ndarray) -> EpisodeResult:
    """Run ``policy`` for ``steps`` steps from ``theta0``; stop early if it returns None or non-finite values."""
    if steps < 1:
        raise UsageError(f"closed-loop steps must be >= 1, got {steps}")
    theta = np.asarray(theta0, float)
    thetas, decisions, costs = [], [], []
    flags: dict[str, list[bool]] = {k: [] for k in STEP_FLAGS}
    for t in range(steps):
        x = policy(theta)
        if x is None:
            return _result(thetas, decisions, costs, flags, s, False, f"no decision at step {t}")
        x = np.asarray(x, float).reshape(s.n)
        if not np.all(np.isfinite(x[: s.n])):
            return _result(thetas, decisions, costs, flags, s, False, f"non-finite decision at step {t}")
        out = apply_first_move(family, s, theta, x, disturbances[t] if len(disturbances) else None)
        thetas.append(theta)
        decisions.append(x)
        costs.append(out.stage_cost)
        for key in STEP_FLAGS:
            flags[key].append(out.flags[key])
        theta = next_theta(family, s, theta, out.next_state, t, disturbances)
    return _result(thetas, decisions, costs, flags, s, True, "", final_theta=theta)


def _result(thetas, decisions, costs, flags, s, completed, reason, final_theta=None) -> EpisodeResult:
    return EpisodeResult(thetas=np.array(thetas).reshape(-1, s.p), decisions=np.array(decisions).reshape(-1, s.n),
                         stage_cost=np.array(costs, float), flags={k: np.array(v, bool) for k, v in flags.items()},
                         completed=completed, reason=reason,
                         extra={} if final_theta is None else {"final_theta": final_theta})
