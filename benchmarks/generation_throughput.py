"""Generation throughput with 1 and 2 local workers and on a 2-worker Dask LocalCluster, and size on disk.

Usage: python benchmarks/generation_throughput.py > table.md

Runs ``bilevelbench generate`` in a fresh process per configuration (bqp 3x2 and dcopf case118 by default) and
prints labels per second and the file size per 1000 instances as a Markdown table.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

JOBS = {
    "bqp 3x2": ["bqp", "--size", "3x2", "--n-train", "0", "--n-valid", "0", "--seed", "1"],
    "bqp 9x6": ["bqp", "--size", "9x6", "--n-train", "0", "--n-valid", "0", "--seed", "1"],
    "dcopf case118": ["dcopf", "--case", "case118", "--seed", "1"],
}


def run(args: list[str], n: int, extra: list[str]) -> tuple[float, int]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "x.h5"
        cmd = [sys.executable, "-m", "bilevelbench.cli", "-q", "generate", *args, "--n-test", str(n),
               "--out", str(out), *extra]
        start = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        return time.perf_counter() - start, out.stat().st_size


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-bqp", type=int, default=300, help="bqp instances per run (default 300)")
    parser.add_argument("--n-bqp-large", type=int, default=100, help="bqp 9x6 instances per run (default 100)")
    parser.add_argument("--n-dcopf", type=int, default=3000, help="dcopf instances per run (default 3000)")
    args = parser.parse_args()
    print("| data set | instances | executor | wall (s) | labels/s | MiB per 1000 instances |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, job in JOBS.items():
        n = {"bqp 3x2": args.n_bqp, "bqp 9x6": args.n_bqp_large}.get(name, args.n_dcopf)
        for label, extra in (("1 worker", ["--workers", "1"]), ("2 workers", ["--workers", "2"]),
                             ("Dask LocalCluster, 2 workers", ["--scheduler", "local:2"])):
            seconds, size = run(job, n, extra)
            print(f"| {name} | {n} | {label} | {seconds:.1f} | {n / seconds:.1f} | {size / 2**20 / n * 1000:.2f} |",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
