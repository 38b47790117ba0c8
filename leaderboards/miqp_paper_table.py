"""Print the table of docs/baselines.md comparing the committed MI-MPC records with Le, Xie and Mangharam's figures.

Every number of ours comes from a record under ``leaderboards/results/``; the authors' figures are the only
constants: the violation rates printed in their metric figures and the bars of their trajectory-infeasibility
figures, as published in their repository's README (mlab-upenn/L2O-MIQP, ``misc/metric_*.png`` and
``misc/f_*.png``). ``tests/test_readme.py`` checks that the doc holds this output::

    python leaderboards/miqp_paper_table.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: The authors' figures per (family, method): integer-only violation rate, continuous violation rate,
#: trajectory infeasibility rate, all in per cent.
PAPER = {
    ("tank", "sl"): ("5.5", "4.6", "16.4"), ("tank", "ssl"): ("0.0", "11.2", "25.6"),
    ("tank", "hybrid"): ("1.1", "5.7", "15.2"),
    ("robot", "sl"): ("0.0", "71.7", "32.7"), ("robot", "ssl"): ("0.0", "0.6", "42.7"),
    ("robot", "hybrid"): ("0.1", "8.0", "20.1"),
}
#: (data set, the authors' problem it is compared with).
DATASETS = (("mimpc-tank", "tank"), ("mimpc-robot-authors", "robot"), ("mimpc-robot-authors-20k", "robot"),
            ("mimpc-robot", "robot"))
METHODS = ("sl", "ssl", "hybrid")
HEADER = ("| data set | method | integer-only violated | paper | continuous violated | paper | gap | gap, paper conv. "
          "| closed loop: episodes with a violation | paper: trajectory infeasibility | closed-loop cost / exact "
          "| latency ms (batch 1) | batched ms/inst |\n"
          "|---|---|---|---|---|---|---|---|---|---|---|---|---|")


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.1f}%"


def _batched(m: dict) -> str:
    return f"{1000 / m['throughput_per_s']:.3g}" if m.get("throughput_per_s") else "—"


def _load(root: Path, dataset: str, name: str) -> dict | None:
    path = root / "leaderboards" / "results" / dataset / f"{name}.json"
    return json.loads(path.read_text())["metrics"] if path.exists() else None


def rows(root: Path = ROOT) -> list[str]:
    """One Markdown row per method and variant (as published, with the repair), by data set."""
    out = []
    for dataset, problem in DATASETS:
        for method in METHODS:
            for suffix, label in (("-paper", "as published"), ("", "with repair")):
                m = _load(root, dataset, f"miqp-{method}{suffix}")
                if m is None:
                    continue
                closed = _load(root, dataset, f"miqp-{method}{suffix}-closed-loop")
                paper = PAPER[(problem, method)] if dataset != "mimpc-robot" else ("—", "—", "—")
                episodes = None if closed is None else 1.0 - closed["violation_free_rate"]
                ratio = "—" if closed is None else f"{closed['cost_ratio_mean']:.3f}"
                out.append(
                    f"| {dataset} | {method} ({label}) | {_pct(m['integer_violation_rate'])} | {paper[0]}% | "
                    f"{_pct(m['continuous_violation_rate'])} | {paper[1]}% | {_pct(m['gap_mean'])} | "
                    f"{_pct(m['paper_gap_mean'])} | {_pct(episodes)} | {paper[2]}% | {ratio} | "
                    f"{m['latency_ms_median']:.3g} | {_batched(m)} |".replace("| —% |", "| — |"))
        exact = _load(root, dataset, "exact")
        if exact is not None:
            closed = _load(root, dataset, "exact-closed-loop")
            episodes = None if closed is None else 1.0 - closed["violation_free_rate"]
            out.append(f"| {dataset} | exact | {_pct(exact['integer_violation_rate'])} | | "
                       f"{_pct(exact['continuous_violation_rate'])} | | {_pct(exact['gap_mean'])} | "
                       f"{_pct(exact['paper_gap_mean'])} | {_pct(episodes)} | | "
                       f"{'—' if closed is None else format(closed['cost_ratio_mean'], '.3f')} | "
                       f"{exact['latency_ms_median']:.3g} | {_batched(exact)} |")
    return out


def main() -> int:
    sys.stdout.write(HEADER + "\n" + "\n".join(rows()) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
