"""Print the tables of docs/bigrad-combinatorial.md: the committed records of the interdiction families (BiGrad's
Tables 3 and 4 settings) and of adversarial control (Table 1), one row per method and size.

Every number comes from a record under ``leaderboards/results/`` or a weight file's ``.json`` (training time per
sample); ``tests/test_bigrad_tables.py`` checks that the doc holds this output::

    python leaderboards/bigrad_tables.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TABLES = {"spi-grid": ("spi-grid-12", "spi-grid-18", "spi-grid-24"),
          "tsp-interdiction": ("tsp-interdiction-8", "tsp-interdiction-10", "tsp-interdiction-12")}
#: record name -> (method key of the weight files, label)
METHODS = {"bigrad-bb": ("bb", "BiGrad(BB)"), "bigrad-pt": ("pt", "BiGrad(PT)"), "bb-1": ("bb1", "BB-1"),
           "pt-1": ("pt1", "PT-1"), "sl": ("sl", "SL"), "exact": (None, "exact")}
ACCURACY = {"spi-grid": ("interdiction_hamming_mean", "path_hamming_mean"),
            "tsp-interdiction": ("removed_hamming_mean", "tour_hamming_mean")}
HEADER = ("| data set | method | regret (mean) | optimal | interdiction acc. | follower acc. | latency ms | "
          "train s / sample / step |\n|---|---|---|---|---|---|---|---|")


def _f(x, fmt="{:.4f}") -> str:
    return "—" if x is None else fmt.format(x)


def rows(family: str, root: Path = ROOT) -> list[str]:
    """One Markdown row per committed record of the family's released sets."""
    out = []
    for name in TABLES[family]:
        for solver, (method, label) in METHODS.items():
            path = root / "leaderboards" / "results" / name / f"{solver}.json"
            if not path.is_file():
                continue
            record = json.loads(path.read_text())
            m = record["metrics"]
            gaps = [g for g in record["per_instance"]["gap"] if g is not None]
            optimal = sum(g <= 1e-9 for g in gaps) / max(1, m["n_instances"])
            acc_x, acc_y = (None if m.get(k) is None else 1.0 - m[k] for k in ACCURACY[family])
            step = None
            if method is not None:
                meta = root / "baselines" / "bigrad_combinatorial" / "weights" / f"{name}-{method}.json"
                if meta.is_file():
                    history = json.loads(meta.read_text())["history"]
                    step = sum(h["step_seconds_per_sample"] for h in history) / len(history)
            limit = record["protocol"].get("limit")
            shown = f"{name} (first {limit})" if limit else name
            out.append(f"| {shown} | {label} | {_f(m.get('regret_mean'))} | {optimal:.2f} | {_f(acc_x)} | "
                       f"{_f(acc_y)} | {_f(m.get('latency_ms_median'), '{:.1f}')} | {_f(step, '{:.4f}')} |")
    return out


CONTROL_SETS = ("adv-control-T5", "adv-control-T10")
#: record name -> (method key of the weight files, label)
CONTROL_METHODS = {"bigrad": ("bigrad", "BiGrad"), "two-step": ("two-step", "two-step"),
                   "nominal": ("nominal", "nominal"), "sl": ("sl", "SL"), "exact": (None, "exact")}
CONTROL_HEADER = ("| data set | method | average cost | gap (mean) | gap (max) | feasible | latency ms | "
                  "train s / sample / step |\n|---|---|---|---|---|---|---|---|")


def control_rows(root: Path = ROOT) -> list[str]:
    """One Markdown row per committed record of the released adv-control sets."""
    out = []
    for name in CONTROL_SETS:
        for solver, (method, label) in CONTROL_METHODS.items():
            path = root / "leaderboards" / "results" / name / f"{solver}.json"
            if not path.is_file():
                continue
            m = json.loads(path.read_text())["metrics"]
            step = None
            if method is not None:
                meta = root / "baselines" / "bigrad_control" / "weights" / f"{name}-{method}.json"
                if meta.is_file():
                    history = json.loads(meta.read_text())["history"]
                    step = sum(h["step_seconds_per_sample"] for h in history) / len(history)
            out.append(f"| {name} | {label} | {_f(m.get('objective_mean'))} | {_f(m.get('gap_mean'), '{:.2e}')} | "
                       f"{_f(m.get('gap_max'), '{:.2e}')} | {_f(m.get('feasible_rate'), '{:.2f}')} | "
                       f"{_f(m.get('latency_ms_median'), '{:.2f}')} | {_f(step, '{:.5f}')} |")
    return out


def main() -> int:
    for family in TABLES:
        print(f"### {family}\n\n{HEADER}")
        print("\n".join(rows(family)))
        print()
    print(f"### adv-control\n\n{CONTROL_HEADER}")
    print("\n".join(control_rows()))
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
