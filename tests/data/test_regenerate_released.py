"""Regenerating a released spec reproduces its content: the spec's recorded content digest, and the reference
objectives of the committed leaderboard records (to 1e-9), through the public command line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bilevelbench.data.instance_set import InstanceSet
from bilevelbench.data.spec import load_spec

ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "bilevelbench.cli", "-q"]


def _references(ds, record) -> tuple[np.ndarray, np.ndarray]:
    """The record's per-instance reference objectives and the regenerated file's, for the same test instances."""
    test = ds.split("test")
    ref = np.array([np.nan if v is None else v for v in record["per_instance"]["reference_objective"]], float)
    n = ref.size
    labels = {k: v[:n] for k, v in test.labels.items()}
    if ds.family == "bqp":      # bqp's reference is L(y*, z(y*)), the follower re-solved at the label (score.py)
        from bilevelbench.families.bqp.score import reference_objectives

        return ref, reference_objectives(ds.structure, test.params["c"][:n], test.params["d"][:n], labels)
    return ref, np.asarray(labels["objective"], float)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["bqp-3x2", "dcopf-case57"])
def test_regenerated_spec_matches_its_digest_and_the_committed_records(tmp_path, name):
    spec = ROOT / "datasets" / f"{name}.toml"
    assert load_spec(spec).content_digest, f"{name}.toml records no content_digest"
    out = tmp_path / f"{name}.h5"
    proc = subprocess.run([*CLI, "generate", str(spec), "--out", str(out), "--workers", "2"], capture_output=True,
                          text=True, timeout=900, check=False)
    assert proc.returncode == 0, proc.stderr                    # exit 1 would mean: digest differs from the spec's
    assert "equals the released one" in proc.stdout
    record = json.loads((ROOT / "leaderboards" / "results" / name / "exact.json").read_text())
    expected, got = _references(InstanceSet.open(out), record)
    assert np.array_equal(np.isnan(expected), np.isnan(got))
    ok = ~np.isnan(expected)
    np.testing.assert_allclose(got[ok], expected[ok], rtol=1e-9, atol=0)


def test_a_regeneration_that_differs_from_the_spec_digest_exits_1(tmp_path):
    spec = tmp_path / "tiny.toml"
    spec.write_text('name = "tiny"\nfamily = "bqp"\nsize = "3x2"\nseed = 3\nn_train = 0\nn_valid = 0\nn_test = 2\n'
                    'content_digest = "sha256:' + "0" * 64 + '"\n')
    proc = subprocess.run([*CLI, "generate", str(spec), "--out", str(tmp_path / "t.h5")], capture_output=True,
                          text=True, timeout=300, check=False)
    assert proc.returncode == 1 and (tmp_path / "t.h5").is_file()
    assert "differ from the release" in proc.stderr and proc.stderr.count("\n") == 1
