"""The evaluator: score a predictions file, or run a solver under the timing protocol and score it.

Both paths end in the same :func:`score_split`, which hands the answers to the family's scorer
(``Family.score``), so a predictions file and a live run are scored identically, for every family.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from bilevelbench.core.family import Answers
from bilevelbench.data.hdf5 import read_instance_set, write_instance_set
from bilevelbench.data.instance_set import InstanceSet
from bilevelbench.errors import SubmissionError, UsageError
from bilevelbench.evaluate import metrics
from bilevelbench.evaluate.predictions import PredictionSet, read_predictions
from bilevelbench.evaluate.provenance import file_sha256, provenance
from bilevelbench.evaluate.records import build_record
from bilevelbench.evaluate.sandbox import Limits, SandboxRun, WorkerConfig, run_in_sandbox
from bilevelbench.evaluate.scoring import SplitScore
from bilevelbench.solvers import check_spec_form

log = logging.getLogger(__name__)

#: The exact reference solver every learned method's latency is compared with.
EXACT_SOLVER_SPEC = "bilevelbench.exact_solver:ExactSolver"

Progress = Callable[[int], object]


@dataclass(frozen=True)
class Protocol:
    """Timing protocol of ``evaluate`` (recorded in every result).

    Attributes
    ----------
    warmup : int
        Untimed ``solve`` calls (batch size 1) before timing starts.
    batch_size : int
        Batch size of the throughput pass (0 skips it).
    threads : int
        BLAS / OpenMP / torch threads of the solver process.
    exact_instances : int
        Instances on which the exact solver's latency is measured for the speedup (0 skips).
    limit : int or None
        Evaluate only the first ``limit`` instances of the split (for quick checks).
    latency_instances : int or None
        Time batch-size-1 solves on the first ``latency_instances`` instances only; the others are answered by
        the batched pass alone (needs ``batch_size > 0``). For slow methods (a swarm or a search per instance)
        on large splits. None: every instance (the default protocol).
    """

    warmup: int = 3
    batch_size: int = 64
    threads: int = 1
    exact_instances: int = 20
    limit: int | None = None
    latency_instances: int | None = None

    def __post_init__(self) -> None:
        if self.latency_instances is not None and self.batch_size <= 0:
            raise UsageError("latency_instances needs the batched pass (batch_size > 0): the instances after the "
                             f"first {self.latency_instances} are answered there, got batch_size "
                             f"{self.batch_size}")


def dataset_block(ds: InstanceSet, path: Path, split: str, n_instances: int, sha256: str) -> dict:
    """The ``dataset`` block of a results record."""
    meta = ds.meta
    return {"name": str(meta.get("name") or path.stem), "file": path.name, "sha256": sha256, "family": ds.family,
            "size": ds.structure.size, "split": split, "n_instances": n_instances,
            "structure_hash": meta.get("structure_hash"), "generator_version": meta.get("generator_version"),
            "seed": meta.get("seed")}


def align(pred: PredictionSet, n: int, m: int, nz: int) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """Rows of ``pred`` placed at their instance positions (NaN and ``answered = False`` elsewhere)."""
    y = np.full((n, m), np.nan)
    z = None if pred.z is None else np.full((n, nz), np.nan)
    answered = np.zeros(n, bool)
    y[pred.instance] = pred.y
    if z is not None:
        z[pred.instance] = pred.z
    answered[pred.instance] = True
    return y, z, answered


def decision_dims(ds: InstanceSet) -> tuple[int, int]:
    """``(y_dim, z_dim)`` of submissions (:attr:`InstanceSet.decision_dims`)."""
    return ds.decision_dims


def score_split(ds: InstanceSet, params: dict, labels: dict, y: np.ndarray, answered: np.ndarray,
                reasons: dict[int, str], z: np.ndarray | None = None,
                progress: Progress | None = None) -> SplitScore:
    """Score one split with its family's scorer (one entry point for files and live runs)."""
    answers = Answers(params=params, labels=labels, y=y, answered=answered, reasons=reasons, z=z)
    return ds.family_descriptor.score(ds, answers, progress)


