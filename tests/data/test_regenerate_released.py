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


#: The regenerated files' digests where the machine's kernels differ from the release machines':
#: there 'generate' warns and exits 1 although the labels are the release's to 1e-9 (a known limit of bit-exact
#: digests, docs/datasets.md); the test pins what such a machine gives (bilevelbench.testing.numerics).
REGENERATED_BY_PROFILE = {
    "openblas=Haswell;torch=AVX2": {
        "bqp-3x2": "sha256:0ee9cb923d718840c8c157e876384f446b82d70dc269be1c88e64f55e2a1cfe1",
        "dcopf-case57": "sha256:7a206c893e0a2ad499d94613fef9de7cea7c4b6db3f9f56398d8c5a73657852b",
    },
}


@pytest.mark.slow
@pytest.mark.parametrize("name", ["bqp-3x2", "dcopf-case57"])
def test_regenerated_spec_matches_its_digest_and_the_committed_records(tmp_path, name):
    from bilevelbench.testing.numerics import numerics_profile, pinned

    spec = ROOT / "datasets" / f"{name}.toml"
    released = load_spec(spec).content_digest
    assert released, f"{name}.toml records no content_digest"
    out = tmp_path / f"{name}.h5"
    proc = subprocess.run([*CLI, "generate", str(spec), "--out", str(out), "--workers", "2"], capture_output=True,
                          text=True, timeout=900, check=False)
    expected_digest = pinned({name: released}, REGENERATED_BY_PROFILE)[name]
    assert InstanceSet.open(out).content_digest() == expected_digest, f"numerics profile {numerics_profile()}"
    if expected_digest == released:
        assert proc.returncode == 0, proc.stderr                # exit 1 would mean: digest differs from the spec's
        assert "equals the released one" in proc.stdout
    else:
        assert proc.returncode == 1 and "CPU kernels that round differently" in proc.stderr
    record = json.loads((ROOT / "leaderboards" / "results" / name / "exact.json").read_text())
    expected, got = _references(InstanceSet.open(out), record)
    assert np.array_equal(np.isnan(expected), np.isnan(got))
    ok = ~np.isnan(expected)
    # the same kernels reproduce the records to 1e-9; other kernels move a reference by up to 1.8e-9 (bqp-3x2,
    # one of 1000), far inside the labels' certified gap of 1e-6
    rtol = 1e-9 if expected_digest == released else 1e-7
    np.testing.assert_allclose(got[ok], expected[ok], rtol=rtol, atol=0)


def test_a_regeneration_that_differs_from_the_spec_digest_exits_1(tmp_path):
    spec = tmp_path / "tiny.toml"
    spec.write_text('name = "tiny"\nfamily = "bqp"\nsize = "3x2"\nseed = 3\nn_train = 0\nn_valid = 0\nn_test = 2\n'
                    'content_digest = "sha256:' + "0" * 64 + '"\n')
    proc = subprocess.run([*CLI, "generate", str(spec), "--out", str(tmp_path / "t.h5")], capture_output=True,
                          text=True, timeout=300, check=False)
    assert proc.returncode == 1 and (tmp_path / "t.h5").is_file()
    assert "differ from the release" in proc.stderr and proc.stderr.count("\n") == 1
