"""Sample -> certify -> write for the mixed-integer families (``mimpc-robot``, ``mimpc-tank``).

Splits. Every split is drawn from its own stream, ``SeedSequence(seed,
spawn_key=(1, k))`` for train, valid, test (k = 0, 1, 2), in order, until it
holds the requested number of *certified* instances. Draws the exact solver
proves infeasible (and HiGHS's MILP check confirms) go to the ``infeasible``
split, tagged with the split they were drawn for; draws whose label failed a
check stay in their split with no solution and the reason. Which draws end up
where depends only on the seed and the counts, not on the number of workers.

Closed-loop references. The exact MPC (the same certifier, every step) is run
in receding horizon from the first ``closed_loop_episodes`` test instances for
``closed_loop_steps`` steps (:mod:`bilevelbench.closed_loop`); the episodes are
stored under ``/closed_loop`` so that ``evaluate --closed-loop`` compares a
policy with them without solving anything.

Resuming. Every finished label is appended to ``OUT.partial.jsonl`` at once;
running the same command again skips what that journal holds (it is checked
against the request and the certifier settings). The HDF5 file is written
atomically at the end and the journal removed.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from bilevelbench.core.backends import backend_version, highs_version
from bilevelbench.core.family import SplitRequest
from bilevelbench.core.pipeline import root_attrs
from bilevelbench.core.statuses import SOLUTION_STATUSES
from bilevelbench.data.hdf5 import (
    BACKEND_DTYPE,
    SPLITS,
    STATUS_DTYPE,
    InstanceSetData,
    as_fixed_ascii,
    check_output_path,
    write_instance_set,
)
from bilevelbench.errors import UsageError
from bilevelbench.families.mimpc import problem as mimpc
from bilevelbench.families.mimpc.certify import (
    MIQP_CHECK_FIELDS,
    MIQPCertifierSettings,
    MIQPLabel,
    certify_miqp,
    choose_backend,
)
from bilevelbench.families.mimpc.closed_loop import STEP_FLAGS, apply_first_move, episode_disturbances, run_episode
from bilevelbench.families.mimpc.miqp import MIQPStructure

log = logging.getLogger(__name__)

ProgressFactory = Callable[[int], "object"]
INFEASIBLE_SPLIT = "infeasible"
#: ``independent``: every instance its own draw. ``closed-loop`` (the robot): the states an exact-MPC episode
#: visits, from starts at rest drawn as the authors' ``generate_data.py`` draws them (:func:`collect_episode`).
SAMPLINGS = ("independent", "closed-loop")
#: With closed-loop sampling, step ``t`` of episode ``e`` is draw ``e * EPISODE_STRIDE + t`` (``/labels/draw``).
EPISODE_STRIDE = 1000


@dataclass(frozen=True)
class MIQPRequest(SplitRequest):
    """What to generate for a mixed-integer family."""

    family: str
    n_train: int
    n_valid: int
    n_test: int
    seed: int
    closed_loop_episodes: int = 0
    closed_loop_steps: int = 0
    max_draws_factor: float = 3.0
    geometry: str = "issue"
    sampling: str = "independent"
    collect_steps: int = 100

    def __post_init__(self) -> None:
        if self.family not in mimpc.FAMILIES:
            raise UsageError(f"unknown mixed-integer family {self.family!r}; expected {', '.join(mimpc.FAMILIES)}")
        self.check_counts()
        mimpc.structure_for(self.family, self.geometry)          # checks the geometry
        if self.sampling not in SAMPLINGS:
            raise UsageError(f"sampling must be one of {', '.join(SAMPLINGS)}, got {self.sampling!r}")
        if self.sampling == "closed-loop" and self.family != "mimpc-robot":
            raise UsageError("closed-loop sampling is defined for mimpc-robot (the authors' data collection); "
                             f"{self.family} draws its instances independently")
        if self.collect_steps < 1:
            raise UsageError(f"collect_steps must be >= 1, got {self.collect_steps}")
        for name in ("closed_loop_episodes", "closed_loop_steps"):
            if getattr(self, name) < 0:
                raise UsageError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.closed_loop_episodes > self.n_test:
            raise UsageError(f"closed_loop_episodes ({self.closed_loop_episodes}) cannot exceed n_test "
                             f"({self.n_test})")
        if self.closed_loop_episodes and self.closed_loop_steps < 1:
            raise UsageError("closed_loop_steps must be >= 1 when closed_loop_episodes > 0")

    def recorded(self) -> dict:
        """The request as files and journals record it. The default geometry and independent sampling are left
        out, so files of the default robot and of the tank keep the content they had before these options."""
        out = asdict(self)
        if self.geometry == "issue":
            del out["geometry"]
        if self.sampling == "independent":
            del out["sampling"], out["collect_steps"]
        return out


def max_draws(request: MIQPRequest, split_k: int) -> int:
    """How many draws split ``k`` may use: ``ceil(max_draws_factor * count) + 10``."""
    want = request.split_counts()[SPLITS[split_k]]
    return int(np.ceil(want * request.max_draws_factor)) + 10 if want else 0


def draws_for(request: MIQPRequest, split_k: int) -> np.ndarray:
    """All candidate parameter draws of split ``k`` (one block of :func:`max_draws`, always the same block:
    the samplers draw whole arrays, so a block's rows depend on its length)."""
    rng = np.random.default_rng(np.random.SeedSequence(request.seed, spawn_key=(1, split_k)))
    if request.sampling == "closed-loop":          # episode starts, not instances
        return mimpc.robot_episode_starts(rng, max_draws(request, split_k), mimpc.robot_config(request.geometry))
    return mimpc.sample_theta(request.family, rng, max_draws(request, split_k), request.geometry)


def theta_of(request: MIQPRequest, journal: Journal, split_k: int, draw: int,
             cache: dict[int, np.ndarray] | None = None) -> np.ndarray:
    """The parameters of one draw: from the split's draw block, or (closed-loop sampling) the journaled state
    its episode visited."""
    if request.sampling == "closed-loop":
        return journal.thetas[(SPLITS[split_k], draw)]
    if cache is None:
        return draws_for(request, split_k)[draw]
    if split_k not in cache:
        cache[split_k] = draws_for(request, split_k)
    return cache[split_k][draw]


# -- the resumable journal -----------------------------------------------------------------
class Journal:
    """Append-only JSON lines of finished labels, keyed by ``(split, draw)``; tied to one request."""

    def __init__(self, path: Path, key: str) -> None:
        self.path = path
        self.key = key
        self.done: dict[tuple[str, int], MIQPLabel] = {}
        self.episodes: dict[int, dict] = {}
        #: (split, draw) -> theta of the states closed-loop collection visited.
        self.thetas: dict[tuple[str, int], np.ndarray] = {}
        #: (split, episode) of the collection episodes already run.
        self.collected: set[tuple[str, int]] = set()
        if path.exists():
            with open(path, encoding="utf-8") as f:
                lines = f.read().splitlines()
            if lines and json.loads(lines[0]).get("key") != key:
                raise UsageError(f"{str(path)!r} belongs to a different request or certifier setting; delete it "
                                 "to start over, or rerun the command that made it")
            for line in lines[1:]:
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:  # a line cut short by a kill: ignore it, it is redone
                    continue
                if rec.get("kind") == "episode":
                    self.episodes[int(rec["index"])] = rec
                elif rec.get("kind") == "collect":
                    self._collected(rec["split"], int(rec["episode"]), rec["thetas"],
                                    [MIQPLabel.from_json(lab) for lab in rec["labels"]])
                else:
                    self.done[(rec["split"], int(rec["draw"]))] = MIQPLabel.from_json(rec["label"])
            log.info("resuming: %d labels and %d episodes already in %s", len(self.done), len(self.episodes), path)
        else:
            with open(path, "w", encoding="utf-8") as f:
                f.write(json.dumps({"key": key}) + "\n")
        self._f = open(path, "a", encoding="utf-8")

    def add(self, split: str, draw: int, label: MIQPLabel) -> None:
        self.done[(split, draw)] = label
        self._f.write(json.dumps({"split": split, "draw": draw, "label": label.to_json()}) + "\n")
        self._f.flush()

    def add_collected(self, split: str, episode: int, thetas: list[np.ndarray], labels: list[MIQPLabel]) -> None:
        """Journal one closed-loop collection episode: the states it visited and their labels."""
        self._collected(split, episode, thetas, labels)
        self._f.write(json.dumps({"kind": "collect", "split": split, "episode": episode,
                                  "thetas": [np.asarray(t, float).tolist() for t in thetas],
                                  "labels": [lab.to_json() for lab in labels]}) + "\n")
        self._f.flush()

    def _collected(self, split: str, episode: int, thetas, labels: list[MIQPLabel]) -> None:
        self.collected.add((split, episode))
        for t, (theta, label) in enumerate(zip(thetas, labels)):
            draw = episode * EPISODE_STRIDE + t
            self.thetas[(split, draw)] = np.asarray(theta, float)
            self.done[(split, draw)] = label

    def add_episode(self, index: int, record: dict) -> None:
        self.episodes[index] = record
        self._f.write(json.dumps({"kind": "episode", "index": index, **record}) + "\n")
        self._f.flush()

    def close(self) -> None:
        self._f.close()


# -- workers -------------------------------------------------------------------------------
_STATE: dict = {}


def _init_worker(family: str, geometry: str, settings: MIQPCertifierSettings, backend: str) -> None:
    _STATE.update(family=family, structure=mimpc.structure_for(family, geometry), settings=settings,
                  backend=backend)


def _label_task(task: tuple[str, int, np.ndarray]) -> tuple[str, int, MIQPLabel]:
    split, draw, theta = task
    return split, draw, certify_miqp(_STATE["structure"], theta, _STATE["settings"], _STATE["backend"])


def exact_episode(family: str, s: MIQPStructure, theta0: np.ndarray, steps: int, disturbances: np.ndarray,
                  settings: MIQPCertifierSettings, backend: str) -> dict:
    """Run the exact MPC in closed loop; a step whose label is not certified ends the episode."""
    why: list[str] = []

    def policy(theta: np.ndarray):
        label = certify_miqp(s, theta, settings, backend)
        if label.status != "certified_optimal":
            why.append(f"{label.status}: {label.reason}"[:200])
            return None
        return label.x

    ep = run_episode(family, s, theta0, steps, policy, disturbances)
    return {"completed": ep.completed, "reason": why[0] if why else ep.reason, "steps_taken": len(ep.stage_cost),
            "stage_cost": ep.stage_cost.tolist(), "decisions": ep.decisions.tolist(),
            "flags": {k: v.tolist() for k, v in ep.flags.items()}}


def collect_episode(s: MIQPStructure, theta0: np.ndarray, max_steps: int, settings: MIQPCertifierSettings,
                    backend: str) -> tuple[list[np.ndarray], list[MIQPLabel]]:
    """The authors' data collection (``robot_nav/generate_data.py``) for one start: solve the exact MPC at the
    current state, keep the state and its label, apply the first input, until the robot is within
    :data:`~bilevelbench.families.mimpc.problem.GOAL_REACHED` of the goal (checked at the state solved for,
    as their loop does) or ``max_steps`` states are kept. A state whose MIQP is not certified optimal is kept
    with its label (an infeasible one goes to the ``infeasible`` split) and ends the episode; the authors skip
    such a state and move on with the last plan."""
    thetas, labels = [], []
    theta = np.asarray(theta0, float).copy()
    for _ in range(max_steps):
        if np.linalg.norm(theta[:2] - theta[4:6]) < mimpc.GOAL_REACHED:
            break
        label = certify_miqp(s, theta, settings, backend)
        thetas.append(theta.copy())
        labels.append(label)
        if label.status != "certified_optimal":
            break
        moved = apply_first_move("mimpc-robot", s, theta, label.x)
        theta = np.concatenate([moved.next_state, theta[4:6]])
    return thetas, labels


def _collect_task(task: tuple[str, int, np.ndarray, int]) -> tuple[str, int, list, list]:
    split, episode, theta0, steps = task
    thetas, labels = collect_episode(_STATE["structure"], theta0, steps, _STATE["settings"], _STATE["backend"])
    return split, episode, thetas, labels


def _episode_task(task: tuple[int, np.ndarray, int, np.ndarray]) -> tuple[int, dict]:
    index, theta0, steps, dist = task
    return index, exact_episode(_STATE["family"], _STATE["structure"], theta0, steps, dist, _STATE["settings"],
                                _STATE["backend"])


def _run_pool(func, tasks, workers, family, settings, backend, on_result, scheduler=None, geometry="issue") -> None:
    from bilevelbench.parallel import map_tasks

    key = f"{family}:{geometry}:{backend}:{json.dumps(settings.as_dict(), sort_keys=True)}"
    for result in map_tasks(func, tasks, workers=workers, scheduler=scheduler, initializer=_init_worker,
                            initargs=(family, geometry, settings, backend), key=key):
        on_result(result)


# -- main entry ------------------------------------------------------------------------------
def _request_key(request: MIQPRequest, settings: MIQPCertifierSettings, backend: str) -> str:
    blob = json.dumps({"request": request.recorded(), "settings": settings.as_dict(), "backend": backend,
                       "generator": mimpc.GENERATOR_VERSION}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def generate_miqp(request: MIQPRequest, out: Path | str, settings: MIQPCertifierSettings | None = None,
                  workers: int = 1, overwrite: bool = False, progress: ProgressFactory | None = None,
                  name: str | None = None, spec: dict | None = None, scheduler: str | None = None) -> Path:
    """Generate, certify and write a mixed-integer instance set; returns the written path (resumable)."""
    out = Path(out)
    check_output_path(out, overwrite)
    settings = settings or MIQPCertifierSettings()
    if workers < 1:
        raise UsageError(f"--workers must be >= 1, got {workers}")
    s = mimpc.structure_for(request.family, request.geometry)
    backend = choose_backend(s, settings.backend)
    journal = Journal(out.with_name(out.name + ".partial.jsonl"), _request_key(request, settings, backend))
    try:
        collect = _collect_splits if request.sampling == "closed-loop" else _label_splits
        chosen = collect(request, s, settings, backend, workers, journal, progress, scheduler)
        episodes = _closed_loop(request, s, settings, backend, workers, journal, chosen, progress, scheduler)
    finally:
        journal.close()
    data = _assemble(request, s, settings, backend, chosen, journal, episodes, name, spec)
    write_instance_set(out, data, overwrite=overwrite)
    journal.path.unlink(missing_ok=True)
    return out


def _fill_splits(request: MIQPRequest, progress, fill) -> dict[str, list[tuple[int, int]]]:
    """Run ``fill(k, split, want, limit, place)`` for every split with a count; ``place(k, draw, label)`` files one
    label (infeasible ones into the ``infeasible`` split) and returns whether it counts (certified optimal).
    Returns ``split -> [(k, draw)]``."""
    chosen: dict[str, list[tuple[int, int]]] = {name: [] for name in (*SPLITS, INFEASIBLE_SPLIT)}
    bar = progress(sum(request.split_counts().values())) if progress else None

    def place(k: int, draw: int, label: MIQPLabel) -> bool:
        if label.status == "infeasible":
            chosen[INFEASIBLE_SPLIT].append((k, draw))
            return False
        chosen[SPLITS[k]].append((k, draw))
        if label.status != "certified_optimal":
            return False
        if bar is not None:
            bar.update(1)
        return True

    try:
        for k, split in enumerate(SPLITS):
            want = request.split_counts()[split]
            if want:
                fill(k, split, want, max_draws(request, k), place)
    finally:
        if bar is not None:
            bar.close()
    return chosen


def _label_splits(request, s, settings, backend, workers, journal, progress, scheduler=None
                  ) -> dict[str, list[tuple[int, int]]]:
    """Certify draws split by split until each holds its count; returns ``split -> [(k, draw)]`` per group."""

    def fill(k, split, want, limit, place):
        thetas = draws_for(request, k)
        certified, draw = 0, 0
        while certified < want:
            if draw >= limit:
                raise UsageError(f"{split}: only {certified} of {want} draws certified within {limit} "
                                 "draws; the family's sampler yields too many infeasible or failed instances")
            batch = list(range(draw, min(limit, draw + max(2 * workers, min(want - certified, 200)))))
            todo = [(split, i, thetas[i]) for i in batch if (split, i) not in journal.done]
            _run_pool(_label_task, todo, workers, request.family, settings, backend,
                      lambda r: journal.add(r[0], r[1], r[2]), scheduler, request.geometry)
            for i in batch:
                if certified >= want:
                    break
                certified += place(k, i, journal.done[(split, i)])
            draw = batch[-1] + 1

    return _fill_splits(request, progress, fill)


def _collect_splits(request, s, settings, backend, workers, journal, progress, scheduler=None
                    ) -> dict[str, list[tuple[int, int]]]:
    """Closed-loop sampling: run collection episodes split by split (each from the split's own starts, in
    order) and take their states in order until the split holds its count (the last episode is cut there).
    An episode's states stay in one split, so no split sees another's trajectories."""

    def fill(k, split, want, limit, place):
        starts = draws_for(request, k)
        certified, episode = 0, 0
        while certified < want:
            if episode >= limit:
                raise UsageError(f"{split}: only {certified} of {want} states certified within {limit} "
                                 "collection episodes")
            batch = list(range(episode, min(limit, episode + 2 * workers)))
            todo = [(split, e, starts[e], request.collect_steps) for e in batch if (split, e) not in journal.collected]
            _run_pool(_collect_task, todo, workers, request.family, settings, backend,
                      lambda r: journal.add_collected(*r), scheduler, request.geometry)
            for e in batch:
                draw = e * EPISODE_STRIDE                 # the episode's states, in order, while it has them
                while certified < want and (split, draw) in journal.done:
                    certified += place(k, draw, journal.done[(split, draw)])
                    draw += 1
            episode = batch[-1] + 1

    return _fill_splits(request, progress, fill)


def _episode_starts(request, journal, chosen) -> list[tuple[int, int]]:
    """``(file position, draw)`` of the test instances episodes start from: the first certified ones."""
    offset = len(chosen["train"]) + len(chosen["valid"])
    starts = [(offset + j, i) for j, (_, i) in enumerate(chosen["test"])
              if journal.done[("test", i)].status == "certified_optimal"]
    return starts[: request.closed_loop_episodes]


def _closed_loop(request, s, settings, backend, workers, journal, chosen, progress, scheduler=None
                 ) -> dict[int, dict]:
    if request.closed_loop_episodes == 0:
        return {}
    starts = _episode_starts(request, journal, chosen)
    cache: dict[int, np.ndarray] = {}
    tasks = []
    for e, (position, i) in enumerate(starts):
        if e in journal.episodes:
            continue
        theta = theta_of(request, journal, 2, i, cache)
        dist = episode_disturbances(request.family, s, theta, request.closed_loop_steps, request.seed, position)
        tasks.append((e, theta, request.closed_loop_steps, dist))
    bar = progress(len(starts)) if progress else None
    if bar is not None:
        bar.update(len(starts) - len(tasks))
    try:
        def done(result):
            journal.add_episode(result[0], result[1])
            if bar is not None:
                bar.update(1)
        _run_pool(_episode_task, tasks, workers, request.family, settings, backend, done, scheduler,
                  request.geometry)
    finally:
        if bar is not None:
            bar.close()
    return {e: {**journal.episodes[e], "start_index": position} for e, (position, _) in enumerate(starts)}


def _assemble(request, s, settings, backend, chosen, journal, episodes, name, spec=None) -> InstanceSetData:
    order = [(split, k, i) for split in (*SPLITS, INFEASIBLE_SPLIT) for k, i in chosen[split]]
    cache: dict[int, np.ndarray] = {}
    params = {"theta": np.array([theta_of(request, journal, k, i, cache) for _, k, i in order]).reshape(
        len(order), s.p)}
    labels_list = [journal.done[(SPLITS[k], i)] for _, k, i in order]
    keep = [lab.status in SOLUTION_STATUSES for lab in labels_list]
    labels = {
        "x": np.array([lab.x if ok else np.full(s.n, np.nan) for lab, ok in zip(labels_list, keep)]).reshape(-1, s.n),
        "objective": np.array([lab.objective if ok else np.nan for lab, ok in zip(labels_list, keep)], float),
        "status": as_fixed_ascii([lab.status for lab in labels_list], STATUS_DTYPE),
        "reason": np.array([lab.reason for lab in labels_list], dtype=str),
        "backend": as_fixed_ascii([lab.backend for lab in labels_list], BACKEND_DTYPE),
        "primal_bound": np.array([lab.primal_bound for lab in labels_list], float),
        "dual_bound": np.array([lab.dual_bound for lab in labels_list], float),
        "solve_time": np.array([lab.solve_time for lab in labels_list], float),
        "nodes": np.array([lab.nodes for lab in labels_list], np.int64),
        "drawn_for": np.array([SPLITS[k] for _, k, _ in order], dtype=str),
        "draw": np.array([i for _, _, i in order], np.int64),
    }
    checks = {key: np.array([lab.checks.get(key, np.nan) for lab in labels_list], float) for key in MIQP_CHECK_FIELDS}
    splits, start = {}, 0
    for split in (*SPLITS, INFEASIBLE_SPLIT):
        count = len(chosen[split])
        splits[split] = np.arange(start, start + count, dtype=np.int64)
        start += count
    attrs = root_attrs(
        request.family, mimpc.GENERATOR_VERSION, request.seed, s, name=name, spec=spec,
        certifier_settings={**settings.as_dict(), "backend_used": backend},
        backend_versions={backend: backend_version(backend), "highs (checks)": highs_version()},
        paper_convention={"paper": mimpc.PAPER, "gap_offset": mimpc.PAPER_GAP_OFFSET},
        sampling={**request.recorded(), "sampler": _sampler_text(request)},
        miqp={"class_names": list(s.class_names), "decision_names": list(s.decision_names),
              "integer_only_classes": list(s.integer_only_classes),
              "extra": {k: np.asarray(v).tolist() for k, v in s.extra.items()}})
    structure = dict(s.arrays())
    structure["c0"] = np.asarray(s.c0)
    data = InstanceSetData(attrs=attrs, structure=structure, params=params, labels=labels, checks=checks,
                           splits=splits)
    if episodes:
        data.closed_loop = _episode_arrays(request, s, chosen, episodes)
    return data


def _episode_arrays(request, s, chosen, episodes) -> dict[str, np.ndarray]:
    E, T = len(episodes), request.closed_loop_steps
    out = {"start_index": np.zeros(E, np.int64), "completed": np.zeros(E, bool),
           "steps_taken": np.zeros(E, np.int64), "stage_cost": np.full((E, T), np.nan),
           "decisions": np.full((E, T, s.n), np.nan), "reason": np.array([""] * E, dtype=object)}
    for flag in STEP_FLAGS:
        out[flag] = np.zeros((E, T), bool)
    for e in range(E):
        rec = episodes[e]
        out["start_index"][e] = int(rec["start_index"])
        out["completed"][e] = bool(rec["completed"])
        t = int(rec["steps_taken"])
        out["steps_taken"][e] = t
        out["stage_cost"][e, :t] = rec["stage_cost"]
        if t:
            out["decisions"][e, :t] = np.array(rec["decisions"])
        for flag in STEP_FLAGS:
            out[flag][e, :t] = rec["flags"][flag]
        out["reason"][e] = str(rec["reason"])
    out["reason"] = out["reason"].astype(str)
    out["steps"] = np.full(E, T, np.int64)
    return out



def _sampler_text(request: MIQPRequest) -> str:
    if request.sampling == "closed-loop":
        return ("states visited by exact-MPC episodes (at most collect_steps each, ended within 0.2 m of the goal) "
                "from starts at rest drawn as the authors' generate_data.py: goal uniform in the box (0.01 m), "
                "start uniform (0.001 m), both outside the obstacles grown by d_min + 0.1, 2 (d_min + 0.1) apart")
    if request.family == "mimpc-robot":
        return ("p0 uniform in the box outside the obstacles grown by d_min; v0 uniform in [-v_max, v_max]^2; "
                "goal uniform in the box outside the obstacles grown by d_min + 0.1")
    return ("x0 uniform in [0, 8.4] x [0, 3.6]; d1 = 7 Beta(0.6, 1.4) i.i.d.; d2 bursts of amplitude U(1, 16) "
            "over 2-5 steps (the authors' generator)")
