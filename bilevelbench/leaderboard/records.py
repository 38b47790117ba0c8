"""Finding, loading and validating results records (``docs/results.md``).

Only the fields the leaderboard renders are validated; everything else in a record is
ignored. A JSON file whose top level is not an object with ``"schema": "bilevelbench-result"``
is not a results record and is skipped silently. A file that cannot be parsed, or a
results record that is newer than this reader or lacks a field the renderer needs, raises
:class:`~bilevelbench.errors.SchemaError` with a one-line message naming the file.
"""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bilevelbench.errors import MissingDataError, SchemaError, UsageError
from bilevelbench.evaluate.records import SCHEMA, SCHEMA_VERSION, STATUSES

logger = logging.getLogger(__name__)

#: The writer's schema name and version (one definition, in ``bilevelbench.evaluate.records``).
SUPPORTED_SCHEMA_VERSION = SCHEMA_VERSION

MODES = ("evaluate", "score", "closed_loop")

#: Metrics that every record carries (their value may be ``null``).
REQUIRED_METRICS = ("gap_mean", "gap_max", "feasible_rate", "coupling_violation_mean")
#: Metrics that only some modes carry; a missing one reads as ``null``. Any other metric whose value is a number
#: or null is kept too (the families' own headline metrics, ``Family.headline_metrics``, shown by their columns).
OPTIONAL_METRICS = ("latency_ms_median", "latency_ms_p95", "throughput_per_s", "speedup_vs_exact",
                    "signed_gap_mean")
#: Per-instance arrays the distribution plot uses.
PER_INSTANCE_KEYS = ("gap", "coupling_violation_l2")


@dataclass(frozen=True)
class DatasetInfo:
    """The ``dataset`` object of a record (the fields the leaderboard shows)."""

    name: str
    sha256: str
    family: str
    size: str
    split: str
    n_instances: int

    @property
    def key(self) -> tuple[str, str]:
        """Records are grouped by this: the dataset's name and the hash of its file."""
        return (self.name, self.sha256)


@dataclass(frozen=True)
class SolverInfo:
    """The ``solver`` object of a record."""

    name: str
    version: str
    spec: str
    description: str
    latency_verified: bool


@dataclass(frozen=True)
class Failure:
    """One entry of a record's ``failures`` list (``instance`` is None for run-level failures)."""

    instance: int | None
    reason: str


@dataclass(frozen=True)
class Record:
    """One validated results record.

    ``metrics`` holds :data:`REQUIRED_METRICS` and :data:`OPTIONAL_METRICS` (``None`` where
    the record has no value); ``per_instance`` holds the arrays of :data:`PER_INSTANCE_KEYS`
    (empty when the record has none). ``path`` is the file the record was read from.
    """

    path: Path
    mode: str
    status: str
    status_reason: str | None
    dataset: DatasetInfo
    solver: SolverInfo
    metrics: dict[str, float | None]
    per_instance: dict[str, tuple[float | None, ...]]
    failures: tuple[Failure, ...]
    date: str
    git_commit: str | None
    git_dirty: bool | None

    @property
    def latency_verified(self) -> bool:
        """True when bilevelbench timed the solver itself (evaluate mode)."""
        return self.mode == "evaluate" and self.solver.latency_verified


def find_record_files(source_dir: Path) -> list[Path]:
    """Every ``*.json`` file below ``source_dir``, sorted.

    Directories whose names start with ``.`` (``.git``, ``.venv``...) are not searched and
    symbolic links to directories are not followed.

    Raises
    ------
    MissingDataError
        If ``source_dir`` does not exist.
    UsageError
        If ``source_dir`` is not a directory.
    """
    source_dir = Path(source_dir)
    if not source_dir.exists():
        raise MissingDataError(f"results directory {str(source_dir)!r} does not exist")
    if not source_dir.is_dir():
        raise UsageError(f"results path {str(source_dir)!r} is not a directory; expected a directory of *.json records")
    found: list[Path] = []
    for root, dirs, files in os.walk(source_dir):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found.extend(Path(root) / f for f in files if f.endswith(".json") and not f.startswith("."))
    return sorted(found)


