"""dcopf generation end to end: the CLI on shipped cases, resuming, reproducibility, and verify catching edits."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from bilevelbench.cli import main
from bilevelbench.data.instance_set import InstanceSet
from bilevelbench.errors import UsageError
from bilevelbench.families.dcopf.generate import CHUNK, DCOPFRequest, generate_dcopf
from bilevelbench.verify import verify_instance_set


@pytest.mark.parametrize("case", ["pglib_opf_case14_ieee", "pglib_opf_case30_ieee", "pglib_opf_case57_ieee",
                                  "pglib_opf_case118_ieee", "pglib_opf_case300_ieee"])
def test_reference_load_is_certified_and_verified(case, tmp_path, capsys):
    out = tmp_path / "base.h5"
    assert main(["-q", "generate", "dcopf", "--case", case, "--n-train", "0", "--n-valid", "0", "--n-test", "5",
                 "--load-scale", "1,1", "--load-noise", "0", "--seed", "0", "--out", str(out)]) == 0
    assert main(["-q", "verify", str(out)]) == 0
    ds = InstanceSet.open(out)
    assert ds.status_counts() == {"certified_optimal": 5}
    s = ds.structure
    pd = ds.params["pd"]
    np.testing.assert_array_equal(pd, np.tile(s.pd_ref, (5, 1)))          # the reference load, 5 times
    obj = ds.labels["objective"]
    assert np.allclose(obj, obj[0], rtol=1e-12)
    assert ds.meta["dcopf"]["case"] == case
    assert "CC BY 4.0" in ds.meta["dcopf"]["case_header"] or "Creative Commons" in ds.meta["dcopf"]["case_header"]


def test_sampled_sets_are_reproducible_with_any_worker_count(tmp_path):
    request = DCOPFRequest(case="case14", n_train=CHUNK + 20, n_valid=5, n_test=7, seed=3)
    first = generate_dcopf(request, tmp_path / "a.h5")
    generate_dcopf(request, tmp_path / "b.h5", workers=2)
    assert not (tmp_path / "b.h5.partial").exists()
    a, b = InstanceSet.open(first), InstanceSet.open(tmp_path / "b.h5")
    np.testing.assert_array_equal(a.params["pd"], b.params["pd"])
    np.testing.assert_array_equal(a.labels["pg"], b.labels["pg"])
    assert [len(a.split(k)) for k in ("train", "valid", "test")] == [CHUNK + 20, 5, 7]
    assert verify_instance_set(a).ok
    ratio = a.params["pd"].sum(1) / a.structure.pd_ref.sum()
    assert 0.6 * 0.85 < ratio.min() and ratio.max() < 1.15


def test_resume_uses_saved_chunks_and_refuses_a_foreign_folder(tmp_path):
    from bilevelbench.data.shards import ShardStore
    from bilevelbench.families.dcopf.certify import DCOPFCertifierSettings
    from bilevelbench.families.dcopf.generate import _request_key, load_structure, shard_name

    request = DCOPFRequest(case="case14", n_train=0, n_valid=0, n_test=CHUNK + 3, seed=1)
    s, _ = load_structure("case14")
    store = ShardStore(tmp_path / "c.h5", _request_key(request, s.digest(), DCOPFCertifierSettings()))
    done = generate_dcopf(request, tmp_path / "ref.h5")
    # plant the first chunk with a marker objective: a resumed run must take it as it is
    ref = InstanceSet.open(done)
    from bilevelbench.families.dcopf.certify import DCOPFModel
    from bilevelbench.families.dcopf.generate import label_chunk

    chunk = label_chunk(DCOPFModel(s), ref.params["pd"][:CHUNK], DCOPFCertifierSettings())
    chunk["solve_time"][:] = 123.0
    store.save(shard_name("test", 0), chunk)
    store.close()
    resumed = InstanceSet.open(generate_dcopf(request, tmp_path / "c.h5"))
    assert np.all(resumed.labels["solve_time"][:CHUNK] == 123.0)
    assert np.all(resumed.labels["solve_time"][CHUNK:] < 123.0)
    np.testing.assert_array_equal(resumed.labels["pg"], ref.labels["pg"])
    ShardStore(tmp_path / "d.h5", "some other request").close()
    with pytest.raises(UsageError, match="different request"):
        generate_dcopf(request, tmp_path / "d.h5")


def test_verify_catches_an_edited_label(tmp_path):
    out = generate_dcopf(DCOPFRequest(case="case30", n_test=4, seed=0), tmp_path / "x.h5")
    with h5py.File(out, "r+") as f:
        pg = f["labels/pg"][()]
        pg[1, 0] += 1.0                                    # move one MW: imbalance and a worse objective
        f["labels/pg"][...] = pg
        lmp = f["labels/lmp"][()]
        lmp[2] *= 1.01
        f["labels/lmp"][...] = lmp
    report = verify_instance_set(InstanceSet.open(out))
    failed = {index for index, _, _ in report.failures}
    assert failed == {1, 2}
    assert main(["-q", "verify", str(out)]) == 1


def test_cli_errors_are_clear(tmp_path, capsys):
    assert main(["generate", "dcopf", "--out", str(tmp_path / "x.h5")]) == 2
    assert "--case" in capsys.readouterr().err
    assert main(["generate", "dcopf", "--case", "case9999", "--out", str(tmp_path / "x.h5")]) == 2
    assert "pglib_opf_case118_ieee" in capsys.readouterr().err
    assert main(["generate", "dcopf", "--case", "case14", "--load-scale", "1", "--out", str(tmp_path / "x.h5")]) == 2
    assert "LO,HI" in capsys.readouterr().err
    assert main(["generate", "bqp", "--size", "3x2", "--case", "case14", "--out", str(tmp_path / "x.h5")]) == 2
    assert "--case is not an option of bqp (an option of dcopf)" in capsys.readouterr().err
