"""The asv suite runs (issue 8): every benchmark once, failing if any errors (a smoke run, not a timing gate)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_asv_quick_run_passes(tmp_path):
    asv = shutil.which("asv", path=str(Path(sys.executable).parent)) or shutil.which("asv")
    if asv is None:
        pytest.fail("asv is not installed; it is part of the test extra (pip install -e '.[test]')")
    env = {"HOME": str(tmp_path), "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
           "TMPDIR": str(tmp_path)}
    # the committed configuration, with results and environments in tmp_path (nothing written to the tree)
    config = json.loads(re.sub(r"^\s*//.*$", "", (ROOT / "asv.conf.json").read_text(), flags=re.M))
    config.update(repo=str(ROOT), benchmark_dir=str(ROOT / "benchmarks" / "asv"), env_dir=str(tmp_path / "env"),
                  results_dir=str(tmp_path / "results"), html_dir=str(tmp_path / "html"))
    conf = tmp_path / "asv.conf.json"
    conf.write_text(json.dumps(config))
    subprocess.run([asv, "machine", "--yes", "--machine", "ci"], cwd=tmp_path, env=env, check=True,
                   capture_output=True, text=True)
    proc = subprocess.run([asv, "run", "--config", str(conf), "--python=same", "--quick", "--show-stderr",
                           "--machine", "ci"], cwd=tmp_path, env=env, capture_output=True, text=True)
    tail = (proc.stdout + proc.stderr)[-4000:]
    assert proc.returncode == 0, tail
    assert "failed" not in proc.stdout, tail
    for name in ("CertifyBQP", "CertifyDCOPF", "Scoring", "Latency", "Quality", "GenerationMemory", "CCDFollower",
                 "CCDBestKnown", "Registry", "SPILabels", "TSPLabels", "TrainingStep", "AdvLabels",
                 "AdvTrainingStep", "ServiceUpload", "TwoTankHessian", "ConvergedL2O"):
        assert name in proc.stdout, f"benchmark {name} did not run:\n{tail}"
