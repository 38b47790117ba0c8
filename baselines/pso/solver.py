"""Particle swarm optimisation (PSO) baseline, as in the appendix of Kotary et al.

For each instance ``(c, d)`` one swarm of pyswarms' global-best PSO
(:class:`pyswarms.single.GlobalBestPSO`, ``c1 = c2 = 0.5``, ``w = 0.9``, 128
particles, 200 iterations, pyswarms' default boundary handling ``"periodic"``)
minimises over the leader's decision ``y`` the penalised upper objective

    cost(y) = 1/2 y'Qy + c'y + d'z(y) + q + kappa * ||ReLU(A y - b - E z(y))||_2

where ``z(y)`` is the follower's response, computed for the whole swarm at once
by the batched interior-point layer :class:`bilevelbench.torch.qp_layer.FollowerLayer`
(pyswarms hands the cost function the whole swarm, ``(n_particles, m)``). The
answer is the swarm's global best ``y`` (and its ``z(y)``).

Choices made in ``setup`` (untimed), from the data a submission may read, never
from the evaluated split:

* **Search box for y.** When certified labels exist for the ``train`` split, or
  else for the ``valid`` split, the box is their per-coordinate range widened on
  each side by ``box_margin`` (0.25) times the range (at least ``box_margin``).
  Without labels it is the heuristic box ``+-R`` with
  ``R = 2 * max(1, ||b||_inf, ||h||_inf)`` (on the 3x2 and 9x6 sets the labels'
  ``y*`` stay within ``+-R``; it is not a proof). A fixed radius can be set with
  the class attribute ``box_radius``.
* **Penalty weight kappa.** Following the paper (mean coupling violation of about
  1e-2), PSO is run on up to ``n_tune`` instances of the ``train`` split, or else
  of the ``valid`` split, for each ``kappa`` in ``kappa_grid`` in increasing order;
  the first whose mean violation is at most ``target_violation`` is kept (the
  largest of the grid when none is). The class attribute ``kappa`` fixes it
  instead. The result is in ``self.kappa`` and the trials in ``self.tuning``.
  The ``valid`` split is read from the file behind ``train_set`` (the evaluator
  gives the solver a copy of the data set with the evaluated split's labels
  withheld); without any usable split the largest ``kappa`` of the grid is used.

Randomness: pyswarms draws from numpy's global generator. Each swarm is seeded
from a hash of ``seed`` and the instance's parameters, and numpy's global state
is restored afterwards, so an instance gets the same answer alone, in a batch, in
any order and in any process.

pyswarms 1.3.0 calls :func:`logging.config.dictConfig` whenever one of its
objects is created (also at import): that replaces the root logger's handlers and
creates ``report.log`` in the working directory. This module imports and
constructs pyswarms objects with ``dictConfig`` disabled, runs the optimiser with
``verbose=False`` (no progress bar) and sets the ``pyswarms`` logger to WARNING.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import logging
import logging.config
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

import numpy as np
import torch

from bilevelbench.data.instance_set import InstanceSet
from bilevelbench.errors import BilevelBenchError, SolverError, UsageError
from bilevelbench.families.bqp.follower_layer import FollowerLayer
from bilevelbench.families.bqp.problem import BQPStructure, coupling_residual, follower_response, upper_objective
from bilevelbench.families.bqp.search_box import readable_splits, search_box
from bilevelbench.solvers import Prediction, TaskSpec
from bilevelbench.solvers import Solver as SolverBase

logger = logging.getLogger(__name__)

__version_tag__ = "1.0"

#: Cost of a particle whose follower response could not be computed.
NO_RESPONSE_COST = 1e300


@contextlib.contextmanager
def _no_logging_dictconfig() -> Iterator[None]:
    """Make :func:`logging.config.dictConfig` a no-op while pyswarms objects are created."""
    original = logging.config.dictConfig
    logging.config.dictConfig = lambda config: None
    try:
        yield
    finally:
        logging.config.dictConfig = original


@contextlib.contextmanager
def _numpy_global_seed(seed: int) -> Iterator[None]:
    """Seed numpy's global generator (pyswarms' source of randomness), restoring its state on exit."""
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


def _global_best_pso() -> type:
    """pyswarms' ``GlobalBestPSO`` class, imported without its logging side effects."""
    with _no_logging_dictconfig():
        from pyswarms.single import GlobalBestPSO
    logging.getLogger("pyswarms").setLevel(logging.WARNING)
    return GlobalBestPSO


