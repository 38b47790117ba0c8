"""Public releases (issue 20): ``bilevelbench release --public`` writes beside each file a copy whose test split
keeps its parameters only. The copy opens, ``info`` and ``verify`` work on it, the evaluator refuses its hidden
split, and no dataset in the file holds anything from which a test label could be derived."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from bilevelbench.cli import main
from bilevelbench.data.fetch import file_content_digest
from bilevelbench.data.instance_set import InstanceSet
from bilevelbench.data.registry import load_registry

SPEC = ('name = "pub"\nfamily = "bqp"\nsize = "3x2"\nseed = 3\nn_train = 3\nn_valid = 0\nn_test = 2\n')


@pytest.fixture(scope="module")
def released(tmp_path_factory):
    root = tmp_path_factory.mktemp("release")
    (root / "specs").mkdir()
    (root / "specs" / "pub.toml").write_text(SPEC)
    assert main(["-q", "release", str(root / "specs"), "--out", str(root / "out"), "--public"]) == 0
    return root / "out"


def _empty(value: np.ndarray) -> bool:
    """Whether the rows carry no information: NaN, 0, empty, or one of the redaction's fixed words."""
    if value.dtype.kind == "f":
        return bool(np.all(np.isnan(value)))
    if value.dtype.kind in "iub":
        return bool(np.all(value == 0))
    text = {v.decode() if isinstance(v, bytes) else str(v) for v in np.ravel(value)}
    return text <= {"", "hidden", "hidden: this split is scored by the service holding the full file"}


def test_no_dataset_of_the_public_file_holds_a_test_label(released):
    full = InstanceSet.open(released / "pub.h5")
    test_rows = np.asarray(full.data.splits["test"])
    seen = []
    with h5py.File(released / "pub.public.h5", "r") as f:
        assert "closed_loop" not in f

        def visit(name, obj):
            if not isinstance(obj, h5py.Dataset) or not name.startswith("labels/"):
                return
            seen.append(name)
            assert _empty(obj[()][test_rows]), f"{name} holds test values"

        f.visititems(visit)
        assert bool(f.attrs["public"])
    assert {"labels/objective", "labels/y", "labels/status"} <= set(seen)
    # the train split keeps its labels
    public = InstanceSet.open(released / "pub.public.h5")
    np.testing.assert_array_equal(public.split("train").labels["objective"], full.split("train").labels["objective"])
    for key in ("status", "reason", "backend"):          # text of the kept rows survives the redaction as it was
        assert [str(v) for v in np.asarray(public.split("train").labels[key]).astype(str)] == \
            [str(v) for v in np.asarray(full.split("train").labels[key]).astype(str)], key
    np.testing.assert_array_equal(public.split("test").params["c"], full.split("test").params["c"])
    assert public.meta["private_content_digest"] == file_content_digest(released / "pub.h5")
    assert public.meta["hidden_splits"] == ["test"]


def test_the_public_file_opens_verifies_and_refuses_scoring(released, tmp_path, capsys):
    public = released / "pub.public.h5"
    assert main(["info", str(public)]) == 0
    assert "2 hidden" in capsys.readouterr().out
    assert main(["-q", "verify", str(public)]) == 0
    assert main(["-q", "evaluate", "--dataset", str(public), "--solver", "baselines/exact",
                 "--out", str(tmp_path / "r.json")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is hidden (a public release" in err[0]
    assert not (tmp_path / "r.json").exists()


def test_the_registry_lists_the_public_copy(released):
    reg = load_registry(released / "registry.toml")
    assert {"pub", "pub-public"} <= set(reg.entries)
    entry = reg.entries["pub-public"]
    assert entry.published and entry.file == "pub.public.h5"
    assert entry.content_digest == file_content_digest(released / "pub.public.h5")


@pytest.fixture(scope="module")
def carded(tmp_path_factory):
    root = tmp_path_factory.mktemp("cards")
    (root / "specs").mkdir()
    (root / "specs" / "pub.toml").write_text(SPEC)
    assert main(["-q", "release", str(root / "specs"), "--out", str(root / "out"), "--public", "--cards",
                 "--mirror", "https://example.org/bb"]) == 0
    return root / "out"


def test_every_released_file_has_a_valid_croissant_description_and_a_card(carded):
    """The Croissant JSON-LD passes mlcroissant's validator; its record sets are the splits, its fields name the
    HDF5 datasets; the public copy's test record set lists parameters only."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    mlc = pytest.importorskip("mlcroissant")
    for stem in ("pub", "pub.public"):
        jsonld = carded / f"{stem}.croissant.json"
        proc = subprocess.run([str(Path(sys.executable).parent / "mlcroissant"), "validate", "--jsonld", str(jsonld)],
                              capture_output=True, text=True, timeout=300, check=False)
        assert proc.returncode == 0, proc.stderr[-2000:]
        metadata = mlc.Metadata.from_file(ctx=mlc.Context(), file=jsonld)
        assert not metadata.ctx.issues.errors
        doc = json.loads(jsonld.read_text())
        sets = {rs["@id"]: {f["name"] for f in rs["field"]} for rs in doc["recordSet"]}
        assert set(sets) == {"train", "test"}
        assert "params/c" in sets["test"] and "labels/objective" in sets["train"]
        assert ("labels/objective" in sets["test"]) == (stem == "pub")
        assert doc["distribution"][0]["contentUrl"] == f"https://example.org/bb/{stem}.h5"
        card = (carded / f"{stem}.card.md").read_text()
        assert "## How the labels were certified" in card and "@misc{bilevelbench" in card
        assert ("2 hidden" in card) == (stem == "pub.public")
