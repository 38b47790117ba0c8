"""The family contract: the checks every registered family must pass, built-in or plugin.

Each check takes a :class:`TinySet` (a family and a tiny data set generated from its ``tiny_args``) and raises
``AssertionError`` with a message saying what was expected and what happened. bilevelbench's own test suite runs
every check on every registered family (``tests/contract``); a plugin author runs them on a new family with::

    from bilevelbench.testing.contract import CHECKS, make_tiny_set

    def test_my_family_meets_the_contract(tmp_path):
        tiny = make_tiny_set("my-family", tmp_path)
        for check in CHECKS:
            check(tiny)

Everything goes through the command line (in process, as ``bilevelbench ...`` would run) and the public file
formats: generate, info (content digest), verify, verify --oracle, evaluate the family's exact solver,
check-solver, score a predictions file, render the leaderboard, and reject bad input with one clear line.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from bilevelbench.core.family import Family
from bilevelbench.core.registry import get_family
from bilevelbench.core.statuses import SOLUTION_STATUSES

#: The exact solver of every family, in the module form a submission outside this repository can use.
EXACT = "bilevelbench.exact_solver:ExactSolver"
#: Largest gap the family's exact solver and its own labels may show.
EXACT_GAP = 1e-6


@dataclass
class CliResult:
    """Exit status and output of one in-process ``bilevelbench`` run."""

    rc: int
    out: str
    err: str


def run_cli(*args: str) -> CliResult:
    """Run ``bilevelbench ARGS`` in this process; an exception escaping ``main`` (a traceback) fails the check."""
    from bilevelbench.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main(["-q", *args])
        except SystemExit as exc:           # argparse: --help (0) and usage errors (2)
            rc = exc.code if isinstance(exc.code, int) else 2
    return CliResult(rc, out.getvalue(), err.getvalue())


def one_line_error(result: CliResult, rc: int, *fragments: str) -> None:
    """Assert that ``result`` failed with exit status ``rc`` and one line on stderr containing ``fragments``."""
    lines = [line for line in result.err.splitlines() if line.strip()]
    assert result.rc == rc, f"expected exit status {rc}, got {result.rc}; stderr: {result.err!r}"
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}: {result.err!r}"
    assert "Traceback" not in result.err
    for fragment in fragments:
        assert fragment in lines[0], f"expected {fragment!r} in the error line {lines[0]!r}"


@dataclass
class TinySet:
    """A family's tiny data set and the folder the checks may write into."""

    family: Family
    path: Path
    workdir: Path

    def open(self):
        from bilevelbench.data.instance_set import InstanceSet

        return InstanceSet.open(self.path)


def make_tiny_set(name: str, workdir: Path, file_name: str | None = None) -> TinySet:
    """Generate ``name``'s tiny set (``Family.tiny_args``) into ``workdir`` through ``bilevelbench generate``."""
    family = get_family(name)
    assert family.tiny_args, f"family {name!r} declares no tiny_args: the contract suite cannot make its test set"
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / (file_name or f"{name}-tiny.h5")
    result = run_cli("generate", name, *family.tiny_args, "--out", str(path), "--overwrite")
    assert result.rc == 0, f"generate {name} {' '.join(family.tiny_args)} failed: {result.err}"
    assert path.is_file() and not path.with_name(path.name + ".partial").exists()
    return TinySet(family, path, workdir)


# -- the checks ---------------------------------------------------------------------------------------------
def check_file_matches_descriptor(tiny: TinySet) -> None:
    """The file names the family, its generator version and its fields, and the structure rebuilds."""
    ds = tiny.open()
    f = tiny.family
    assert ds.family == f.name, f"file family {ds.family!r}, expected {f.name!r}"
    assert str(ds.meta["generator_version"]) == str(f.generator_version), (
        f"file generator_version {ds.meta['generator_version']!r}, descriptor {f.generator_version!r}")
    assert set(f.param_fields) <= set(ds.params), f"parameters {sorted(ds.params)} lack {f.param_fields}"
    assert set(f.label_fields) <= set(ds.labels), f"labels {sorted(ds.labels)} lack {f.label_fields}"
    assert f.decision in ds.labels, f"the decision {f.decision!r} is not a label field"
    y_dim, z_dim = ds.decision_dims
    assert ds.labels[f.decision].shape[1:] == (y_dim,), "the decision label's width differs from decision_dims"
    assert (z_dim > 0) == (f.follower is not None), "a follower decision needs a name (Family.follower)"
    test = ds.split("test")
    assert len(test) > 0 and np.isin(test.labels["status"].astype(str), SOLUTION_STATUSES).any(), (
        "the tiny set has no labelled test instance")
    batch = next(test.batches(2))
    assert all(key in batch for key in (*f.param_fields, *f.label_fields))


