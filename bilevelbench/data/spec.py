"""Dataset spec files (``datasets/*.toml``): everything needed to regenerate a released instance set.

Example (``datasets/bqp-9x6.toml``)::

    name = "bqp-9x6"
    family = "bqp"
    size = "9x6"                # bqp only
    seed = 1
    n_train = 10000
    n_valid = 200
    n_test = 1000
    label_train = false
    description = "..."

``bilevelbench generate datasets/bqp-9x6.toml --out bqp-9x6.h5`` writes the file;
the name is stored in the file so results records carry it.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from bilevelbench.errors import MissingDataError, SchemaError

REQUIRED = ("name", "family", "seed", "n_train", "n_valid", "n_test")
OPTIONAL = ("size", "label_train", "upper_constraints", "lower_constraints", "lower_ridge", "description",
            "closed_loop_episodes", "closed_loop_steps", "time_limit", "case", "load_scale", "load_noise", "penalty",
            "schema_version", "backend", "label_splits")
TYPES = {"name": str, "family": str, "size": str, "seed": int, "n_train": int, "n_valid": int, "n_test": int,
         "label_train": bool, "upper_constraints": int, "lower_constraints": int, "lower_ridge": float,
         "description": str, "closed_loop_episodes": int, "closed_loop_steps": int, "time_limit": float,
         "case": str, "load_scale": list, "load_noise": float, "penalty": float, "schema_version": int,
         "backend": str, "label_splits": list}


@dataclass(frozen=True)
class DatasetSpec:
    """A parsed dataset spec."""

    name: str
    family: str
    seed: int
    n_train: int
    n_valid: int
    n_test: int
    size: str | None = None
    label_train: bool = True
    upper_constraints: int | None = None
    lower_constraints: int | None = None
    lower_ridge: float = 0.1
    description: str = ""
    closed_loop_episodes: int = 0
    closed_loop_steps: int = 0
    time_limit: float | None = None
    case: str | None = None
    load_scale: list | None = None
    load_noise: float | None = None
    penalty: float | None = None
    #: The HDF5 schema the released file uses (a newer bilevelbench may write a newer one: it then refuses).
    schema_version: int | None = None
    #: Exact solver of the labels (bqp: scip or gurobi; mimpc: auto, scip or gurobi; dcopf: highs).
    backend: str | None = None
    #: Splits that get labels (the control co-design families: best-known labels are costly; default test).
    label_splits: list | None = None


def load_spec(path: Path | str) -> DatasetSpec:
    """Read and validate a spec file.

    Raises
    ------
    MissingDataError
        If the file does not exist.
    SchemaError
        If it is not TOML, misses a key, has an unknown key or a value of the wrong type.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingDataError(f"dataset spec {str(path)!r} does not exist")
    try:
        data = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SchemaError(f"{str(path)!r} is not valid TOML ({exc})") from None
    missing = [k for k in REQUIRED if k not in data]
    unknown = sorted(set(data) - set(REQUIRED) - set(OPTIONAL))
    if missing or unknown:
        raise SchemaError(f"{str(path)!r}: missing keys {missing}, unknown keys {unknown}; expected "
                          f"{', '.join(REQUIRED)} and optionally {', '.join(OPTIONAL)}")
    for key, value in data.items():
        expected = TYPES[key]
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) if expected is float else (
            isinstance(value, expected) and (expected is bool or not isinstance(value, bool)))
        if not ok:
            raise SchemaError(f"{str(path)!r}: {key} = {value!r}; expected {expected.__name__}")
    if data["family"] == "bqp" and "size" not in data:
        raise SchemaError(f"{str(path)!r}: a bqp spec needs size = \"MxN\"")
    if data["family"] == "dcopf" and "case" not in data:
        raise SchemaError(f"{str(path)!r}: a dcopf spec needs case = \"pglib_opf_case118_ieee\" (a shipped name or a path)")
    from bilevelbench.data.hdf5 import SCHEMA_VERSION

    if data.get("schema_version", SCHEMA_VERSION) != SCHEMA_VERSION:
        raise SchemaError(f"{str(path)!r}: schema_version = {data['schema_version']}; this bilevelbench writes schema "
                          f"{SCHEMA_VERSION} (regenerate with the bilevelbench version the spec was written for)")
    allowed = {"bqp": ("scip", "gurobi"), "dcopf": ("highs",), "ccd-twotank": ("search",),
               "ccd-hvac": ("search",)}.get(data["family"], ("auto", "scip", "gurobi"))
    if "backend" in data and data["backend"] not in allowed:
        raise SchemaError(f"{str(path)!r}: backend = {data['backend']!r}; expected one of {', '.join(allowed)} "
                          f"for {data['family']}")
    scale = data.get("load_scale")
    if scale is not None and (len(scale) != 2 or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                          for v in scale)):
        raise SchemaError(f"{str(path)!r}: load_scale = {scale!r}; expected two numbers [LO, HI]")
    return DatasetSpec(**data)