def _protocol_common() -> dict:
    return {"feasibility_tolerance": metrics.FEASIBILITY_TOL, "gap_floor": metrics.GAP_FLOOR,
            "follower_response": "recomputed by the evaluator with HiGHS; submitted z is never scored",
            "metrics_doc": "docs/metrics.md"}


@dataclass
class ScoredFile:
    """A predictions file scored on one split (:func:`score_file`), ready to become records."""

    ds: InstanceSet
    dataset: Path
    sha256: str
    split: str
    labels: dict
    predictions: PredictionSet
    predictions_name: str
    score: SplitScore
    scoring_seconds: float


def score_predictions(dataset: Path | str, predictions: Path | str, split: str | None = None,
                      command: str = "", progress: Progress | None = None) -> dict:
    """Score a predictions file against a certified instance set; return a results record.

    Raises
    ------
    MissingDataError, SchemaError
        If the data set cannot be opened.
    SubmissionError
        If the predictions file as a whole breaks the contract (``docs/format.md``).
    """
    return score_record(score_file(dataset, predictions, split, progress), command)


def score_file(dataset: Path | str, predictions: Path | str, split: str | None = None,
               progress: Progress | None = None, accepted_sha256: tuple[str, ...] = ()) -> ScoredFile:
    """Read a predictions file, check it against ``dataset`` and score every instance of its split.

    ``accepted_sha256`` lists further files the predictions may say they were made for (a public release of
    ``dataset``, whose labels are withheld): a ``dataset_sha256`` attribute naming any other file is refused.
    """
    dataset = Path(dataset)
    ds = InstanceSet.open(dataset)
    sha = file_sha256(dataset)
    dy, dz = decision_dims(ds)
    # Read attributes first to learn the split, then validate against its size.
    probe_split = split or "test"
    part = ds.split(probe_split)
    pred = read_predictions(predictions, dy, dz, len(part))
    file_split = pred.attrs.get("split")
    if split is None and file_split and file_split != probe_split:
        part = ds.split(file_split)
        probe_split = file_split
        pred = read_predictions(predictions, dy, dz, len(part))
    elif split is not None and file_split and file_split != split:
        raise UsageError(f"predictions file says split {file_split!r} but --split {split!r} was given")
    _refuse_hidden(ds, dataset, probe_split)
    claimed = pred.attrs.get("dataset_sha256")
    if claimed and claimed != sha and claimed not in accepted_sha256:
        raise SubmissionError(f"predictions were made for a data set with sha256 {claimed[:12]}..., "
                              f"not {str(dataset)!r} ({sha[:12]}...)")
    y, z, answered = align(pred, len(part), dy, dz)
    start = time.perf_counter()
    score = score_split(ds, part.params, part.labels, y, answered, {}, z, progress)
    return ScoredFile(ds=ds, dataset=dataset, sha256=sha, split=probe_split, labels=part.labels, predictions=pred,
                      predictions_name=Path(predictions).name, score=score,
                      scoring_seconds=time.perf_counter() - start)


def score_record(scored: ScoredFile, command: str = "", score: SplitScore | None = None, split_label: str | None = None,
                 solver_overrides: dict | None = None) -> dict:
    """The results record of a scored file: of its whole split, or of ``score`` (a part of it, see
    :func:`bilevelbench.evaluate.scoring.restrict_score`) shown as split ``split_label``."""
    score = scored.score if score is None else score
    pred, n = scored.predictions, score.n
    solver = {"name": pred.attrs.get("solver_name", "unnamed-solver"),
              "version": pred.attrs.get("solver_version", "0"), "spec": f"predictions:{scored.predictions_name}",
              "description": pred.attrs.get("description", ""), "latency_verified": False,
              **(solver_overrides or {})}
    extra = {"latency_ms_median": pred.latency_ms, "latency_ms_p95": None, "throughput_per_s": None,
             "speedup_vs_exact": None}
    seconds = scored.scoring_seconds * n / max(scored.score.n, 1)
    timing = {"scoring_seconds": seconds, "scoring_ms_per_instance": 1e3 * seconds / max(n, 1),
              "scoring_throughput_per_s": n / seconds if seconds > 0 else None}
    block = dataset_block(scored.ds, scored.dataset, split_label or scored.split, n, scored.sha256)
    return build_record(mode="score", dataset=block, solver=solver, score=score, protocol=_protocol_common(),
                        provenance=provenance(command), timing=timing, extra_metrics=extra,
                        family=scored.ds.family_descriptor)