def load_records(source_dir: Path) -> list[Record]:
    """Load every results record below ``source_dir``.

    Parameters
    ----------
    source_dir : Path
        Directory searched recursively for ``*.json`` files (see :func:`find_record_files`).

    Returns
    -------
    list of Record
        The records, in the sorted order of their paths. Empty when there are none.

    Raises
    ------
    SchemaError
        If a ``*.json`` file is not valid strict JSON, or a results record has a newer
        ``schema_version`` or lacks (or mistypes) a field the leaderboard needs.
    MissingDataError
        If ``source_dir`` does not exist.
    """
    records = []
    for path in find_record_files(source_dir):
        record = load_record(path)
        if record is not None:
            records.append(record)
    logger.info("read %d results record(s) below %s", len(records), source_dir)
    return records


def load_record(path: Path) -> Record | None:
    """Read one file; ``None`` if it is JSON but not a results record.

    Raises
    ------
    SchemaError
        As for :func:`load_records`.
    """
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SchemaError(f"{path}: expected UTF-8 JSON; received undecodable bytes at offset {exc.start}") from None
    except OSError as exc:
        raise SchemaError(f"{path}: expected a readable JSON file; received an error ({exc.strerror})") from None
    try:
        data = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise SchemaError(f"{path}: expected strict JSON; received malformed JSON ({exc.msg} at line {exc.lineno}, "
                          f"column {exc.colno})") from None
    except ValueError as exc:  # NaN / Infinity
        raise SchemaError(f"{path}: expected strict JSON (null for missing values); received {exc}") from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        logger.debug("%s: not a %s record, ignored", path, SCHEMA)
        return None
    return parse_record(data, path)


