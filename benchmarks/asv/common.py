"""Small fixed data sets the benchmarks build once (in ``setup_cache``) from fixed seeds."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:          # the baselines import their shared code as the package ``baselines``
    sys.path.insert(0, str(ROOT))


def tmpdir() -> Path:
    return Path(tempfile.mkdtemp(prefix="bb-asv-"))


def cache_dir() -> Path:
    """A folder shared by every benchmark class of one source tree: the fixed sets are generated once.

    Keyed by a hash of the package's sources, so a commit that changes generation or certification never
    reuses another commit's files.
    """
    import hashlib

    import bilevelbench

    h = hashlib.sha256()
    for path in sorted(Path(bilevelbench.__file__).parent.rglob("*.py")):
        h.update(path.read_bytes())
    folder = Path(tempfile.gettempdir()) / "bilevelbench-asv" / h.hexdigest()[:16]
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def cached(name: str, make) -> Path:
    """``cache_dir()/name``, made by ``make(folder)`` unless it is already there."""
    folder = cache_dir()
    path = folder / name
    if not path.exists():
        made = make(Path(tempfile.mkdtemp(dir=folder)))
        made.replace(path)
    return path


def bqp_set(folder: Path, n_test: int = 24, seed: int = 1, size: str = "3x2", n_train: int = 0,
            n_valid: int = 0) -> Path:
    """A bqp set with the released spec's seed (so the committed baselines' weights match its structure)."""
    from bilevelbench.families.bqp.certifier import CertifierSettings
    from bilevelbench.families.bqp.generate import BQPRequest, generate_bqp
    from bilevelbench.families.bqp.problem import parse_size

    m, n = parse_size(size)
    request = BQPRequest(m=m, n=n, n_train=n_train, n_valid=n_valid, n_test=n_test, seed=seed)
    return generate_bqp(request, folder / f"bqp-{size}.h5", CertifierSettings(backend="scip", time_limit=60))


def tank_set(folder: Path, n_test: int = 12) -> Path:
    from bilevelbench.families.mimpc.certify import MIQPCertifierSettings
    from bilevelbench.families.mimpc.generate import MIQPRequest, generate_miqp

    request = MIQPRequest(family="mimpc-tank", n_train=0, n_valid=0, n_test=n_test, seed=11)
    # auto: Gurobi when installed (its free license takes the tank), else SCIP; the labels agree to 1e-6
    return generate_miqp(request, folder / "mimpc-tank.h5", MIQPCertifierSettings(backend="auto", time_limit=60))


def dcopf_set(folder: Path, case: str = "case57", n_test: int = 100) -> Path:
    from bilevelbench.families.dcopf.generate import DCOPFRequest, generate_dcopf

    return generate_dcopf(DCOPFRequest(case=case, n_test=n_test, seed=11), folder / f"dcopf-{case}.h5")


def score_baseline(path: Path, solver_spec: str, batch: int = 64) -> dict:
    """Run a committed baseline in-process on the test split and return the record's metrics."""
    from bilevelbench.data.instance_set import InstanceSet
    from bilevelbench.evaluate.evaluator import score_split
    from bilevelbench.evaluate.records import build_record
    from bilevelbench.solvers import TaskSpec, coerce_prediction, load_solver

    ds = InstanceSet.open(path)
    test = ds.split("test")
    y_dim, z_dim = ds.decision_dims
    solver = load_solver(solver_spec)
    spec = TaskSpec(family=ds.family, dataset=path.stem, split="test", n_instances=len(test), structure=ds.structure,
                    param_names=tuple(test.params), y_dim=y_dim, z_dim=z_dim,
                    paper_convention=ds.meta.get("paper_convention"))
    solver.setup(spec, train_split(ds))
    params = test.params
    n = len(test)
    ys = []
    for lo in range(0, n, batch):
        y, _ = coerce_prediction(solver.solve({k: v[lo:lo + batch] for k, v in params.items()}),
                                 min(batch, n - lo), y_dim, z_dim)
        ys.append(y)
    y = np.concatenate(ys)
    score = score_split(ds, params, test.labels, y, np.ones(n, bool), {})
    return build_record(mode="score", dataset={}, solver={}, score=score, protocol={}, provenance={})["metrics"]


def loaded_solver(path: Path, solver_spec: str):
    """``(solver, params)``: a committed baseline set up on the test split, and that split's parameters."""
    from bilevelbench.data.instance_set import InstanceSet
    from bilevelbench.solvers import TaskSpec, load_solver

    ds = InstanceSet.open(path)
    test = ds.split("test")
    y_dim, z_dim = ds.decision_dims
    solver = load_solver(solver_spec)
    solver.setup(TaskSpec(family=ds.family, dataset=path.stem, split="test", n_instances=len(test),
                          structure=ds.structure, param_names=tuple(test.params), y_dim=y_dim, z_dim=z_dim,
                          paper_convention=ds.meta.get("paper_convention")), train_split(ds))
    return solver, test.params


def train_split(ds):
    """What the evaluator gives ``setup``: the train split (labelled here), or None when it is empty."""
    train = ds.split("train") if "train" in ds.split_names else None
    return train if train is not None and len(train) else None


def fixed_sets() -> dict[str, str]:
    """The shared small sets: bqp-3x2 (40 train, 10 valid, 24 test; labelled), mimpc-tank (12 test), dcopf case57 (100) and case118 (200)."""
    return {"bqp": str(cached("bqp-3x2.h5", lambda f: bqp_set(f, n_test=24, n_train=40, n_valid=10))),
            "tank": str(cached("mimpc-tank.h5", lambda f: tank_set(f))),
            "dcopf": str(cached("dcopf-case57.h5", lambda f: dcopf_set(f, "case57", n_test=100))),
            "dcopf118": str(cached("dcopf-case118.h5", lambda f: dcopf_set(f, "case118", n_test=200)))}