def _refuse_hidden(ds: InstanceSet, dataset: Path, split: str) -> None:
    """A public release's hidden split has no labels to score against: say so, and where it can be scored."""
    from bilevelbench.data.redact import hidden_split

    if hidden_split(ds, split):
        raise UsageError(f"split {split!r} of {str(dataset)!r} is hidden (a public release: its labels are held by "
                         "the scoring service only); score another split, or submit predictions to the service")


def redacted_copy(source: Path, split: str, target: Path) -> None:
    """Copy an instance set with the labels of ``split`` withheld (so a solver cannot read them)."""
    from bilevelbench.data.redact import withhold_labels

    data = withhold_labels(read_instance_set(source), (split,), "unlabeled", "withheld by the evaluator")
    write_instance_set(target, data, overwrite=True)


@dataclass
class SolverRun:
    """Predictions and timings recovered from a sandboxed run."""

    y: np.ndarray
    z: np.ndarray | None
    answered: np.ndarray
    reasons: dict[int, str]
    latency_ms: np.ndarray
    batched_seconds: float
    batched_instances: int
    batch_max_abs_diff: float | None
    identity: dict
    run: SandboxRun


def collect(run: SandboxRun, n: int, m: int, nz: int, untimed_from: int | None = None) -> SolverRun:
    """Turn journal events into aligned predictions, validating everything the child wrote.

    Instances from ``untimed_from`` on had no batch-size-1 solve (``Protocol.latency_instances``): their answers
    come from the batched pass (a failed batch leaves them unanswered, with the batch's error as the reason).
    """
    untimed_from = n if untimed_from is None else untimed_from
    y = np.full((n, m), np.nan)
    z_rows: dict[int, np.ndarray] = {}
    answered = np.zeros(n, bool)
    latency = np.full(n, np.nan)
    reasons: dict[int, str] = {}
    for event in run.of("instance"):
        i = event.get("i")
        if not isinstance(i, int) or not 0 <= i < n:
            continue
        if isinstance(event.get("latency_s"), (int, float)):
            latency[i] = 1e3 * float(event["latency_s"])
        if "error" in event:
            reasons[i] = str(event["error"])[:300]
            continue
        try:
            row = np.asarray(event.get("y"), dtype=float).reshape(m)
        except (TypeError, ValueError):
            reasons[i] = f"solve returned a malformed y (expected {m} numbers)"
            continue
        y[i], answered[i] = row, True
        if event.get("z") is not None:
            try:
                z_rows[i] = np.asarray(event["z"], dtype=float).reshape(nz)
            except (TypeError, ValueError):
                pass
    z = None
    if z_rows:
        z = np.full((n, nz), np.nan)
        for i, row in z_rows.items():
            z[i] = row
    stop = run.exit_reason()
    batched_s, batched_n, diffs = 0.0, 0, []
    for event in run.of("batch"):
        lo, size = event.get("start"), event.get("size")
        if "error" in event or not isinstance(event.get("seconds"), (int, float)):
            if "error" in event and isinstance(lo, int) and isinstance(size, int):
                for i in range(max(lo, untimed_from), min(n, lo + size)):
                    reasons.setdefault(i, str(event["error"])[:300])
            continue
        try:
            rows = np.asarray(event.get("y"), dtype=float).reshape(size, m)
        except (TypeError, ValueError):
            continue
        batched_s += float(event["seconds"])
        batched_n += int(size)
        ref = y[lo:lo + size]
        ok = np.isfinite(ref).all(1) & np.isfinite(rows).all(1)
        if ok.any():
            diffs.append(float(np.max(np.abs(rows[ok] - ref[ok]))))
        for j in range(size):                    # instances past the latency pass are answered here only
            i = lo + j
            if i >= untimed_from and not answered[i] and np.isfinite(rows[j]).all():
                y[i], answered[i] = rows[j], True
                reasons.pop(i, None)
    for i in range(n):
        if not answered[i] and i not in reasons:
            reasons[i] = f"not answered: {stop}" if stop else "not answered"
    loaded = run.first("identity") or run.first("loaded") or {}
    identity = {key: str(loaded.get(key, ""))[:200] for key in ("name", "version", "description")}
    return SolverRun(y=y, z=z, answered=answered, reasons=reasons, latency_ms=latency, batched_seconds=batched_s,
                     batched_instances=batched_n, batch_max_abs_diff=max(diffs) if diffs else None,
                     identity=identity, run=run)


