"""Generation: reproducibility from the seed, split independence, workers, unlabeled train."""

import numpy as np

from bilevelbench import InstanceSet
from bilevelbench.families.bqp.certifier import CertifierSettings
from bilevelbench.families.bqp.generate import BQPRequest, generate_bqp, params_for, structure_for


def test_same_seed_same_structure_and_parameters():
    a = BQPRequest(m=6, n=4, n_train=5, n_valid=2, n_test=3, seed=3)
    b = BQPRequest(m=6, n=4, n_train=500, n_valid=0, n_test=3, seed=3)
    sa, sb = structure_for(a), structure_for(b)
    assert sa.digest() == sb.digest()
    pa, splits_a = params_for(a, sa)
    pb, splits_b = params_for(b, sb)
    np.testing.assert_array_equal(pa["c"][splits_a["test"]], pb["c"][splits_b["test"]])
    np.testing.assert_array_equal(pa["c"][:5], pb["c"][:5])  # train is a prefix of the larger train
    assert structure_for(BQPRequest(m=6, n=4, n_train=1, n_valid=0, n_test=0, seed=4)).digest() != sa.digest()


def test_workers_and_rerun_reproduce_labels(tmp_path):
    request = BQPRequest(m=3, n=2, n_train=3, n_valid=0, n_test=5, seed=9, label_train=False)
    one = generate_bqp(request, tmp_path / "one.h5", CertifierSettings(), workers=1)
    two = generate_bqp(request, tmp_path / "two.h5", CertifierSettings(), workers=2)
    a, b = InstanceSet.open(one), InstanceSet.open(two)
    assert a.meta["structure_hash"] == b.meta["structure_hash"]
    assert a.split("train").status_counts() == {"unlabeled": 3}
    assert a.split("test").status_counts() == {"certified_optimal": 5}
    for key in ("y", "z", "objective"):
        np.testing.assert_array_equal(a.labels[key], b.labels[key])
    assert np.all(np.isnan(a.split("train").labels["y"]))
    assert a.meta["sampling"]["seed"] == 9 and a.meta["certifier_settings"]["backend"] == "scip"
