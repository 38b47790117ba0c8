"""Print the README's table comparing the committed bqp records with Kotary et al.'s Table 1.

Every number comes from a record under ``leaderboards/results/`` or a weight file's metadata; the paper's
figures are the only constants. ``tests/test_readme.py`` checks that the README holds this output::

    python leaderboards/paper_table.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: Kotary et al., Table 1: L2O gap (their +100 convention) and coupling violation.
PAPER = {"3x2": ("9.2e-04", "5.9e-03"), "6x4": ("2.0e-03", "2.8e-04"), "9x6": ("1.1e-02", "4.0e-05")}
SIZES = ("3x2", "6x4", "9x6", "12x9")
METHODS = ("l2o-correction", "l2o-polish", "bigrad", "pso", "exact")
HEADER = ("| size | method | gap | gap, paper conv. | paper's gap | violation ‖ReLU‖₂ | paper's violation | "
          "feasible | latency ms (batch 1) | batched ms/inst | training |\n"
          "|---|---|---|---|---|---|---|---|---|---|---|")


def _num(x: float | None) -> str:
    return "—" if x is None else ("0" if x == 0 else f"{x:.1e}")


def rows(root: Path = ROOT) -> list[str]:
    """One Markdown row per committed record, by size and method."""
    out = []
    for size in SIZES:
        for name in METHODS:
            path = root / "leaderboards" / "results" / f"bqp-{size}" / f"{name}.json"
            if not path.exists():
                continue
            m = json.loads(path.read_text())["metrics"]
            paper = PAPER.get(size, ("—", "—")) if name == "l2o-correction" else ("—", "—")
            batched = f"{1000 / m['throughput_per_s']:.3g}" if m.get("throughput_per_s") else "—"
            training = "l2o-correction's network" if name == "l2o-polish" else ""
            if name == "l2o-correction":
                weights = root / "baselines" / "l2o_correction" / "weights" / f"bqp-{size}.json"
                training = f"{json.loads(weights.read_text())['meta']['train_seconds'] / 60:.1f} min"
            latency = m.get("latency_ms_median")
            out.append(f"| {size} | {name} | {_num(m['gap_mean'])} | {_num(m['paper_gap_mean'])} | {paper[0]} | "
                       f"{_num(m['coupling_violation_mean'])} | {paper[1]} | {100 * m['feasible_rate']:.1f}% | "
                       f"{'—' if latency is None else f'{latency:.3g}'} | {batched} | {training} |")
    return out


def main() -> int:
    sys.stdout.write(HEADER + "\n" + "\n".join(rows()) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
