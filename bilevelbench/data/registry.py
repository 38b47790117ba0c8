"""The registry of released instance-set files (``datasets/registry.toml``).

Each entry names a dataset, its file, the exact size in bytes and SHA-256 of the released bytes, and the spec
that regenerates it. ``mirrors`` lists base URLs tried in order (a file ``F`` is fetched from ``MIRROR/F``).

Example::

    schema = 1
    mirrors = ["https://example.org/bilevelbench/v1"]

    [[file]]
    name = "NAME"
    file = "NAME.h5"
    size = 3686507
    sha256 = "8f2c..."
    spec = "datasets/NAME.toml"
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from bilevelbench.errors import MissingDataError, SchemaError

REGISTRY_SCHEMA = 1
_SHA = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class RegistryEntry:
    """One released file."""

    name: str
    file: str
    size: int
    sha256: str
    spec: str = ""
    #: The file's content digest (``bilevelbench info``): what a regeneration from ``spec`` must give.
    content_digest: str = ""


@dataclass(frozen=True)
class Registry:
    """All released files and the mirrors that serve them."""

    entries: dict[str, RegistryEntry]
    mirrors: tuple[str, ...] = ()
    source: str = ""

    def entry(self, name: str) -> RegistryEntry:
        """The entry of ``name`` (a dataset name or its file name).

        Raises
        ------
        MissingDataError
            If the registry has no such dataset; the message lists the names it has.
        """
        if name in self.entries:
            return self.entries[name]
        for entry in self.entries.values():
            if entry.file == name:
                return entry
        raise MissingDataError(f"no released dataset named {name!r} in {self.source or 'the registry'}; known: "
                               f"{', '.join(sorted(self.entries)) or 'none'}")


def default_registry_path() -> Path:
    """``datasets/registry.toml`` of the source tree, else the copy installed with the package."""
    tree = Path(__file__).resolve().parents[2] / "datasets" / "registry.toml"
    if tree.is_file():
        return tree
    return Path(str(resources.files("bilevelbench") / "registry.toml"))


def load_registry(path: Path | str | None = None) -> Registry:
    """Read and validate a registry file (``None``: :func:`default_registry_path`).

    Raises
    ------
    MissingDataError
        If the file does not exist.
    SchemaError
        If it is not TOML or an entry is malformed (the message names the entry and the field).
    """
    path = Path(path) if path is not None else default_registry_path()
    if not path.is_file():
        raise MissingDataError(f"dataset registry {str(path)!r} does not exist")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SchemaError(f"{str(path)!r} is not valid TOML ({exc})") from None
    if data.get("schema") != REGISTRY_SCHEMA:
        raise SchemaError(f"{str(path)!r}: expected schema = {REGISTRY_SCHEMA}; received {data.get('schema')!r}")
    mirrors = data.get("mirrors", [])
    if not isinstance(mirrors, list) or not all(isinstance(m, str) and m for m in mirrors):
        raise SchemaError(f"{str(path)!r}: mirrors must be a list of base URLs; received {mirrors!r}")
    entries: dict[str, RegistryEntry] = {}
    for i, raw in enumerate(data.get("file", [])):
        where = f"{str(path)!r}, [[file]] #{i + 1}"
        if not isinstance(raw, dict):
            raise SchemaError(f"{where}: expected a table")
        unknown = sorted(set(raw) - {"name", "file", "size", "sha256", "spec", "content_digest"})
        if unknown:
            raise SchemaError(f"{where}: unknown keys {unknown}")
        for key, kind in (("name", str), ("file", str), ("size", int), ("sha256", str)):
            if not isinstance(raw.get(key), kind) or isinstance(raw.get(key), bool):
                raise SchemaError(f"{where}: expected {key} to be {kind.__name__}; received {raw.get(key)!r}")
        if raw["size"] <= 0 or not _SHA.fullmatch(raw["sha256"]):
            raise SchemaError(f"{where}: expected a positive size and a 64-digit lowercase hex sha256")
        if "/" in raw["file"] or raw["file"].startswith("."):
            raise SchemaError(f"{where}: file must be a plain file name, got {raw['file']!r}")
        if raw["name"] in entries:
            raise SchemaError(f"{where}: duplicate name {raw['name']!r}")
        entries[raw["name"]] = RegistryEntry(name=raw["name"], file=raw["file"], size=raw["size"],
                                             sha256=raw["sha256"], spec=str(raw.get("spec", "")),
                                             content_digest=str(raw.get("content_digest", "")))
    return Registry(entries=entries, mirrors=tuple(m.rstrip("/") for m in mirrors), source=str(path))


def render_registry(entries: list[RegistryEntry], mirrors: list[str] | tuple[str, ...] = ()) -> str:
    """The TOML text of a registry (what ``bilevelbench release`` writes)."""
    lines = ["# Released bilevelbench instance-set files: exact size and SHA-256 of each, and the spec that",
             "# regenerates it. A file F is fetched from MIRROR/F; BILEVELBENCH_MIRROR or --mirror go first.",
             f"schema = {REGISTRY_SCHEMA}",
             "mirrors = [" + ", ".join(f'"{m}"' for m in mirrors) + "]", ""]
    for e in sorted(entries, key=lambda e: e.name):
        lines += ["[[file]]", f'name = "{e.name}"', f'file = "{e.file}"', f"size = {e.size}",
                  f'sha256 = "{e.sha256}"']
        lines += [f'spec = "{e.spec}"'] if e.spec else []
        lines += [f'content_digest = "{e.content_digest}"'] if e.content_digest else []
        lines.append("")
    return "\n".join(lines)
