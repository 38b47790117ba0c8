"""Sample -> search -> check -> write for the control co-design families ``ccd-twotank`` and ``ccd-hvac``.

Splits. Split ``k`` (train, valid, test = 0, 1, 2) draws its parameters from ``SeedSequence(seed, spawn_key=(3,
k))`` in one block, so the same seed and counts give the same instances whatever the number of workers. The
splits listed in ``label_splits`` (default: ``test``) get best-known labels (:mod:`bilevelbench.certify.best_known`);
the others are stored ``unlabeled`` (the reference methods are self-supervised: they need parameters only).

Checks (stored under ``/labels/checks``, re-run by ``bilevelbench verify``): ``recompute_abs`` is the difference
between the stored objective and the one re-evaluated by the family's follower for that instance alone
(batch of one: the response may not depend on the batch), ``design_violation`` the distance outside the design
box, and ``follower_stationarity`` the projected-gradient residual of the follower at the label (reported; the
two-tank follower's response is defined algorithmically, see :mod:`bilevelbench.families.ccd_twotank`). A label
whose re-evaluation differs by more than ``1e-9 (1 + |f|)``, whose design leaves the box, or whose values are
not finite is stored ``failed`` with the reason, without a design. No label is ever ``certified_optimal``.

Resuming: shards of :data:`CHUNK` instances in ``OUT.partial/`` (:class:`~bilevelbench.data.shards.ShardStore`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

import bilevelbench
from bilevelbench.core.family import SplitRequest
from bilevelbench.core.pipeline import (
    generate_sharded,
    label_arrays,
    merge_shards,
    root_attrs,
    split_params,
    split_positions,
)
from bilevelbench.data.hdf5 import (
    SPLITS,
    InstanceSetData,
    check_output_path,
)
from bilevelbench.data.shards import request_key, shard_name
from bilevelbench.errors import UsageError
from bilevelbench.families.ccd import hvac as ccd_hvac
from bilevelbench.families.ccd import twotank as ccd_twotank
from bilevelbench.families.ccd.best_known import SearchSettings, search

log = logging.getLogger(__name__)

#: Per family: the two-tank's is 2 since its search uses the exact Hessian in the implicit gradient.
GENERATOR_VERSIONS = {"ccd-twotank": 2, "ccd-hvac": 1}
FAMILIES = (ccd_twotank.FAMILY, ccd_hvac.FAMILY)
CHUNK = 25
#: Re-evaluation tolerance of a label's objective: ``RECOMPUTE_TOL * (1 + |f|)``.
RECOMPUTE_TOL = 1e-9
CHECK_FIELDS = ("recompute_abs", "design_violation", "follower_stationarity")
ProgressFactory = Callable[[int], "object"]


@dataclass(frozen=True)
class CCDRequest(SplitRequest):
    """What to generate: a family, split sizes, the seed and which splits get labels."""

    family: str
    n_train: int = 0
    n_valid: int = 0
    n_test: int = 100
    seed: int = 0
    label_splits: tuple[str, ...] = ("test",)

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise UsageError(f"family {self.family!r} is not a control co-design family; expected one of "
                             f"{', '.join(FAMILIES)}")
        self.check_counts()
        bad = [s for s in self.label_splits if s not in SPLITS]
        if bad:
            raise UsageError(f"label_splits {bad} unknown; expected names among {', '.join(SPLITS)}")


def structure_for(family: str):
    """The family's structure (defaults of the family)."""
    return ccd_twotank.TwoTankStructure() if family == ccd_twotank.FAMILY else ccd_hvac.HVACStructure.default()


def structure_from_arrays(family: str, arrays: dict[str, np.ndarray]):
    """Rebuild a stored structure."""
    if family == ccd_twotank.FAMILY:
        return ccd_twotank.TwoTankStructure.from_arrays(arrays)
    return ccd_hvac.HVACStructure.from_arrays(arrays)


def draws_for(request: CCDRequest, s, split_k: int) -> dict[str, np.ndarray]:
    """The parameters of split ``k``: one block of the split's size from its own stream."""
    rng = np.random.default_rng(np.random.SeedSequence(request.seed, spawn_key=(3, split_k)))
    n = request.split_counts()[SPLITS[split_k]]
    if request.family == ccd_twotank.FAMILY:
        return {"p": ccd_twotank.sample_targets(rng, n)}
    return ccd_hvac.sample_instances(s, rng, n)