@contextlib.contextmanager
def redacted_dataset(dataset: Path, split: str) -> Iterator[Path]:
    """A temporary copy of ``dataset`` with the labels of ``split`` withheld, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="bilevelbench-data-") as tmp:
        copy = Path(tmp) / dataset.name
        redacted_copy(dataset, split, copy)
        yield copy


def run_solver(redacted: Path, dataset_name: str, solver: str, split: str, protocol: Protocol, limits: Limits,
               n: int, m: int, nz: int, progress: Progress | None = None, limit: int | None = None,
               batch_size: int | None = None) -> SolverRun:
    """Run ``solver`` in the sandbox on ``redacted`` (see :func:`redacted_dataset`) and collect its answers."""
    config = WorkerConfig(solver=solver, dataset=str(redacted), dataset_name=dataset_name, split=split,
                          warmup=protocol.warmup,
                          batch_size=protocol.batch_size if batch_size is None else batch_size,
                          threads=protocol.threads, limit=limit, latency_instances=protocol.latency_instances)
    timed = n if protocol.latency_instances is None else min(n, protocol.latency_instances)

    def on_event(event: dict) -> None:
        if progress is None:
            return
        if event.get("event") == "instance":
            progress(1)
        elif event.get("event") == "batch" and timed < n:       # instances answered by the batched pass only
            lo, size = int(event.get("start", 0)), int(event.get("size", 0))
            progress(max(0, lo + size - max(lo, timed)))

    return collect(run_in_sandbox(config, limits, on_event), n, m, nz, untimed_from=timed)


def evaluate_solver(dataset: Path | str, solver: str, split: str = "test", protocol: Protocol | None = None,
                    limits: Limits | None = None, command: str = "", progress: Progress | None = None,
                    exact_progress: Progress | None = None) -> dict:
    """Run ``solver`` under the timing protocol in a sandbox and score it; return a results record.

    Never raises for anything the solver does (crash, hang, bad output): those
    become recorded failures. Raises for bad arguments or an unreadable data set.
    """
    check_spec_form(solver)
    protocol = protocol or Protocol()
    limits = limits or Limits()
    dataset = Path(dataset)
    ds = InstanceSet.open(dataset)
    sha = file_sha256(dataset)
    part = ds.split(split)
    dy, dz = decision_dims(ds)
    n = len(part) if protocol.limit is None else min(len(part), protocol.limit)
    if n == 0:
        raise UsageError(f"split {split!r} of {str(dataset)!r} has no instances to evaluate")
    _refuse_hidden(ds, dataset, split)
    name = str(ds.meta.get("name") or dataset.stem)
    with redacted_dataset(dataset, split) as redacted:
        result = run_solver(redacted, name, solver, split, protocol, limits, n, dy, dz, progress,
                            limit=protocol.limit)
        latency = metrics.aggregate(result.latency_ms)
        exact_median = None
        if protocol.exact_instances > 0 and latency["median"] is not None:
            k = min(n, protocol.exact_instances)
            exact = run_solver(redacted, name, EXACT_SOLVER_SPEC, split,
                               Protocol(warmup=1, threads=protocol.threads), limits, k, dy, dz, exact_progress,
                               limit=k, batch_size=0)
            exact_median = metrics.aggregate(exact.latency_ms)["median"]
    run = result.run
    params = {key: value[:n] for key, value in part.params.items()}
    labels = {key: value[:n] for key, value in part.labels.items()}
    solver_block = {**result.identity, "spec": solver, "latency_verified": True}
    data_block = dataset_block(ds, dataset, split, n, sha)
    proto = {**_protocol_common(), **asdict(protocol), **{f"limit_{k}": v for k, v in asdict(limits).items()},
             "latency": "per-instance wall time of solve() at batch size 1 (time.perf_counter), after warm-up"
                        + ("" if protocol.latency_instances is None or protocol.latency_instances >= n else
                           f", on the first {protocol.latency_instances} instances; the others were answered by "
                           "the batched pass only"),
             "throughput": "instances / total wall time of solve() over the split in batches of batch_size"}
    skip = run.first("skip")
    if skip is not None:
        return build_record(mode="evaluate", dataset=data_block, solver=solver_block, score=None, protocol=proto,
                            provenance=provenance(command),
                            status=("skipped", f"solver declined: {skip.get('reason', '')}"),
                            family=ds.family_descriptor)
    start = time.perf_counter()
    score: SplitScore = score_split(ds, params, labels, result.y, result.answered, result.reasons, result.z)
    scoring_s = time.perf_counter() - start
    setup = run.first("setup") or {}
    done = run.first("latency_done") or {}
    overhead = None
    if isinstance(done.get("loop_s"), (int, float)) and isinstance(done.get("solve_s"), (int, float)):
        overhead = 1e3 * (done["loop_s"] - done["solve_s"]) / max(1, int(np.isfinite(result.latency_ms).sum()))
    latency_median = latency["median"]
    extra = {"latency_ms_median": latency_median, "latency_ms_p95": latency["p95"],
             "throughput_per_s": (result.batched_instances / result.batched_seconds
                                  if result.batched_seconds > 0 else None),
             "speedup_vs_exact": (exact_median / latency_median
                                  if exact_median is not None and latency_median else None),
             "batch_consistency_max_abs_diff": result.batch_max_abs_diff}
    timing = {"setup_seconds": setup.get("seconds"), "warmup": run.first("warmup"),
              "evaluator_overhead_ms_per_instance": overhead,
              "scoring_seconds": scoring_s, "scoring_ms_per_instance": 1e3 * scoring_s / n,
              "scoring_throughput_per_s": n / scoring_s if scoring_s > 0 else None,
              "exact_latency_ms_median": exact_median, "exact_spec": EXACT_SOLVER_SPEC,
              "sandbox_wall_seconds": run.wall_seconds}
    run_failures = []
    stop = run.exit_reason()
    if stop:
        run_failures.append({"instance": None, "reason": stop})
    for event in run.of("batch"):
        if "error" in event:
            run_failures.append({"instance": None, "reason": f"batched solve of instances {event.get('start')}.."
                                                              f"{event.get('start', 0) + event.get('size', 0) - 1}: "
                                                              f"{event['error']}"})
    record = build_record(mode="evaluate", dataset=data_block, solver=solver_block, score=score, protocol=proto,
                          provenance=provenance(command), timing=timing, extra_metrics=extra,
                          per_instance_extra={"latency_ms": result.latency_ms}, run_failures=run_failures,
                          family=ds.family_descriptor)
    if not np.any(score.scored) and stop:
        record["status_reason"] = stop
    return record


# -- closed loop ----------------------------------------------------------------------------------
def closed_loop_plan(ds: InstanceSet, steps: int, episodes: int | None = None) -> tuple[dict, dict]:
    """The episodes ``evaluate --closed-loop`` runs and the stored references (``Family.closed_loop_plan``).

    Raises
    ------
    UsageError
        If the family has no closed loop, the file stores no reference episodes, or ``steps`` exceeds
        the stored episodes' length.
    """
    return ds.family_descriptor.closed_loop_plan(ds, steps, episodes)


def evaluate_closed_loop(dataset: Path | str, solver: str, steps: int, episodes: int | None = None,
                         limits: Limits | None = None, threads: int = 1, command: str = "",
                         progress: Progress | None = None) -> dict:
    """Run ``solver`` as a receding-horizon policy from the stored reference episodes' starts; score it.

    The solver runs sandboxed on a copy of the data set with the test labels and the reference episodes
    withheld; every ``solve`` call gets one ``theta`` (batch size 1) and is timed. The evaluator then
    re-simulates each episode from the submitted decisions (it never trusts the child's states).
    """
    from bilevelbench.evaluate.records import json_safe

    check_spec_form(solver)
    limits = limits or Limits()
    dataset = Path(dataset)
    ds = InstanceSet.open(dataset)
    sha = file_sha256(dataset)
    family = ds.family_descriptor
    plan, reference = family.closed_loop_plan(ds, steps, episodes)
    dy, _ = decision_dims(ds)
    name = str(ds.meta.get("name") or dataset.stem)
    E = len(plan["episodes"])
    with redacted_dataset(dataset, "test") as redacted:
        config = WorkerConfig(solver=solver, dataset=str(redacted), dataset_name=name, split="test", warmup=0,
                              batch_size=0, threads=threads, closed_loop=plan)

        def on_event(event: dict) -> None:
            if progress is not None and event.get("event") == "cl_episode":
                progress(1)

        run = run_in_sandbox(config, limits, on_event)
    decisions: list[list] = [[] for _ in range(E)]
    latencies: list[list] = [[] for _ in range(E)]
    for event in run.of("cl_step"):
        e = event.get("episode")
        if not isinstance(e, int) or not 0 <= e < E:
            continue
        if isinstance(event.get("latency_s"), (int, float)):
            latencies[e].append(float(event["latency_s"]))
        if "error" in event or event.get("x") is None:
            decisions[e].append(None)
            continue
        try:
            decisions[e].append(np.asarray(event["x"], float).reshape(dy))
        except (TypeError, ValueError):
            decisions[e].append(None)
    # A None in the middle ends the replay there, exactly where the child's episode ended.
    decisions = [row[: next((i for i, x in enumerate(row) if x is None), len(row))] for row in decisions]
    scored, head = family.score_closed_loop(ds, plan, reference, decisions, latencies)
    loaded = run.first("identity") or run.first("loaded") or {}
    solver_block = {**{key: str(loaded.get(key, ""))[:200] for key in ("name", "version", "description")},
                    "spec": solver, "latency_verified": True}
    if not solver_block["name"]:
        solver_block["name"] = Path(solver).name or "unnamed-solver"
    data_block = dataset_block(ds, dataset, f"test-closed-loop-{steps}", E, sha)
    failures = list(scored["failures"])
    stop = run.exit_reason()
    if stop:
        failures.append({"instance": None, "reason": stop})
    completed = scored["per"]["completed"]
    status = ("complete", None) if E and completed.all() else (
        ("partial", f"{int((~completed).sum())} of {E} episodes stopped early") if completed.any()
        else ("failed", stop or (failures[0]["reason"] if failures else "no episode completed")))
    skip = run.first("skip")
    if skip is not None:
        status = ("skipped", f"solver declined: {skip.get('reason', '')}")
    protocol = {**_protocol_common(), "closed_loop_steps": steps, "episodes": E, "threads": threads,
                "latency": "wall time of each solve() call at batch size 1 inside the episode loop",
                "cost": "sum of the MPC's stage cost at the real states over the steps; ratio to the exact MPC's "
                        "episode from the same start (stored in the data set)",
                **{f"limit_{k}": v for k, v in asdict(limits).items()}}
    per_instance = {"instance": list(range(E)), **{k: v for k, v in scored["per"].items()},
                    "start_index": [ep["index"] for ep in plan["episodes"]]}
    record = {"schema": "bilevelbench-result", "schema_version": 1, "mode": "closed_loop", "status": status[0],
              "status_reason": status[1], "dataset": data_block, "solver": solver_block, "metrics": head,
              "aggregates": {"cost_ratio": metrics.aggregate(scored["per"]["cost_ratio"])},
              "per_instance": per_instance, "failures": failures, "protocol": protocol,
              "timing": {"sandbox_wall_seconds": run.wall_seconds}, "provenance": provenance(command)}
    return json_safe(record)
