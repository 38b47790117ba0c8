"""``check-solver``: a conformance check any author can run before submitting."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bilevelbench.data.instance_set import InstanceSet
from bilevelbench.evaluate.evaluator import Protocol, redacted_dataset, run_solver, score_split
from bilevelbench.evaluate.sandbox import Limits
from bilevelbench.solvers import check_spec_form

#: Tolerance under which batched and one-at-a-time answers count as the same.
CONSISTENCY_TOL = 1e-6
#: Distance under which a submitted z counts as the follower's response.
Z_MATCH_TOL = 1e-5


@dataclass(frozen=True)
class Check:
    """One line of the conformance report: ``ok`` is True, False (a contract violation) or None (advice)."""

    name: str
    ok: bool | None
    detail: str


def check_solver(dataset: Path | str, solver: str, split: str = "test", instances: int = 5,
                 limits: Limits | None = None) -> list[Check]:
    """Run ``solver`` on a few instances in the sandbox and check it against the contract.

    Returns the checks in order; the contract is met when none has ``ok is False``. Works on every family:
    the decision's name and width come from the family (``Family.decision``, ``decision_dims``) and the answers
    are scored by the evaluator's own scorer.
    """
    check_spec_form(solver)
    dataset = Path(dataset)
    ds = InstanceSet.open(dataset)
    part = ds.split(split)
    family = ds.family_descriptor
    dy, dz = ds.decision_dims
    name = family.decision
    n = min(instances, len(part))
    batch = min(3, n)
    limits = limits or Limits(setup_timeout=600.0, solve_timeout=60.0)
    with redacted_dataset(dataset, split) as redacted:
        res = run_solver(redacted, dataset.stem, solver, split, Protocol(warmup=1, batch_size=batch), limits,
                         n, dy, dz, limit=n)
    run = res.run
    checks: list[Check] = []
    loaded = run.first("loaded")
    if loaded is None:
        checks.append(Check("import and construct", False, run.exit_reason() or "the solver was not loaded"))
        return checks
    checks.append(Check("import and construct", True, f"{res.identity['name']} {res.identity['version']}"))
    skip = run.first("skip")
    if skip is not None:
        checks.append(Check("skip(spec)", None, f"declines this data set: {skip.get('reason')}"))
        return checks
    setup = run.first("setup")
    if setup is None:
        checks.append(Check("setup(spec, train_set)", False, run.exit_reason() or "setup did not finish"))
        return checks
    checks.append(Check("setup(spec, train_set)", True, f"{setup.get('seconds', 0):.2f} s (untimed)"))
    errors = {i: r for i, r in res.reasons.items() if i < n}
    if errors:
        i, why = next(iter(sorted(errors.items())))
        checks.append(Check(f"solve(batch of 1) -> {name} (1, {dy})", False,
                            f"{len(errors)} of {n} calls failed; instance {i}: {why}"))
    else:
        checks.append(Check(f"solve(batch of 1) -> {name} (1, {dy})", True, f"{n} calls, shapes and dtypes valid"))
    answered = res.y[res.answered]
    finite = bool(np.all(np.isfinite(answered))) if answered.size else False
    checks.append(Check(f"finite {name}", finite if answered.size else False,
                        "all values finite" if finite else f"NaN or inf in {name} (each such instance counts as "
                                                           "failed)"))
    batch_events = run.of("batch")
    bad = [e for e in batch_events if "error" in e]
    if not batch_events:
        checks.append(Check(f"solve(batch of {batch}) -> {name} ({batch}, {dy})", False,
                            run.exit_reason() or "the batched pass did not run"))
    elif bad:
        checks.append(Check(f"solve(batch of {batch}) -> {name} ({batch}, {dy})", False, str(bad[0]["error"])))
    else:
        checks.append(Check(f"solve(batch of {batch}) -> {name} ({batch}, {dy})", True, "shapes valid"))
    if res.batch_max_abs_diff is not None:
        same = res.batch_max_abs_diff <= CONSISTENCY_TOL
        checks.append(Check("batched answers equal one-at-a-time answers", True if same else None,
                            f"max |difference| {res.batch_max_abs_diff:.2e}"
                            + ("" if same else " (allowed, but latency and throughput then measure different "
                                               "computations)")))
    params = {key: value[:n] for key, value in part.params.items()}
    labels = {key: value[:n] for key, value in part.labels.items()}
    score = score_split(part, params, labels, res.y, res.answered, res.reasons, res.z)
    if res.z is not None and "z_distance" in score.values:
        dist = score.values["z_distance"]
        worst = float(np.nanmax(dist)) if np.any(np.isfinite(dist)) else float("nan")
        match = bool(worst <= Z_MATCH_TOL)
        follower = family.follower or "z"
        checks.append(Check(f"submitted {follower} is the follower's response", True if match else None,
                            f"max ||{follower} - {follower}({name})|| {worst:.2e}" + (
                                "" if match else f"; the evaluator scores {follower}({name}), not your {follower}")))
    gaps = score.values["gap"]
    gap_text = f"gap mean {np.nanmean(gaps):.2e}" if np.any(np.isfinite(gaps)) else "no gap"
    checks.append(Check("feasible at the evaluator's tolerance", None,
                        f"{int(score.feasible.sum())} of {n} instances; {gap_text}"))
    stop = run.exit_reason()
    checks.append(Check("process finished cleanly", stop is None, stop or "exit status 0"))
    return checks
