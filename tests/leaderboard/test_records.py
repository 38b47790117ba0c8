"""Finding and validating results records."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bilevelbench.errors import MissingDataError, SchemaError, UsageError
from bilevelbench.leaderboard import build_leaderboard, load_records
from tests.leaderboard.factory import make_record, write_record


def test_loads_records_and_ignores_other_json(tmp_path: Path):
    write_record(tmp_path, "run/one.json", make_record())
    write_record(tmp_path, "run/two.json", make_record(solver="other", mode="score", latency=None))
    (tmp_path / "package.json").write_text(json.dumps({"name": "x"}))
    (tmp_path / "list.json").write_text("[1, 2, 3]")
    (tmp_path / "other-schema.json").write_text(json.dumps({"schema": "something-else", "schema_version": 9}))
    (tmp_path / "notes.txt").write_text("{not json")
    hidden = tmp_path / ".git"
    hidden.mkdir()
    (hidden / "broken.json").write_text("{not json")
    records = load_records(tmp_path)
    assert [r.solver.name for r in records] == ["exact", "other"]
    score = records[1]
    assert score.mode == "score" and not score.latency_verified
    assert score.metrics["latency_ms_median"] is None and score.metrics["throughput_per_s"] is None
    assert records[0].per_instance["gap"] == (1e-9,) * 6


def _broken(record: dict, how: str) -> dict | str:
    if how == "malformed":
        return '{"schema": "bilevelbench-result", "schema_version": 1,'
    if how == "nan":
        return json.dumps(record).replace('"gap_mean": 1e-09', '"gap_mean": NaN')
    if how == "newer":
        record["schema_version"] = 2
    elif how == "version-string":
        record["schema_version"] = "1"
    elif how == "no-dataset":
        del record["dataset"]
    elif how == "no-solver-name":
        del record["solver"]["name"]
    elif how == "no-gap-mean":
        del record["metrics"]["gap_mean"]
    elif how == "rate-string":
        record["metrics"]["feasible_rate"] = "1.0"
    elif how == "rate-range":
        record["metrics"]["feasible_rate"] = 1.5
    elif how == "bad-status":
        record["status"] = "great"
    elif how == "score-claims-verified":
        record["mode"] = "score"
    elif how == "short-array":
        record["per_instance"]["gap"] = [0.0]
    elif how == "no-date":
        del record["provenance"]["date"]
    return record


@pytest.mark.parametrize("how", ["malformed", "nan", "newer", "version-string", "no-dataset", "no-solver-name",
                                 "no-gap-mean", "rate-string", "rate-range", "bad-status", "score-claims-verified",
                                 "short-array", "no-date"])
def test_bad_record_raises_schema_error_naming_the_file(tmp_path: Path, how: str):
    write_record(tmp_path, "good.json", make_record())
    bad = _broken(make_record(), how)
    path = tmp_path / "sub" / "bad.json"
    path.parent.mkdir()
    path.write_text(bad if isinstance(bad, str) else json.dumps(bad))
    with pytest.raises(SchemaError) as info:
        build_leaderboard(tmp_path, tmp_path / "out")
    message = str(info.value)
    assert str(path) in message
    assert "expected" in message and "received" in message
    assert "\n" not in message
    assert not (tmp_path / "out").exists()


def test_newer_schema_version_says_which_versions_are_read(tmp_path: Path):
    write_record(tmp_path, "new.json", {**make_record(), "schema_version": 7})
    with pytest.raises(SchemaError, match=r"schema_version 1 to 1 .*received 7"):
        load_records(tmp_path)


def test_disagreeing_dataset_descriptions_are_refused(tmp_path: Path):
    write_record(tmp_path, "a.json", make_record())
    write_record(tmp_path, "b.json", make_record(solver="b", n=7))
    with pytest.raises(SchemaError, match="b.json"):
        build_leaderboard(tmp_path, tmp_path / "out")


def test_empty_directory_raises_missing_data(tmp_path: Path):
    (tmp_path / "unrelated.json").write_text("{}")
    with pytest.raises(MissingDataError, match="no results records"):
        build_leaderboard(tmp_path, tmp_path / "out")


def test_missing_source_and_bad_output(tmp_path: Path):
    with pytest.raises(MissingDataError, match="does not exist"):
        build_leaderboard(tmp_path / "nope", tmp_path / "out")
    write_record(tmp_path, "r.json", make_record())
    (tmp_path / "file").write_text("")
    with pytest.raises(UsageError, match="not a directory"):
        build_leaderboard(tmp_path, tmp_path / "file")
    with pytest.raises(UsageError, match="not a directory"):
        build_leaderboard(tmp_path / "r.json", tmp_path / "out")
