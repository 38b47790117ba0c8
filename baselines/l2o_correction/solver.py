"""L2O with coupling-constraint correction (Kotary et al., Algorithm 1) as a submission.

``setup`` loads the weight file in ``weights/`` whose recorded structure hash matches the data set
(``torch.load(..., weights_only=True)``); ``solve`` runs the network and ``test_steps`` correction steps,
batched, with the test-time step chosen on the valid split. Train new weights with ``python -m baselines.l2o_correction.train --dataset FILE --seed 0``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from baselines.weights import scan_weights
from bilevelbench.errors import MissingDataError
from bilevelbench.families.bqp.coupling import L2OCorrection, correct
from bilevelbench.solvers import Prediction
from bilevelbench.solvers import Solver as _Base

WEIGHTS = Path(__file__).resolve().parent / "weights"


def find_weights(structure_hash: str, folder: Path = WEIGHTS) -> Path:
    """The weight file trained on this structure, or a clear error listing what exists."""
    found, seen = scan_weights(folder, lambda meta: meta["structure_hash"] == structure_hash,
                               lambda path, meta: f"{path.name} ({meta['structure_hash'][:12]}...)")
    if found is not None:
        return found
    raise MissingDataError(f"no L2O weights for structure {structure_hash[:12]}... in {folder}; available: "
                           f"{', '.join(seen) or 'none'}; train with python -m baselines.l2o_correction.train "
                           "--dataset FILE")


class Solver(_Base):
    name = "l2o-correction"
    version = "1"
    description = "MLP + coupling-constraint correction through a differentiable follower (Kotary et al., Alg. 1)"
    #: Folder searched for weight files (a subclass may point elsewhere).
    weights_dir = WEIGHTS
    #: A weight file in ``weights_dir`` (``{family}`` is replaced by the task's) to use instead of the first whose
    #: structure hash matches (the ccd families default to ``{family}.pt``, the paper's settings).
    weights_file: str | None = None
    #: ccd families: test-time correction steps (None: the weight file's, 10 as in the paper).
    test_steps: int | None = None
    #: ccd families: use the best correction of the weight file's valid sweep with at most this many steps.
    max_test_steps: int | None = None

    def skip(self, spec):
        if spec.family.startswith("ccd-"):
            return False, None
        return (spec.family != "bqp", f"trained for bqp and the ccd families only, not {spec.family!r}")

    def setup(self, spec, train_set) -> None:
        name = self.weights_file or ("{family}.pt" if spec.family.startswith("ccd-") else None)
        if name is not None:
            path = Path(self.weights_dir) / name.format(family=spec.family)
            if not path.is_file():
                raise MissingDataError(f"weight file {str(path)!r} does not exist")
        else:
            path = find_weights(spec.structure.digest(), Path(self.weights_dir))
        blob = torch.load(path, weights_only=True, map_location="cpu")
        meta = blob["meta"]
        self.family = spec.family
        if spec.family.startswith("ccd-"):
            self._setup_ccd(spec, path, blob)
            return
        self.model = L2OCorrection(spec.structure, list(meta["hidden"]), float(meta["gamma"]),
                                   str(meta.get("follower_gradient", "implicit")))
        self.model.mlp.load_state_dict(blob["state_dict"])
        self.model.eval()
        self.steps = int(meta["test_steps"])
        #: Test-time correction step, chosen on the valid split by the training command (older files: the
        #: training step).
        self.gamma = float(meta.get("test_gamma", meta["gamma"]))
        self.version = f"1 ({path.name}, seed {meta['seed']})"

    def _setup_ccd(self, spec, path: Path, blob: dict) -> None:
        from baselines.l2o_correction.ccd import CCDProblem, load_network

        meta = blob["meta"]
        s = spec.structure
        self.net = load_network(blob, spec.family, s)
        choice = {"cold_starts": meta.get("test_cold_starts", meta.get("cold_starts", "authors")),
                  "correction": meta.get("test_correction", "violation"), "steps": int(meta["test_steps"]),
                  "gamma": float(meta.get("test_gamma", meta["gamma"]))}
        if self.max_test_steps is not None:
            from baselines.l2o_correction.ccd import choose_correction

            try:
                choice = choose_correction(meta.get("correction_sweep", []), self.max_test_steps)
            except ValueError:
                raise MissingDataError(f"{path.name} has no tuned correction with at most {self.max_test_steps} "
                                       "steps; run python -m baselines.l2o_correction.ccd --tune on it") from None
        self.problem = CCDProblem(spec.family, s, str(choice.get("cold_starts", "authors")))
        self.steps, self.gamma = int(choice["steps"]), float(choice["gamma"])
        #: "violation" (the paper's correction), "objective" (descends the score) or "search" (the best-known
        #: search's local phase from the network's design, ``ccd.search_path``); chosen on valid by ``--tune``
        self.objective_weight = float(s.kappa) if choice["correction"] in ("objective", "search") else None
        self.search = choice["correction"] == "search"
        if self.test_steps is not None:
            self.steps = int(self.test_steps)
        kind = {"objective": " of the objective", "search": " of the search"}.get(choice["correction"], "")
        self.version = f"1 ({path.name}, seed {meta['seed']}, {self.steps} corrections{kind})"

    def _solve_ccd(self, params) -> Prediction:
        from baselines.l2o_correction.ccd import correct, features, search_path

        rows = {k: np.asarray(v) for k, v in params.items()}
        with torch.no_grad():
            y0 = self.net(features(self.family, rows))
        if self.search:
            for _, y, _ in search_path(self.problem, y0, self.problem.tensors(rows), self.steps, self.gamma,
                                       self.objective_weight):
                pass
        else:
            y, _ = correct(self.problem, y0, self.problem.tensors(rows), self.steps, self.gamma,
                           objective_weight=self.objective_weight)
        return Prediction(y=y.detach().numpy())

    def solve(self, params) -> Prediction:
        if self.family.startswith("ccd-"):
            return self._solve_ccd(params)
        c = torch.from_numpy(np.asarray(params["c"], dtype=np.float64))
        d = torch.from_numpy(np.asarray(params["d"], dtype=np.float64))
        with torch.no_grad():
            y0 = self.model.mlp(torch.cat([c, d], 1))
        with torch.enable_grad():
            y = correct(self.model.problem, y0, self.steps, self.gamma, create_graph=False)
        return Prediction(y=y.detach().numpy())


class NetworkOnly(Solver):
    """The ccd networks without test-time correction (the latency floor of the method)."""

    name = "l2o-network-only"
    test_steps = 0


class KappaMatched(Solver):
    """The ccd networks trained with the scoring weight as the training penalty (lambda = kappa: 100 two-tank,
    5 HVAC) instead of the paper's (10, 100)."""

    name = "l2o-correction-kappa"
    weights_file = "{family}-kappa.pt"


class Converged(Solver):
    """The ccd networks trained to convergence: the family's scoring weight as the penalty (lambda = kappa),
    warm-started followers, early stopping on the valid objective, and the test-time correction count chosen on
    the valid split (``weights/{family}-converged.json`` records the command, curve and sweep)."""

    name = "l2o-correction-converged"
    weights_file = "{family}-converged.pt"


class ConvergedFast(Converged):
    """The converged networks with the best correction of the valid sweep that takes at most 3 steps (a latency
    budget of about 10 ms per design batched)."""

    name = "l2o-correction-converged-fast"
    max_test_steps = 3


class ConvergedNetworkOnly(Converged):
    """The converged networks without test-time correction (their latency floor)."""

    name = "l2o-network-only-converged"
    test_steps = 0
