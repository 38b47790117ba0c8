"""Dataset spec files (``datasets/*.toml``): everything needed to regenerate a released instance set.

Example (``datasets/NAME.toml``)::

    name = "NAME"
    family = "FAMILY"           # a registered family (bilevelbench families)
    seed = 1
    n_train = 10000
    n_valid = 200
    n_test = 1000
    description = "..."
    schema_version = 1
    content_digest = "sha256:..."   # optional: what a regeneration must give (bilevelbench info prints it)
    size = "9x6"                # the family's options (bilevelbench generate FAMILY --help lists them)

The keys :data:`REQUIRED` and :data:`COMMON` are the same for every family; every other key must be one of the
family's options (``Family.options``: the same names, types and defaults as its ``generate`` flags).
``bilevelbench generate datasets/NAME.toml --out NAME.h5`` writes the file; the name is stored in the file so
results records carry it.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from bilevelbench.errors import MissingDataError, SchemaError, UsageError

REQUIRED = ("name", "family", "seed", "n_train", "n_valid", "n_test")
COMMON = ("description", "schema_version", "content_digest")
TYPES = {"name": str, "family": str, "seed": int, "n_train": int, "n_valid": int, "n_test": int,
         "description": str, "schema_version": int, "content_digest": str}


@dataclass(frozen=True)
class DatasetSpec:
    """A parsed dataset spec: the common keys, and the family's options (defaults filled in) in ``options``."""

    name: str
    family: str
    seed: int
    n_train: int
    n_valid: int
    n_test: int
    description: str = ""
    #: The HDF5 schema the released file uses (a newer bilevelbench may write a newer one: it then refuses).
    schema_version: int | None = None
    #: The released file's content digest (``bilevelbench info``): a regeneration is checked against it.
    content_digest: str | None = None
    #: The family's options (``Family.options``), every one present.
    options: dict = field(default_factory=dict)
    #: The options the file itself sets (the others are the family's defaults).
    given: tuple[str, ...] = ()


def _type_ok(value, expected: type) -> bool:
    if expected is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, expected) and (expected is bool or not isinstance(value, bool))


def load_spec(path: Path | str) -> DatasetSpec:
    """Read and validate a spec file.

    Raises
    ------
    MissingDataError
        If the file does not exist.
    SchemaError
        If it is not TOML, misses a key, names a family no installed plugin provides, has a key that is neither
        common nor one of the family's options, or a value of the wrong type.
    """
    from bilevelbench.core.family import check_options
    from bilevelbench.core.registry import get_family
    from bilevelbench.data.hdf5 import SCHEMA_VERSION

    path = Path(path)
    if not path.is_file():
        raise MissingDataError(f"dataset spec {str(path)!r} does not exist")
    try:
        data = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SchemaError(f"{str(path)!r} is not valid TOML ({exc})") from None
    missing = [k for k in REQUIRED if k not in data]
    if missing:
        raise SchemaError(f"{str(path)!r}: missing keys {missing}; every spec needs {', '.join(REQUIRED)}")
    for key in (*REQUIRED, *COMMON):
        if key in data and not _type_ok(data[key], TYPES[key]):
            raise SchemaError(f"{str(path)!r}: {key} = {data[key]!r}; expected {TYPES[key].__name__}")
    family = get_family(data["family"])
    option_keys = {o.name for o in family.options}
    unknown = sorted(set(data) - set(REQUIRED) - set(COMMON) - option_keys)
    if unknown:
        raise SchemaError(f"{str(path)!r}: unknown keys {unknown}; expected {', '.join(REQUIRED)}, optionally "
                          f"{', '.join(COMMON)}, and options of {family.name}: {', '.join(sorted(option_keys))}")
    if data.get("schema_version", SCHEMA_VERSION) != SCHEMA_VERSION:
        raise SchemaError(f"{str(path)!r}: schema_version = {data['schema_version']}; this bilevelbench writes schema "
                          f"{SCHEMA_VERSION} (regenerate with the bilevelbench version the spec was written for)")
    given = {k: v for k, v in data.items() if k in option_keys}
    try:
        options = check_options(family, given, f"spec {str(path)!r}")
    except UsageError as exc:
        raise SchemaError(str(exc)) from None
    common = {k: data[k] for k in (*REQUIRED, *COMMON) if k in data}
    return DatasetSpec(**common, options=options, given=tuple(sorted(given)))