def evaluate(family: str, s, design: np.ndarray, params: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The family's ``evaluate_designs`` (cost, violation, penalised objective, follower data)."""
    if family == ccd_twotank.FAMILY:
        return ccd_twotank.evaluate_designs(s, design, params["p"])
    return ccd_hvac.evaluate_designs(s, design, params)


def design_violation(family: str, s, design: np.ndarray) -> np.ndarray:
    mod = ccd_twotank if family == ccd_twotank.FAMILY else ccd_hvac
    return mod.design_violation(s, design)


def label_chunk(family: str, s, params: dict[str, np.ndarray], settings: SearchSettings) -> dict[str, np.ndarray]:
    """Best-known labels and their checks for one chunk of instances (arrays)."""
    found = search(family, s, params, settings)
    n = found["design"].shape[0]
    recompute = np.full(n, np.nan)
    for i in range(n):      # one at a time: the stored value must not depend on the batch it was computed in
        one = {k: v[i:i + 1] for k, v in params.items()}
        recompute[i] = abs(evaluate(family, s, found["design"][i:i + 1], one)["objective"][0] - found["objective"][i])
    box = design_violation(family, s, found["design"])
    status, reason = [], []
    for i in range(n):
        f = found["objective"][i]
        if not (np.isfinite(f) and np.all(np.isfinite(found["design"][i]))):
            status.append("failed"), reason.append("the search produced a non-finite design or objective")
        elif recompute[i] > RECOMPUTE_TOL * (1 + abs(f)):
            status.append("failed"), reason.append(f"re-evaluating the design alone gives an objective differing "
                                                   f"by {recompute[i]:.2e}")
        elif box[i] > 0:
            status.append("failed"), reason.append(f"design outside the box by {box[i]:.2e}")
        else:
            status.append("best_known")
            reason.append(f"best of {int(found['n_evaluated'][i])} designs (grid/multistart + projected gradient); "
                          "not a certificate")
    failed = np.array([st == "failed" for st in status])
    out = {key: np.array(found[key], dtype=float) for key in ("design", "objective", "cost", "violation",
                                                              "start_objectives", "spread", "solve_time")}
    for key in ("design", "objective", "cost", "violation"):
        out[key][failed] = np.nan
    out["n_evaluated"] = found["n_evaluated"]
    out["check_recompute_abs"] = recompute
    out["check_design_violation"] = box
    out["check_follower_stationarity"] = found["follower_stationarity"]
    out["status"] = np.array(status, dtype="U20")
    out["reason"] = np.array(reason, dtype="U200")
    return out


_STATE: dict = {}


def _init_worker(family: str, settings: SearchSettings) -> None:
    import torch

    torch.set_num_threads(1)
    _STATE.update(family=family, s=structure_for(family), settings=settings)


def _chunk_task(task):
    split, chunk, params = task
    return shard_name(split, chunk), label_chunk(_STATE["family"], _STATE["s"], params, _STATE["settings"])


def _request_key(request: CCDRequest, structure_hash: str, settings: SearchSettings) -> str:
    return request_key(asdict(request), structure_hash, settings.as_dict(), GENERATOR_VERSIONS[request.family],
                       CHUNK)


def generate_ccd(request: CCDRequest, out: Path | str, settings: SearchSettings | None = None, workers: int = 1,
                 overwrite: bool = False, progress: ProgressFactory | None = None, name: str | None = None,
                 spec: dict | None = None, scheduler: str | None = None) -> Path:
    """Generate, label (best-known) and write a control co-design instance set; returns the path (resumable:
    :func:`bilevelbench.core.pipeline.generate_sharded`)."""
    check_output_path(Path(out), overwrite)
    settings = settings or SearchSettings()
    s = structure_for(request.family)
    draws = {split: draws_for(request, s, k) for k, split in enumerate(SPLITS)}

    def assemble(parts: dict[str, list[dict[str, np.ndarray]]]) -> InstanceSetData:
        return _assemble(request, s, settings, draws, parts, name, spec)

    return generate_sharded(out, _request_key(request, s.digest(), settings), draws, tuple(request.label_splits),
                            CHUNK, _chunk_task, assemble=assemble, initializer=_init_worker,
                            initargs=(request.family, settings), workers=workers, scheduler=scheduler,
                            progress=progress, overwrite=overwrite)


def _unlabeled(n: int, k: int, r: int) -> dict[str, np.ndarray]:
    nan = np.full(n, np.nan)
    return {"design": np.full((n, k), np.nan), "objective": nan, "cost": nan.copy(), "violation": nan.copy(),
            "start_objectives": np.full((n, r), np.nan), "spread": nan.copy(), "solve_time": nan.copy(),
            "n_evaluated": np.zeros(n, np.int64), "check_recompute_abs": nan.copy(),
            "check_design_violation": nan.copy(), "check_follower_stationarity": nan.copy(),
            "status": np.array(["unlabeled"] * n, dtype="U20"),
            "reason": np.array(["split not labelled (label_splits)"] * n, dtype="U200")}


def _assemble(request: CCDRequest, s, settings: SearchSettings, draws, labelled: dict[str, list], name, spec
              ) -> InstanceSetData:
    sizes = request.split_counts()
    r = settings.refine_starts if request.family == ccd_twotank.FAMILY else settings.hvac_refine_starts
    parts = []
    for split in SPLITS:
        n = sizes[split]
        if split in request.label_splits:
            parts += labelled[split]
        elif n:
            parts.append(_unlabeled(n, s.design_dim, r))
    merged = merge_shards(parts)
    labels = label_arrays(merged, ("design", "objective", "cost", "violation", "start_objectives", "spread",
                                   "solve_time", "n_evaluated"), "search")
    checks = {key: merged[f"check_{key}"] for key in CHECK_FIELDS}
    params = split_params(draws)
    sampler = ("p2 ~ U(0.2, 1), p1 = p2 U(0.5, 1)" if request.family == ccd_twotank.FAMILY else
               "ymin: psl beta walk in [18, 22] per zone (max step 3, p 0.1), ymax = ymin + 2; walls 20 C, zone "
               "at the band midpoint; d: window of SimpleSingleZone.mat's series at a uniform start")
    attrs = root_attrs(
        request.family, GENERATOR_VERSIONS[request.family], request.seed, s, name=name, spec=spec,
        certifier_settings={**settings.as_dict(), "recompute_tol": RECOMPUTE_TOL, "time_limit": None,
                            "label_status": "best_known (never certified_optimal)"},
        backend_versions={"search": f"bilevelbench {bilevelbench.__version__} best-known search"},
        sampling={**asdict(request), "label_splits": list(request.label_splits), "sampler": sampler},
        ccd={"family": request.family, "design_dim": int(s.design_dim)})
    return InstanceSetData(attrs=attrs, structure=s.arrays(), params=params, labels=labels, checks=checks,
                           splits=split_positions(sizes))
