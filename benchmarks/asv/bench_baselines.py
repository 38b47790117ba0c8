"""Committed baselines: inference latency (batch 1 and batched) and solution quality on small fixed sets.

Quality (``track_*``) is measured on sets generated from the released specs' seeds (so the weights match the
structure) but with their own small test draws; the values track regressions, they are not the leaderboard.
"""

from __future__ import annotations

from . import common

BASELINES = {
    "l2o_correction": ("bqp", "baselines/l2o_correction"),
    "bigrad": ("bqp", "baselines/bigrad"),
    "miqp_sl": ("tank", "baselines/miqp_sl"),
    "miqp_hybrid": ("tank", "baselines/miqp_hybrid"),
    "dcopf_proxy": ("dcopf", "baselines/dcopf_proxy"),
}


def _sets():
    return common.fixed_sets()


class Latency:
    """``solve`` wall time at batch size 1 and on a batch of 12 (timed by asv, setup untimed)."""

    params = list(BASELINES)
    param_names = ["baseline"]
    timeout = 600

    def setup_cache(self):
        return _sets()

    def setup(self, paths, baseline):
        from pathlib import Path

        family, spec = BASELINES[baseline]
        self.solver, params = common.loaded_solver(Path(paths[family]), str(common.ROOT / spec))
        self.one = {k: v[:1] for k, v in params.items()}
        self.batch = {k: v[:12] for k, v in params.items()}

    def time_solve_batch_1(self, paths, baseline):
        self.solver.solve(self.one)

    def time_solve_batch_12(self, paths, baseline):
        self.solver.solve(self.batch)


class Quality:
    """Mean gap, violation and feasibility rate of each committed baseline on the fixed sets."""

    params = list(BASELINES)
    param_names = ["baseline"]
    timeout = 600

    def setup_cache(self):
        from pathlib import Path

        paths = _sets()
        out = {}
        for name, (family, spec) in BASELINES.items():
            m = common.score_baseline(Path(paths[family]), str(common.ROOT / spec))
            violation = (m.get("coupling_violation_mean") if family == "bqp" else
                         (m.get("integer_violation_rate") or 0.0) + (m.get("continuous_violation_rate") or 0.0)
                         if family == "tank" else m.get("thermal_violation_mw_mean"))
            out[name] = {"gap": m["gap_mean"], "feasible": m["feasible_rate"], "violation": violation}
        return out

    def track_gap_mean(self, results, baseline):
        return results[baseline]["gap"]

    track_gap_mean.unit = "relative gap"

    def track_feasible_rate(self, results, baseline):
        return results[baseline]["feasible"]

    track_feasible_rate.unit = "fraction"

    def track_violation(self, results, baseline):
        """bqp: mean coupling violation; mimpc: integer + continuous violation rates; dcopf: overload MW."""
        value = results[baseline]["violation"]
        return float("nan") if value is None else float(value)

    track_violation.unit = "family-specific"
