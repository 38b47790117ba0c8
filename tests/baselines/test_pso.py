"""The PSO baseline (``baselines/pso``): through the evaluator, and its parts in process, with a small swarm."""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

import numpy as np
import pytest

from bilevelbench.data.instance_set import InstanceSet
from bilevelbench.evaluate.evaluator import Protocol, evaluate_solver
from bilevelbench.evaluate.sandbox import Limits
from bilevelbench.families.bqp.problem import follower_response, upper_objective
from bilevelbench.solvers import TaskSpec, resolve_solver_class

# Not importorskip("pyswarms"): importing pyswarms outside the solver reconfigures the root logger and writes
# report.log into the working directory (the solver imports it with that side effect disabled).
pytestmark = pytest.mark.skipif(importlib.util.find_spec("torch") is None or importlib.util.find_spec("pyswarms") is None,
                                reason="the PSO baseline needs torch and pyswarms")

PSO = Path(__file__).resolve().parents[2] / "baselines" / "pso"

SMALL_SWARM = f"""
from bilevelbench.solvers import resolve_solver_class

Base = resolve_solver_class({str(PSO)!r})


class Solver(Base):
    n_particles = 16
    iterations = 20
    kappa = 10.0
"""


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Solve in one thread, as the evaluator does (many small batched solves are slow with contended threads)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _small(**attrs) -> type:
    """The PSO class with a small swarm (and any other attributes overridden)."""
    base = resolve_solver_class(str(PSO))
    return type("SmallPSO", (base,), {"n_particles": 16, "iterations": 20, "kappa": 10.0, **attrs})


def _spec(ds: InstanceSet, split: str = "test") -> TaskSpec:
    s = ds.structure
    return TaskSpec(family="bqp", dataset="small", split=split, n_instances=len(ds.split(split)), structure=s,
                    param_names=("c", "d"), y_dim=s.m, z_dim=s.n)


def _ready(small_set: Path, **attrs):
    ds = InstanceSet.open(small_set)
    solver = _small(**attrs)()
    solver.setup(_spec(ds), ds.split("train"))
    return ds, solver


def test_pso_through_the_evaluator_beats_a_trivial_answer(small_set, tmp_path, monkeypatch):
    folder = tmp_path / "pso-small"
    folder.mkdir()
    (folder / "solver.py").write_text(SMALL_SWARM)
    monkeypatch.chdir(tmp_path)
    record = evaluate_solver(small_set, str(folder), protocol=Protocol(warmup=0, batch_size=0, exact_instances=0,
                                                                       limit=3),
                             limits=Limits(setup_timeout=120.0, solve_timeout=60.0, memory_mb=8192))
    assert record["status"] == "complete", record["failures"]
    assert record["failures"] == []
    assert record["solver"]["name"] == "pso" and "pyswarms" in record["solver"]["version"]
    metrics, per = record["metrics"], record["per_instance"]
    assert metrics["n_scored"] == 3
    gaps = np.array(per["gap"], dtype=float)
    assert gaps.shape == (3,) and np.all(np.isfinite(gaps))
    assert np.all(np.isfinite(np.array(per["latency_ms"], dtype=float)))
    assert np.isfinite(metrics["coupling_violation_mean"])
    assert not (tmp_path / "report.log").exists()  # pyswarms' logging side effect is suppressed

    # A trivial answer: the mean of the train labels (the centre of what PSO may search).
    ds = InstanceSet.open(small_set)
    s, test = ds.structure, ds.split("test")
    y0 = ds.split("train").labels["y"].mean(axis=0)
    z0 = follower_response(s, y0).z
    reference = np.array(per["reference_objective"], dtype=float)
    trivial = np.abs(upper_objective(s, test.params["c"][:3], test.params["d"][:3], np.tile(y0, (3, 1)),
                                     np.tile(z0, (3, 1))) - reference) / np.maximum(np.abs(reference), 1e-6)
    assert gaps.mean() < trivial.mean()


def test_swarm_improves_on_its_initial_best_and_is_reproducible(small_set, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    handlers = list(logging.getLogger().handlers)
    ds, solver = _ready(small_set)
    params = {key: value[:4] for key, value in ds.split("test").params.items()}
    state = np.random.get_state()
    batched = solver.solve(params)
    assert np.array_equal(np.random.get_state()[1], state[1])  # numpy's global generator is left as it was
    histories = [np.array(h) for h in solver.last_histories]
    assert len(histories) == 4 and all(len(h) == 20 for h in histories)
    assert all(np.all(np.diff(h) <= 0) for h in histories)        # the global best never gets worse
    assert all(h[-1] < h[0] for h in histories)                    # ...and improves on the initial swarm's best
    again = [solver.solve({key: value[k:k + 1] for key, value in params.items()}).y[0] for k in range(4)]
    assert np.array_equal(np.array(again), batched.y)               # same answer alone or in a batch
    lo, hi = solver.bounds
    assert np.all(batched.y >= lo) and np.all(batched.y <= hi)
    assert np.allclose(batched.z, [follower_response(ds.structure, y).z for y in batched.y], atol=1e-7)
    assert logging.getLogger().handlers == handlers and not (tmp_path / "report.log").exists()


def test_kappa_is_tuned_on_train_or_valid_only(small_set):
    ds, solver = _ready(small_set, kappa=None, n_particles=8, iterations=10, n_tune=2)
    assert solver.kappa in solver.kappa_grid
    assert "train" in solver.kappa_source
    trials = solver.tuning
    assert [t["kappa"] for t in trials] == sorted(solver.kappa_grid)[:len(trials)]
    assert trials[-1]["violation_mean"] <= solver.target_violation or solver.kappa == max(solver.kappa_grid)
    assert all(t["violation_mean"] > solver.target_violation for t in trials[:-1])
    assert solver.box_source == "labels of the train split"
    names = [name for name, _ in type(solver)._other_splits(_spec(ds, "valid"), ds.split("train"))]
    assert names == ["train"]                                      # never the evaluated split
    names = [name for name, _ in type(solver)._other_splits(_spec(ds, "test"), ds.split("train"))]
    assert names == ["train", "valid"]


def test_unsolved_follower_rows_fall_back_to_highs_and_never_crash_the_swarm(small_set):
    import torch

    ds, solver = _ready(small_set, iterations=3)
    params = {key: value[:1] for key, value in ds.split("test").params.items()}
    y = np.tile(ds.split("train").labels["y"][0], (5, 1))
    expected = solver.follower(y)
    solver._layer = lambda rows: torch.full((rows.shape[0], ds.structure.n), float("nan"), dtype=torch.float64)
    assert np.allclose(solver.follower(y), expected, atol=1e-7)       # rows the IPM left NaN are solved by HiGHS

    type(solver).follower = lambda self, rows: np.full((rows.shape[0], ds.structure.n), np.nan)
    out = solver.solve(params)                                         # every particle without a response
    assert out.y.shape == (1, ds.structure.m) and np.all(np.isfinite(out.y))
