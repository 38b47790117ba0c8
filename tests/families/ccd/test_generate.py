"""Control co-design generation end to end: spec -> best-known labels -> verify -> evaluate (small sets)."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

pytest.importorskip("torch")

from bilevelbench.cli import main
from bilevelbench.data.instance_set import InstanceSet
from bilevelbench.errors import UsageError
from bilevelbench.families.ccd.generate import CCDRequest
from bilevelbench.verify import verify_instance_set


def tiny_spec(tmp_path, family: str) -> str:
    path = tmp_path / f"{family}.toml"
    path.write_text(f'name = "{family}-tiny"\nfamily = "{family}"\nseed = 5\nn_train = 6\nn_valid = 2\nn_test = 3\n'
                    'label_splits = ["test"]\nschema_version = 1\nbackend = "search"\n')
    return str(path)


@pytest.fixture(scope="module", params=["ccd-twotank", "ccd-hvac"])
def generated(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp(request.param)
    out = tmp / "set.h5"
    assert main(["-q", "generate", tiny_spec(tmp, request.param), "--out", str(out)]) == 0
    return request.param, out


def test_labels_are_best_known_never_certified_and_verify(generated, capsys):
    family, out = generated
    ds = InstanceSet.open(out)
    assert ds.family == family and ds.meta["name"] == f"{family}-tiny"
    assert ds.status_counts() == {"best_known": 3, "unlabeled": 8}
    assert "certified_optimal" not in set(ds.labels["status"])
    assert [len(ds.split(k)) for k in ("train", "valid", "test")] == [6, 2, 3]
    test = ds.split("test")
    assert np.all(test.labels["n_evaluated"] > 10) and np.all(np.isfinite(test.labels["spread"]))
    assert ds.meta["certifier_settings"]["label_status"].startswith("best_known")
    assert main(["-q", "verify", str(out)]) == 0
    assert main(["-q", "info", str(out)]) == 0
    assert "never certified" in capsys.readouterr().out


def test_verify_rejects_a_certified_claim_and_an_edited_label(generated, tmp_path):
    _, out = generated
    ds = InstanceSet.open(out)
    k = int(ds.split("test").indices[0])
    claimed, edited = tmp_path / "claimed.h5", tmp_path / "edited.h5"
    for target in (claimed, edited):
        target.write_bytes(out.read_bytes())
    with h5py.File(claimed, "r+") as f:
        status = f["labels/status"][()]
        status[k] = b"certified_optimal"
        f["labels/status"][...] = status
    with h5py.File(edited, "r+") as f:
        obj = f["labels/objective"][()]
        obj[k] *= 0.9
        f["labels/objective"][...] = obj
    for target, words in ((claimed, "certified_optimal"), (edited, "recomputed objective")):
        report = verify_instance_set(InstanceSet.open(target))
        assert [i for i, _, _ in report.failures] == [k]
        assert words in report.failures[0][2]


def test_evaluator_recomputes_the_follower_and_scores_labels_at_gap_zero(generated, tmp_path):
    _, out = generated
    result = tmp_path / "exact.json"
    assert main(["-q", "evaluate", "--dataset", str(out), "--solver", "baselines/exact", "--warmup", "0",
                 "--batch-size", "0", "--exact-instances", "0", "--out", str(result)]) == 0
    record = json.loads(result.read_text())
    m = record["metrics"]
    assert m["gap_max"] <= 1e-9 and m["feasible_rate"] == 1.0
    labels = InstanceSet.open(out).split("test").labels
    np.testing.assert_allclose(record["per_instance"]["cost"], labels["cost"], rtol=1e-9)
    np.testing.assert_allclose(record["per_instance"]["violation"], labels["violation"], rtol=1e-7, atol=1e-12)
    assert m["objective_mean"] == pytest.approx(float(np.mean(labels["objective"])), rel=1e-9)


def test_designs_outside_the_box_are_infeasible(generated, tmp_path):
    from bilevelbench.evaluate.evaluator import score_split

    family, out = generated
    ds = InstanceSet.open(out)
    test = ds.split("test")
    design = np.array(test.labels["design"], dtype=float)
    design[0] = -0.5
    score = score_split(ds, test.params, test.labels, design, np.ones(len(test), bool), {})
    assert not score.feasible[0] and score.feasible[1:].all()
    assert score.values["design_violation"][0] == pytest.approx(0.5 + (0.01 if family == "ccd-twotank" else 0.0))


def test_requests_and_flags_are_checked(tmp_path):
    with pytest.raises(UsageError, match="label_splits"):
        CCDRequest(family="ccd-hvac", label_splits=("tests",))
    with pytest.raises(UsageError, match="not a control co-design family"):
        CCDRequest(family="bqp")
    assert main(["-q", "generate", "ccd-hvac", "--case", "case14", "--out", str(tmp_path / "x.h5")]) == 2
