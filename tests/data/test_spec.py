"""Dataset spec files: the committed ones load, malformed ones get a clear error, and generate uses them."""

from __future__ import annotations

from pathlib import Path

import pytest

from bilevelbench.data.instance_set import InstanceSet
from bilevelbench.data.spec import load_spec
from bilevelbench.errors import MissingDataError, SchemaError
from tests.test_cli import assert_one_line_error, run

ROOT = Path(__file__).resolve().parents[2]
GOOD = 'name = "t"\nfamily = "bqp"\nsize = "3x2"\nseed = 3\nn_train = 2\nn_valid = 0\nn_test = 3\n'


def test_committed_specs_load():
    specs = sorted(p for p in (ROOT / "datasets").glob("*.toml") if p.name != "registry.toml")
    assert {p.stem for p in specs} >= {"bqp-3x2", "bqp-6x4", "bqp-9x6", "bqp-12x9", "mimpc-robot", "mimpc-tank",
                                       "dcopf-case57", "dcopf-case118", "dcopf-case300", "ccd-twotank", "ccd-hvac",
                                       "knapsack-20x2"}
    for path in specs:
        spec = load_spec(path)
        assert spec.name == path.stem
        if spec.family == "bqp":
            assert spec.n_test == 1000
        elif spec.family == "dcopf":
            from bilevelbench.families.dcopf.power import SHIPPED_CASES

            assert spec.options["case"] in SHIPPED_CASES and spec.n_train >= 2000 and spec.n_test >= 500
        elif spec.family == "knapsack":
            assert (spec.n_train, spec.n_valid, spec.n_test) == (2000, 200, 500) and spec.content_digest
        elif spec.family == "spi-grid":         # issue 19: the paper's sizes, budget 3
            assert spec.options["size"] in (12, 18, 24) and spec.options["budget"] == 3 and spec.n_test >= 500
        elif spec.family == "tsp-interdiction":  # issue 19: the paper's sizes, one removed edge
            assert spec.options["size"] in (8, 10, 12) and spec.options["budget"] == 1 and spec.content_digest
        elif spec.family == "adv-control":    # issue 19: horizons 5 and 10, certified test labels
            assert spec.options["horizon"] in (5, 10) and spec.n_test >= 200 and spec.content_digest
        elif spec.family.startswith("ccd-"):  # issue 9: the paper's 10000 / 1000 / 1000, best-known test labels
            assert (spec.n_train, spec.n_valid, spec.n_test) == (10000, 1000, 1000)
            assert spec.options["label_splits"] == ["test"] and spec.options["backend"] == "search"
        else:  # issue 5: at least 2000 train / 500 test, with closed-loop reference episodes
            assert spec.n_train >= 2000 and spec.n_test >= 500 and spec.options["closed_loop_episodes"] > 0


def test_bqp_spec_needs_a_size(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text(GOOD.replace('size = "3x2"\n', ''))
    with pytest.raises(SchemaError, match="--size is required for bqp"):
        load_spec(path)


@pytest.mark.parametrize(("text", "message"), [
    ("name = ", "not valid TOML"),
    (GOOD.replace('seed = 3\n', ''), "missing keys ['seed']"),
    (GOOD + "colour = 1\n", "unknown keys ['colour']"),
    (GOOD.replace("seed = 3", 'seed = "3"'), "seed = '3'; expected int"),
    (GOOD.replace("seed = 3", "seed = true"), "expected int"),
])
def test_bad_specs(tmp_path, text, message):
    path = tmp_path / "s.toml"
    path.write_text(text)
    with pytest.raises(SchemaError, match=None) as info:
        load_spec(path)
    assert message in str(info.value)
    with pytest.raises(MissingDataError):
        load_spec(tmp_path / "absent.toml")


def test_generate_from_a_spec_stores_its_name(tmp_path):
    (tmp_path / "t.toml").write_text(GOOD)
    proc = run("generate", "t.toml", "--out", "t.h5", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    ds = InstanceSet.open(tmp_path / "t.h5")
    assert ds.meta["name"] == "t" and ds.meta["seed"] == 3 and len(ds.split("test")) == 3
    assert_one_line_error(run("generate", "t.toml", "--seed", "4", "--out", "u.h5", cwd=tmp_path),
                          "--seed cannot be combined with a spec file")
    assert_one_line_error(run("generate", "bqp", "--out", "u.h5", cwd=tmp_path), "--size is required")


def test_schema_version_and_backend_are_checked(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text(GOOD + "schema_version = 99\n")
    with pytest.raises(SchemaError, match="schema_version = 99"):
        load_spec(path)
    path.write_text(GOOD + 'backend = "highs"\n')
    with pytest.raises(SchemaError, match="expected one of scip, gurobi"):
        load_spec(path)
    path.write_text(GOOD + 'schema_version = 1\nbackend = "scip"\n')
    spec = load_spec(path)
    assert spec.schema_version == 1 and spec.options["backend"] == "scip"
