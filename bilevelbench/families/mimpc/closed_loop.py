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
from typing import TYPE_CHECKING

import numpy as np

from bilevelbench.errors import UsageError
from bilevelbench.evaluate import metrics
from bilevelbench.families.mimpc import problem as mimpc
from bilevelbench.families.mimpc.miqp import MIQPStructure

if TYPE_CHECKING:  # pragma: no cover
    from bilevelbench.data.instance_set import InstanceSet

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


# -- the evaluator's closed loop: plan and score (Family.closed_loop_plan / score_closed_loop) ----------------
def closed_loop_plan(ds: InstanceSet, steps: int, episodes: int | None = None) -> tuple[dict, dict]:
    """The episodes to run (start ``theta`` and disturbance sequence each) and the stored references.

    Raises
    ------
    UsageError
        If the family has no closed loop, the file stores no reference episodes, or ``steps`` exceeds
        the stored episodes' length.
    """
    ref = ds.closed_loop
    if not ref:
        raise UsageError(f"{str(ds.path)!r} stores no closed-loop reference episodes; regenerate it with "
                         "--closed-loop-episodes E --closed-loop-steps T")
    stored = int(ref["stage_cost"].shape[1])
    if not 1 <= steps <= stored:
        raise UsageError(f"--closed-loop {steps}: expected 1..{stored} steps (the stored reference episodes "
                         f"have {stored}; regenerate with --closed-loop-steps for longer ones)")
    count = len(ref["start_index"]) if episodes is None else min(episodes, len(ref["start_index"]))
    s = ds.structure
    theta_all = ds.file_params["theta"]
    H = int(s.extra["horizon"])
    seed = int(ds.meta["seed"])
    plan = []
    for e in range(count):
        pos = int(ref["start_index"][e])
        dist = episode_disturbances(ds.family, s, theta_all[pos], stored, seed, pos)
        plan.append({"theta0": theta_all[pos].tolist(), "disturbances": dist[: steps + H].tolist(),
                     "index": pos})
    return {"steps": steps, "episodes": plan}, {key: value[:count] for key, value in ref.items()}


def score_closed_loop(ds: InstanceSet, plan: dict, reference: dict, decisions: list[list], latencies: list[list]
                      ) -> tuple[dict, dict]:
    """Re-simulate every episode from the submitted decisions and compare with the exact MPC's episodes.

    Returns per-episode arrays and the headline metrics (see ``docs/metrics.md``, closed loop).
    """
    s = ds.structure
    steps = int(plan["steps"])
    E = len(plan["episodes"])
    per = {"cost": np.full(E, np.nan), "reference_cost": np.full(E, np.nan), "cost_ratio": np.full(E, np.nan),
           "completed": np.zeros(E, bool), "steps_taken": np.zeros(E, np.int64),
           **{f"{flag}_steps": np.zeros(E, np.int64) for flag in STEP_FLAGS}}
    reasons = []
    for e, episode in enumerate(plan["episodes"]):
        queue = list(decisions[e]) if e < len(decisions) else []

        def replay(theta, queue=queue):
            return queue.pop(0) if queue else None

        result = run_episode(ds.family, s, np.asarray(episode["theta0"]), steps, replay,
                             np.asarray(episode["disturbances"]).reshape(-1, 2))
        per["steps_taken"][e] = len(result.stage_cost)
        per["completed"][e] = result.completed
        for flag in STEP_FLAGS:
            per[f"{flag}_steps"][e] = int(result.flags[flag].sum())
        ref_ok = bool(reference["completed"][e]) or int(reference["steps_taken"][e]) >= steps
        if ref_ok:
            per["reference_cost"][e] = float(np.sum(reference["stage_cost"][e, :steps]))
        if result.completed:
            per["cost"][e] = float(result.stage_cost.sum())
            if ref_ok:
                per["cost_ratio"][e] = per["cost"][e] / max(per["reference_cost"][e], metrics.GAP_FLOOR)
        else:
            reasons.append({"instance": e, "reason": f"episode stopped: {result.reason}"})
    lat = np.array([x for row in latencies for x in row], float) * 1e3
    violated = np.zeros(E, bool)
    for flag in STEP_FLAGS:
        violated |= per[f"{flag}_steps"] > 0
    clean = per["completed"] & ~violated
    ratio = per["cost_ratio"]
    agg = metrics.aggregate(ratio - 1.0)
    lat_agg = metrics.aggregate(lat)
    head = {
        # The leaderboard's common columns: the gap is the relative excess closed-loop cost over the exact MPC,
        # "feasible" an episode that completed every step without violating anything.
        "gap_mean": agg["mean"], "gap_median": agg["median"], "gap_max": agg["max"],
        "feasible_rate": float(np.mean(clean)) if E else None, "coupling_violation_mean": None,
        "cost_ratio_mean": metrics.aggregate(ratio)["mean"], "cost_ratio_median": metrics.aggregate(ratio)["median"],
        "episodes": E, "steps": steps, "completed_rate": float(np.mean(per["completed"])) if E else None,
        "violation_free_rate": float(np.mean(clean)) if E else None,
        "latency_ms_median": lat_agg["median"], "latency_ms_p95": lat_agg["p95"],
        "reference_episodes_complete": int(np.sum(np.isfinite(per["reference_cost"]))),
    }
    for flag in STEP_FLAGS:
        head[f"{flag}_steps_per_episode"] = float(np.mean(per[f"{flag}_steps"])) if E else None
        head[f"{flag}_episode_rate"] = float(np.mean(per[f"{flag}_steps"] > 0)) if E else None
    per["gap"] = ratio - 1.0
    per["latency_ms_median"] = np.array([np.median(row) * 1e3 if row else np.nan for row in latencies]
                                        + [np.nan] * (E - len(latencies)))[:E]
    return {"per": per, "failures": reasons}, head


def summary_lines(m: dict) -> list[str]:
    """The evaluator's summary lines of a closed-loop record (cost against the exact MPC, episode outcomes)."""
    from bilevelbench.evaluate.summary import fmt

    return [
        (f"  cost       closed-loop cost / exact MPC's: mean {fmt(m.get('cost_ratio_mean'), '.4f')}  median "
         f"{fmt(m.get('cost_ratio_median'), '.4f')} over {m.get('episodes')} episodes of {m.get('steps')} steps "
         f"({m.get('reference_episodes_complete')} with a complete exact reference)"),
        (f"  episodes   completed {100 * (m.get('completed_rate') or 0):.1f}%, without any violation "
         f"{100 * (m.get('violation_free_rate') or 0):.1f}%"),
        ("  per episode " + ", ".join(f"{flag.replace('_', ' ')} {fmt(m.get(flag + '_steps_per_episode'), '.2f')}"
                                      for flag in STEP_FLAGS) + " steps"),
    ]
