"""Measure dcopf label generation per case: certified labels per second on one core and peak memory.

Usage: python benchmarks/dcopf_generation.py [--n N] [--pglib DIR] > table.md

Each case runs ``bilevelbench generate dcopf --case C --n-test N --workers 1`` in a fresh process (so peak
memory is that process's maximum resident set, read with ``os.wait4``) and reports wall time per label
including parsing, model building, certification and writing the HDF5 file. Cases 1354 and 2869 are read from
``--pglib`` (PGLib-OPF v23.07 files) when present.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SHIPPED = ("pglib_opf_case14_ieee", "pglib_opf_case30_ieee", "pglib_opf_case57_ieee", "pglib_opf_case118_ieee",
           "pglib_opf_case300_ieee")
LARGE = ("pglib_opf_case1354_pegase", "pglib_opf_case2869_pegase")


def measure(case: str, n: int) -> tuple[float, float, int]:
    """``(seconds, labels per second, peak RSS in MiB)`` of one generation run."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "x.h5"
        cmd = [sys.executable, "-m", "bilevelbench.cli", "-q", "generate", "dcopf", "--case", case, "--n-test",
               str(n), "--seed", "0", "--out", str(out)]
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        if status != 0:
            raise SystemExit(f"{case}: generation failed (status {status})")
    return seconds, n / seconds, int(usage.ru_maxrss / 1024)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="labels per case (default 1000)")
    parser.add_argument("--pglib", type=Path, default=Path("../shared/data/pglib"),
                        help="folder with the large PGLib cases (default ../shared/data/pglib)")
    args = parser.parse_args()
    cases = list(SHIPPED) + [str(args.pglib / f"{c}.m") for c in LARGE if (args.pglib / f"{c}.m").exists()]
    print("| case | buses / generators / branches | labels | wall (s) | labels/s (1 core) | peak RSS (MiB) |")
    print("| --- | --- | --- | --- | --- | --- |")
    from bilevelbench.families.dcopf.power import load_case

    for case in cases:
        parsed = load_case(case)
        seconds, rate, rss = measure(case, args.n)
        print(f"| {parsed.name} | {parsed.n_bus} / {parsed.n_gen} / {parsed.n_branch} | {args.n} | {seconds:.1f} | "
              f"{rate:.0f} | {rss} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