def instance_seed(base: int, c: np.ndarray, d: np.ndarray) -> int:
    """A 32-bit seed from ``base`` and the instance's parameters (SHA-256 of their float64 bytes).

    Parameters
    ----------
    base : int
        Seed of the solver (class attribute ``seed``).
    c, d : numpy.ndarray
        The instance's parameters.

    Returns
    -------
    int
        In ``[0, 2**32)``, as :func:`numpy.random.seed` accepts.
    """
    sha = hashlib.sha256(str(int(base)).encode())
    for value in (c, d):
        sha.update(np.ascontiguousarray(value, dtype="<f8").tobytes())
    return int.from_bytes(sha.digest()[:4], "little")


class Solver(SolverBase):
    """Global-best PSO on the penalised upper objective, the follower solved for the whole swarm at once.

    Class attributes set the method; subclass to change them (the tests run a
    16-particle, 20-iteration swarm with a fixed ``kappa``).

    Attributes
    ----------
    n_particles, iterations : int
        Swarm size and number of iterations (128 and 200, as in the paper).
    options : dict
        pyswarms' ``c1``, ``c2``, ``w``.
    boundary_strategy : str
        pyswarms' handling of particles that leave the box (its default, ``"periodic"``).
    kappa : float or None
        Fixed penalty weight; None tunes it in ``setup``.
    kappa_grid : tuple of float
        Candidates tried in increasing order.
    target_violation : float
        Largest acceptable mean coupling violation (L2) on the tuning instances.
    n_tune : int
        Number of tuning instances.
    box_margin : float
        Relative widening of the label box.
    box_radius : float or None
        Fixed box ``+-box_radius`` instead of the derived one.
    seed : int
        Mixed into every swarm's seed.
    """

    name = "pso"
    description = ("pyswarms GlobalBestPSO (c1=c2=0.5, w=0.9, 128 particles, 200 iterations) on upper objective "
                   "+ kappa * coupling violation, kappa tuned on train/valid; follower batched (FollowerLayer)")

    n_particles: int = 128
    iterations: int = 200
    options: ClassVar[dict[str, float]] = {"c1": 0.5, "c2": 0.5, "w": 0.9}
    boundary_strategy: str = "periodic"
    kappa: float | None = None
    kappa_grid: tuple[float, ...] = (1.0, 10.0, 100.0, 1000.0)
    target_violation: float = 1e-2
    n_tune: int = 8
    box_margin: float = 0.25
    box_radius: float | None = None
    seed: int = 0
    #: Control co-design families (``baselines/pso/ccd.py``): projected Newton iterations per follower solve
    #: inside the swarm, and the authors' restart rule (two-tank; 0 = off).
    inner_iters: int = 10
    restarts: int = 0

    def __init__(self) -> None:
        try:
            pyswarms_version = importlib.metadata.version("pyswarms")
        except importlib.metadata.PackageNotFoundError:
            pyswarms_version = "missing"
        self.version = f"{__version_tag__} (pyswarms {pyswarms_version})"
        self.structure: BQPStructure | None = None
        self.bounds: tuple[np.ndarray, np.ndarray] | None = None
        self.box_source: str = ""
        self.tuning: list[dict[str, float]] = []
        self.kappa_source: str = "fixed" if self.kappa is not None else ""
        #: pyswarms' best-cost history of every swarm of the last ``solve`` call (one list per row).
        self.last_histories: list[list[float]] = []
        self._layer: FollowerLayer | None = None
        self._pso_class: type | None = None

    # -- contract -----------------------------------------------------------------------
    def skip(self, spec: TaskSpec) -> tuple[bool, str | None]:
        """Decline families other than ``bqp`` and the control co-design ones."""
        if spec.family.startswith("ccd-"):
            return False, None
        if spec.family != "bqp":
            return True, f"the PSO baseline handles the bqp family only, not {spec.family!r}"
        return False, None

    def setup(self, spec: TaskSpec, train_set: InstanceSet | None) -> None:
        """Build the follower layer, derive the search box and choose ``kappa`` (never on ``spec.split``).

        Parameters
        ----------
        spec : TaskSpec
            The task; ``spec.split`` is never read.
        train_set : InstanceSet or None
            The ``train`` split; its file also gives access to the ``valid`` split.

        Raises
        ------
        UsageError
            If the swarm settings are invalid.
        """
        if self.n_particles < 1 or self.iterations < 1:
            raise UsageError(f"PSO needs at least one particle and one iteration, got {self.n_particles} "
                             f"particles and {self.iterations} iterations")
        self.structure = spec.structure
        self.family = spec.family
        if spec.family.startswith("ccd-"):
            self._pso_class = _global_best_pso()
            self.kappa, self.kappa_source = float(spec.structure.kappa), "the family's kappa"
            return
        self._layer = FollowerLayer(spec.structure)
        self._pso_class = _global_best_pso()
        splits = self._other_splits(spec, train_set)

        if self.box_radius is not None:
            self.bounds = (np.full(spec.y_dim, -float(self.box_radius)), np.full(spec.y_dim, float(self.box_radius)))
            self.box_source = f"fixed +-{self.box_radius:g}"
        else:
            self.bounds, self.box_source = search_box(spec.structure, splits, self.box_margin)
        logger.info("PSO search box from %s: lower %s, upper %s", self.box_source,
                    np.round(self.bounds[0], 3), np.round(self.bounds[1], 3))

        if self.kappa is not None:
            self.kappa, self.kappa_source = float(self.kappa), "fixed"
            return
        tune = next(((name, split) for name, split in splits if len(split) > 0), None)
        if tune is None:
            self.kappa, self.kappa_source = float(max(self.kappa_grid)), "largest of the grid (no split to tune on)"
            logger.warning("PSO: no train or valid instance to tune kappa on; using kappa = %g", self.kappa)
            return
        self.kappa, self.kappa_source = self._tune_kappa(tune[1].params, tune[0])

    def solve(self, params: Mapping[str, np.ndarray]) -> Prediction:
        """One swarm per row of ``params``; return the global-best ``y`` and its ``z(y)``.

        Parameters
        ----------
        params : mapping
            ``"c"`` (batch, m) and ``"d"`` (batch, n).

        Returns
        -------
        Prediction
            ``y`` (batch, m) and ``z`` (batch, n); rows whose follower could not be solved are NaN.
        """
        if self.structure is None or self.kappa is None:
            raise UsageError("call setup(spec, train_set) before solve")
        if self.family.startswith("ccd-"):
            return Prediction(y=self._solve_ccd(params))
        c, d = np.atleast_2d(params["c"]), np.atleast_2d(params["d"])
        ys, histories = [], []
        for k in range(c.shape[0]):
            y, history = self.run_swarm(c[k], d[k], float(self.kappa))
            ys.append(y)
            histories.append(history)
        self.last_histories = histories
        y = np.asarray(ys, dtype=float).reshape(c.shape[0], self.structure.m)
        return Prediction(y=y, z=self.follower(y))

    def _solve_ccd(self, params: Mapping[str, np.ndarray]) -> np.ndarray:
        from baselines.pso.ccd import run_swarms
        from bilevelbench.families.ccd.generate import evaluate

        params = {k: np.asarray(v) for k, v in params.items()}
        common = {"n_particles": self.n_particles, "iters": self.iterations, "options": self.options,
                  "seed": self.seed, "pso_class": self._pso_class, "inner_iters": self.inner_iters}
        design, _ = run_swarms(self.family, self.structure, params, **common)
        if self.restarts and self.family == "ccd-twotank":
            # the authors' rule: rerun while ||x_T - p|| > 0.05, at most `restarts` runs, keep the last
            for attempt in range(1, self.restarts):
                miss = evaluate(self.family, self.structure, design, params)["violation"]
                again = np.flatnonzero(miss > 0.05)
                if again.size == 0:
                    break
                sub = {k: v[again] for k, v in params.items()}
                design[again], _ = run_swarms(self.family, self.structure, sub, attempt=attempt, **common)
        return design

    # -- the method ---------------------------------------------------------------------
    def follower(self, y: np.ndarray) -> np.ndarray:
        """``z(y)`` for every row of ``y``: the batched IPM, then HiGHS for rows it did not solve (NaN if that fails).

        Parameters
        ----------
        y : numpy.ndarray
            Leader decisions (rows, m).

        Returns
        -------
        numpy.ndarray
            Follower responses (rows, n).
        """
        y = np.ascontiguousarray(y, dtype=np.float64)
        z = np.full((y.shape[0], self.structure.n), np.nan)
        try:
            with torch.no_grad():
                z = self._layer(torch.from_numpy(y)).numpy()
        except SolverError as exc:
            logger.debug("PSO: batched follower solve failed (%s); solving row by row", exc)
        unsolved = np.flatnonzero(~np.all(np.isfinite(z), axis=1))
        for i in unsolved:
            try:
                z[i] = follower_response(self.structure, y[i]).z
            except BilevelBenchError:
                continue
        if unsolved.size:
            logger.debug("PSO: %d of %d follower responses recomputed with HiGHS", unsolved.size, y.shape[0])
        return z

    def penalised_cost(self, y: np.ndarray, c: np.ndarray, d: np.ndarray, kappa: float) -> np.ndarray:
        """Upper objective at ``(y, z(y))`` plus ``kappa`` times the coupling violation, per row (inf if no ``z``).

        Parameters
        ----------
        y : numpy.ndarray
            Swarm positions (particles, m).
        c, d : numpy.ndarray
            The instance's parameters, (m,) and (n,).
        kappa : float
            Penalty weight.

        Returns
        -------
        numpy.ndarray
            Cost per particle; ``NO_RESPONSE_COST`` where the follower has no computed response.
        """
        objective, violation = self.objective_and_violation(y, c, d)
        cost = objective + kappa * violation
        # Finite, so that pyswarms always has a global best (with inf everywhere its first update fails).
        return np.where(np.isfinite(cost), cost, NO_RESPONSE_COST)

    def objective_and_violation(self, y: np.ndarray, c: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Upper objective and ``||ReLU(A y - b - E z(y))||_2`` per row of ``y``."""
        s = self.structure
        z = self.follower(y)
        objective = upper_objective(s, c, d, y, z)
        violation = np.linalg.norm(np.maximum(coupling_residual(s, y, z), 0.0), axis=1)
        return objective, violation

    def run_swarm(self, c: np.ndarray, d: np.ndarray, kappa: float) -> tuple[np.ndarray, list[float]]:
        """Run one seeded swarm on instance ``(c, d)``.

        Parameters
        ----------
        c, d : numpy.ndarray
            The instance's parameters.
        kappa : float
            Penalty weight.

        Returns
        -------
        y : numpy.ndarray
            The global-best position (m,).
        history : list of float
            pyswarms' best cost after each iteration (the first entry is the best of the initial swarm).
        """
        c = np.asarray(c, dtype=float).reshape(self.structure.m)
        d = np.asarray(d, dtype=float).reshape(self.structure.n)

        def cost(positions: np.ndarray) -> np.ndarray:
            return self.penalised_cost(positions, c, d, kappa)

        with _numpy_global_seed(instance_seed(self.seed, c, d)):
            with _no_logging_dictconfig():
                optimizer = self._pso_class(n_particles=self.n_particles, dimensions=self.structure.m,
                                            options=dict(self.options), bounds=self.bounds,
                                            bh_strategy=self.boundary_strategy)
            _, position = optimizer.optimize(cost, iters=self.iterations, verbose=False)
        return np.asarray(position, dtype=float), [float(v) for v in optimizer.cost_history]

    # -- setup helpers ------------------------------------------------------------------
    @staticmethod
    def _other_splits(spec: TaskSpec, train_set: InstanceSet | None) -> list[tuple[str, InstanceSet]]:
        """The ``train`` and ``valid`` splits available to setup, in that order, never ``spec.split``."""
        return readable_splits(spec.split, train_set)

    def _tune_kappa(self, params: Mapping[str, Any], split_name: str) -> tuple[float, str]:
        """Smallest ``kappa`` of the grid whose mean coupling violation on the tuning instances is small enough."""
        c = np.atleast_2d(np.asarray(params["c"], dtype=float))[: self.n_tune]
        d = np.atleast_2d(np.asarray(params["d"], dtype=float))[: self.n_tune]
        self.tuning = []
        for kappa in sorted(float(k) for k in self.kappa_grid):
            y = np.array([self.run_swarm(c[k], d[k], kappa)[0] for k in range(c.shape[0])])
            objective, violation = self.objective_and_violation(y, c, d)
            trial = {"kappa": kappa, "violation_mean": float(np.mean(violation)),
                     "violation_max": float(np.max(violation)), "objective_mean": float(np.mean(objective))}
            self.tuning.append(trial)
            logger.info("PSO kappa %g on %d %s instances: mean violation %.3g, mean objective %.4g",
                        kappa, c.shape[0], split_name, trial["violation_mean"], trial["objective_mean"])
            if trial["violation_mean"] <= self.target_violation:
                return kappa, f"tuned on {c.shape[0]} {split_name} instances"
        kappa = float(max(self.kappa_grid))
        logger.warning("PSO: no kappa in %s reaches mean violation <= %g on the %s split; using %g",
                       self.kappa_grid, self.target_violation, split_name, kappa)
        return kappa, f"largest of the grid (none reached the target on {split_name})"


class SolverWithRestarts(Solver):
    """The two-tank PSO with the authors' restart rule (up to 5 runs while ``||x_T - p|| > 0.05``)."""

    name = "pso-restarts"
    restarts = 5