def check_sample(tiny: TinySet) -> None:
    """``Family.sample`` draws fresh parameters shaped like the file's, finite, reproducible from the seed."""
    ds = tiny.open()
    first = tiny.family.sample(ds, np.random.default_rng(7), 3)
    again = tiny.family.sample(ds, np.random.default_rng(7), 3)
    assert set(first) == set(tiny.family.param_fields), f"sample() gave {sorted(first)}"
    for key, value in first.items():
        assert value.shape == (3, *ds.params[key].shape[1:]), f"{key}: shape {value.shape}"
        assert np.all(np.isfinite(value)) and np.array_equal(value, again[key])


def check_info_and_digest(tiny: TinySet) -> None:
    """``info`` prints the content digest, and a second generation of the same arguments has the same one."""
    first = run_cli("info", str(tiny.path))
    assert first.rc == 0 and "content digest  sha256:" in first.out, first.err
    again = make_tiny_set(tiny.family.name, tiny.workdir, f"{tiny.family.name}-again.h5")
    second = run_cli("info", str(again.path))
    digest = [line for line in first.out.splitlines() if "content digest" in line]
    assert digest == [line for line in second.out.splitlines() if "content digest" in line], (
        "two generations of the same arguments have different content digests")


def check_verify(tiny: TinySet) -> None:
    """``verify`` passes every label of the file."""
    result = run_cli("verify", str(tiny.path))
    assert result.rc == 0 and ": OK" in result.out, f"verify failed: {result.out} {result.err}"


def check_verify_oracle(tiny: TinySet) -> str:
    """``verify --oracle`` re-solves every certified label, or fails with exit status 2 and one line saying why
    the oracle cannot run (the family has none, or its second solver is missing here), never a silent OK.

    Returns ``"ran"`` or ``"unavailable"``.
    """
    result = run_cli("verify", "--oracle", str(tiny.path))
    certified = int(np.sum(tiny.open().labels["status"].astype(str) == "certified_optimal"))
    if result.rc == 0:
        assert tiny.family.oracle_method, "verify --oracle passed a family that declares no oracle_method"
        assert f"re-solved {certified}:" in result.out, f"expected {certified} oracle re-solves: {result.out}"
        return "ran"
    one_line_error(result, 2)
    reason = result.err.lower()
    assert ("no independent exact method" in reason or "cannot run here" in reason or "oracle" in reason), (
        f"verify --oracle failed without saying that the oracle is unavailable: {result.err}")
    return "unavailable"


def check_evaluate_exact(tiny: TinySet) -> dict:
    """The family's exact solver, run by ``evaluate`` in the sandbox, scores gap ~0 on every test instance."""
    out = tiny.workdir / "records" / f"{tiny.family.name}-exact.json"
    out.parent.mkdir(exist_ok=True)
    result = run_cli("evaluate", "--dataset", str(tiny.path), "--solver", EXACT, "--warmup", "0", "--batch-size",
                     "0", "--exact-instances", "0", "--out", str(out), "--overwrite")
    record = json.loads(out.read_text())
    assert result.rc == 0 and record["status"] == "complete", f"evaluate exact: {record['failures']} {result.err}"
    assert record["metrics"]["gap_mean"] <= EXACT_GAP, f"exact solver gap {record['metrics']['gap_mean']}"
    return record


def check_check_solver(tiny: TinySet) -> None:
    """``check-solver`` runs the exact solver through every contract check and finds it conforming."""
    result = run_cli("check-solver", EXACT, "--dataset", str(tiny.path), "--instances", "2")
    assert result.rc == 0, f"check-solver failed: {result.out} {result.err}"
    assert "FAIL" not in result.out and "meets the contract" in result.out, result.out


def check_score_predictions(tiny: TinySet) -> None:
    """A predictions file holding the labels scores gap ~0; a malformed one is refused with one line; NaN rows
    become recorded failures."""
    from bilevelbench.evaluate.predictions import write_predictions

    ds = tiny.open()
    test = ds.split("test")
    y = np.asarray(test.labels[tiny.family.decision], float)
    rows = np.flatnonzero(np.isin(test.labels["status"].astype(str), SOLUTION_STATUSES))
    good = write_predictions(tiny.workdir / "labels-as-predictions.h5", y[rows], rows, solver_name="labels")
    out = tiny.workdir / "records" / f"{tiny.family.name}-labels.json"
    out.parent.mkdir(exist_ok=True)
    result = run_cli("score", "--dataset", str(tiny.path), "--predictions", str(good), "--out", str(out),
                     "--overwrite")
    record = json.loads(out.read_text())
    assert record["metrics"]["n_scored"] == rows.size, f"scored {record['metrics']['n_scored']} of {rows.size}"
    assert record["metrics"]["gap_max"] <= EXACT_GAP, f"the labels score a gap of {record['metrics']['gap_max']}"
    assert result.rc == (0 if rows.size == len(test) else 1)
    wide = write_predictions(tiny.workdir / "too-wide.h5", np.zeros((1, y.shape[1] + 1)), np.array([0]))
    one_line_error(run_cli("score", "--dataset", str(tiny.path), "--predictions", str(wide)), 2)
    nan = write_predictions(tiny.workdir / "nan.h5", np.full((1, y.shape[1]), np.nan), np.array([0]))
    partial = run_cli("score", "--dataset", str(tiny.path), "--predictions", str(nan))
    assert partial.rc == 1 and "contains NaN" in partial.err, partial.err