def parse_record(data: dict[str, Any], path: Path) -> Record:
    """Validate a decoded results record and build a :class:`Record`.

    Raises
    ------
    SchemaError
        If a field the leaderboard needs is missing or has the wrong type, or the
        record's ``schema_version`` is newer than :data:`SUPPORTED_SCHEMA_VERSION`.
    """
    v = _Validator(path)
    version = v.get(data, "schema_version", "an integer", _is_int)
    if version > SUPPORTED_SCHEMA_VERSION or version < 1:
        raise SchemaError(f"{path}: expected schema_version 1 to {SUPPORTED_SCHEMA_VERSION} (this reader's newest); "
                          f"received {version}; upgrade bilevelbench to read it")
    mode = v.get(data, "mode", f"one of {', '.join(MODES)}", lambda x: x in MODES)
    status = v.get(data, "status", f"one of {', '.join(STATUSES)}", lambda x: x in STATUSES)
    status_reason = v.get(data, "status_reason", "a string or null", _is_opt_str, optional=True)

    ds = v.get(data, "dataset", "an object", _is_dict)
    dataset = DatasetInfo(
        name=v.get(ds, "name", "a non-empty string", _is_nonempty_str, where="dataset"),
        sha256=v.get(ds, "sha256", "a non-empty string", _is_nonempty_str, where="dataset"),
        family=v.get(ds, "family", "a string", _is_str, where="dataset"),
        size=v.get(ds, "size", "a string", _is_str, where="dataset"),
        split=v.get(ds, "split", "a string", _is_str, where="dataset"),
        n_instances=v.get(ds, "n_instances", "a non-negative integer", lambda x: _is_int(x) and x >= 0,
                          where="dataset"),
    )

    so = v.get(data, "solver", "an object", _is_dict)
    solver = SolverInfo(
        name=v.get(so, "name", "a non-empty string", _is_nonempty_str, where="solver"),
        version=v.get(so, "version", "a string", _is_str, where="solver"),
        spec=v.get(so, "spec", "a string", _is_str, where="solver"),
        description=v.get(so, "description", "a string", _is_str, where="solver"),
        latency_verified=v.get(so, "latency_verified", "true or false", _is_bool, where="solver"),
    )
    if mode == "score" and solver.latency_verified:
        raise SchemaError(f"{path}: expected solver.latency_verified false in score mode (latency is self-reported); "
                          "received true")

    me = v.get(data, "metrics", "an object", _is_dict)
    metrics: dict[str, float | None] = {}
    for key in REQUIRED_METRICS + OPTIONAL_METRICS:
        value = v.get(me, key, "a number or null", _is_opt_number, where="metrics",
                      optional=key in OPTIONAL_METRICS)
        metrics[key] = None if value is None else float(value)
    for key, value in me.items():
        if key not in metrics and _is_opt_number(value):
            metrics[str(key)] = None if value is None else float(value)
    rate = metrics["feasible_rate"]
    if rate is not None and not 0.0 <= rate <= 1.0:
        raise SchemaError(f"{path}: expected metrics.feasible_rate between 0 and 1; received {rate!r}")

    pi = v.get(data, "per_instance", "an object", _is_dict)
    per_instance: dict[str, tuple[float | None, ...]] = {}
    needs_arrays = status in ("complete", "partial")
    for key in PER_INSTANCE_KEYS:
        # every family reports per-instance gaps; coupling violations exist only where the family has a follower
        required = needs_arrays and key == "gap"
        values = v.get(pi, key, f"a list of {dataset.n_instances} numbers or nulls", _is_opt_number_list,
                       where="per_instance", optional=not required)
        values = [] if values is None else values
        if values and len(values) != dataset.n_instances:
            raise SchemaError(f"{path}: expected per_instance.{key} of length dataset.n_instances = "
                              f"{dataset.n_instances}; received length {len(values)}")
        per_instance[key] = tuple(None if x is None else float(x) for x in values)

    raw_failures = v.get(data, "failures", "a list", lambda x: isinstance(x, list), optional=True) or []
    failures = []
    for i, item in enumerate(raw_failures):
        where = f"failures[{i}]"
        if not isinstance(item, dict):
            raise SchemaError(f"{path}: expected {where} to be an object; received {_short(item)}")
        failures.append(Failure(
            instance=v.get(item, "instance", "an integer or null", lambda x: x is None or _is_int(x), where=where,
                           optional=True),
            reason=v.get(item, "reason", "a string", _is_str, where=where),
        ))

    pr = v.get(data, "provenance", "an object", _is_dict)
    return Record(
        path=path,
        mode=mode,
        status=status,
        status_reason=status_reason,
        dataset=dataset,
        solver=solver,
        metrics=metrics,
        per_instance=per_instance,
        failures=tuple(failures),
        date=v.get(pr, "date", "an ISO 8601 string", _is_str, where="provenance"),
        git_commit=v.get(pr, "git_commit", "a string or null", _is_opt_str, where="provenance"),
        git_dirty=v.get(pr, "git_dirty", "true, false or null", lambda x: x is None or _is_bool(x),
                        where="provenance", optional=True),
    )


class _Validator:
    """Reads one key of a JSON object and raises a SchemaError naming the file when it is wrong."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def get(self, obj: dict, key: str, expected: str, check, where: str = "", optional: bool = False) -> Any:
        name = f"{where}.{key}" if where else key
        if key not in obj:
            if optional:
                return None
            raise SchemaError(f"{self.path}: expected key {name!r} ({expected}); received a record without it")
        value = obj[key]
        if not check(value):
            raise SchemaError(f"{self.path}: expected {name} to be {expected}; received {_short(value)}")
        return value


def _reject_constant(name: str) -> None:
    raise ValueError(f"the non-JSON constant {name}")


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value) if not isinstance(value, (dict, list)) else f"{type(value).__name__} {value!r}"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _is_bool(x: Any) -> bool:
    return isinstance(x, bool)


def _is_str(x: Any) -> bool:
    return isinstance(x, str)


def _is_nonempty_str(x: Any) -> bool:
    return isinstance(x, str) and x.strip() != ""


def _is_opt_str(x: Any) -> bool:
    return x is None or isinstance(x, str)


def _is_dict(x: Any) -> bool:
    return isinstance(x, dict)


def _is_opt_number(x: Any) -> bool:
    if x is None:
        return True
    if not isinstance(x, (int, float)) or isinstance(x, bool):
        return False
    try:
        return math.isfinite(float(x))
    except OverflowError:  # an integer too large for a float
        return False


def _is_opt_number_list(x: Any) -> bool:
    return isinstance(x, list) and all(_is_opt_number(v) for v in x)