def check_service_scoring(tiny: TinySet) -> None:
    """The scoring service takes a complete predictions file for the family's test split (upload check), scores it
    in its scorer exactly as ``score`` does, and reports the public subset alone; a NaN row is refused."""
    from bilevelbench.evaluate.evaluator import score_predictions
    from bilevelbench.evaluate.predictions import write_predictions
    from bilevelbench.leaderboard.records import parse_record
    from bilevelbench.serve.catalog import public_rows
    from bilevelbench.serve.job import score_submission
    from bilevelbench.serve.uploads import UploadRules, check_upload

    ds = tiny.open()
    test = ds.split("test")
    n = len(test)
    y = np.nan_to_num(np.asarray(test.labels[tiny.family.decision], float))
    dy, dz = ds.decision_dims
    good = write_predictions(tiny.workdir / "service-upload.h5", y, np.arange(n), solver_name="labels")
    rules = UploadRules(dataset=tiny.family.name, split="test", y_dim=dy, z_dim=dz, n_instances=n, sha256=())
    verdict = check_upload(str(good), rules)
    assert verdict.get("ok"), f"the service refused a complete predictions file: {verdict}"
    rows = public_rows("contract", ds.content_digest(), n, 0.5)
    result = score_submission({"id": "0" * 32, "team": "contract", "dataset": str(tiny.path),
                               "predictions": str(good), "split": "test", "public_rows": rows.tolist()})
    public = parse_record(result["public"], Path("public.json"))
    full = parse_record(result["full"], Path("full.json"))
    assert public.dataset.n_instances == rows.size and full.dataset.n_instances == n, (
        f"expected {rows.size} public and {n} hidden instances; received {public.dataset.n_instances} and "
        f"{full.dataset.n_instances}")
    direct = score_predictions(tiny.path, good)
    assert result["full"]["metrics"]["gap_mean"] == direct["metrics"]["gap_mean"], (
        "the service's full score differs from bilevelbench score on the same file")
    expected_public = [direct["per_instance"]["gap"][i] for i in rows]
    assert list(public.per_instance["gap"]) == expected_public, "the public record is not the subset's scores"
    y_nan = y.copy()
    y_nan[0, 0] = np.nan
    bad = write_predictions(tiny.workdir / "service-nan.h5", y_nan, np.arange(n))
    verdict = check_upload(str(bad), rules)
    assert not verdict["ok"] and "NaN" in verdict["reason"], f"a NaN row was not refused: {verdict}"


def check_leaderboard(tiny: TinySet) -> None:
    """The records render into LEADERBOARD.md with the family's own columns."""
    records = tiny.workdir / "records"
    if not any(records.glob("*.json")):
        check_score_predictions(tiny)
    out = tiny.workdir / "board"
    result = run_cli("leaderboard", str(records), "--out", str(out))
    assert result.rc == 0, result.err
    from bilevelbench.leaderboard.markdown import escape_markdown

    text = (out / "LEADERBOARD.md").read_text()
    for column in tiny.family.leaderboard_columns:
        assert escape_markdown(column.header) in text, f"column {column.header!r} missing from the leaderboard"


def check_bad_input(tiny: TinySet) -> None:
    """A file of an uninstalled family, a truncated file and another family's option each get one clear line."""
    foreign = tiny.workdir / "foreign.h5"
    shutil.copy(tiny.path, foreign)
    with h5py.File(foreign, "r+") as f:
        f.attrs["family"] = "no-such-family"
    one_line_error(run_cli("info", str(foreign)), 2, "no-such-family")
    one_line_error(run_cli("verify", str(foreign)), 2, "no-such-family")
    truncated = tiny.workdir / "truncated.h5"
    truncated.write_bytes(tiny.path.read_bytes()[:2000])
    one_line_error(run_cli("verify", str(truncated)), 2)
    help_text = run_cli("generate", tiny.family.name, "--help")
    assert help_text.rc == 0 and all(o.flag in help_text.out for o in tiny.family.options)
    result = run_cli("generate", tiny.family.name, "--no-such-option", "1", "--out", str(tiny.workdir / "x.h5"))
    one_line_error(result, 2, "--no-such-option is not an option of " + tiny.family.name)


#: Every check, in the order the suite runs them.
CHECKS = (check_file_matches_descriptor, check_sample, check_info_and_digest, check_verify, check_verify_oracle,
          check_evaluate_exact, check_check_solver, check_score_predictions, check_service_scoring, check_leaderboard,
          check_bad_input)
