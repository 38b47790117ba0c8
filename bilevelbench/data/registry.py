"""The registry of released instance-set files (``datasets/registry.toml``).

Each entry names a dataset, its file, the spec that regenerates it and the content digest a regeneration must
give; a *published* entry also has the exact size in bytes and SHA-256 of the released bytes. ``mirrors`` lists
base URLs tried in order (a file ``F`` is fetched from ``MIRROR/F``). An entry without ``sha256`` has no file on
any mirror yet: ``bilevelbench fetch NAME --regenerate`` builds it from its spec and checks the content digest.

Example::

    schema = 1
    mirrors = ["https://example.org/bilevelbench/v1"]

    [[file]]
    name = "NAME"
    file = "NAME.h5"
    size = 3686507
    sha256 = "8f2c..."
    spec = "datasets/NAME.toml"
    content_digest = "sha256:..."

    [[file]]                      # not published yet: regenerate from the spec
    name = "OTHER"
    file = "OTHER.h5"
    spec = "datasets/OTHER.toml"
    content_digest = "sha256:..."
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
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


@dataclass(frozen=True)
class RegistryEntry:
    """One released file."""

    name: str
    file: str
    size: int = 0
    sha256: str = ""
    spec: str = ""
    #: The file's content digest (``bilevelbench info``): what a regeneration from ``spec`` must give.
    content_digest: str = ""

    @property
    def published(self) -> bool:
        """Whether released bytes exist (a size and SHA-256 to download and check against)."""
        return bool(self.sha256)


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
        specs = self._unreleased_specs()
        if name in specs:
            raise MissingDataError(f"{name!r} is not released: its spec {specs[name]} records no content digest yet, "
                                   f"so no file can be checked against it; generate it yourself: bilevelbench "
                                   f"generate {specs[name]} --out {name}.h5")
        unreleased = f"; specs not released yet: {', '.join(sorted(specs))}" if specs else ""
        raise MissingDataError(f"no released dataset named {name!r} in {self.source or 'the registry'}; known: "
                               f"{', '.join(sorted(self.entries)) or 'none'}{unreleased} (spec files in "
                               f"{self._spec_folder() or 'datasets/'}; bilevelbench fetch --list)")

    def _spec_folder(self) -> Path | None:
        return Path(self.source).parent if self.source else None

    def _unreleased_specs(self) -> dict[str, str]:
        """``{name: path}`` of the spec files beside the registry that it does not list."""
        folder = self._spec_folder()
        if folder is None or not folder.is_dir():
            return {}
        return {path.stem: str(path) for path in sorted(folder.glob("*.toml"))
                if path.name != "registry.toml" and path.stem not in self.entries}


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
        for key, kind in (("name", str), ("file", str)):
            if not isinstance(raw.get(key), kind):
                raise SchemaError(f"{where}: expected {key} to be {kind.__name__}; received {raw.get(key)!r}")
        if "sha256" in raw or "size" in raw:               # published: both, well-formed
            size, sha = raw.get("size"), raw.get("sha256")
            if (not isinstance(size, int) or isinstance(size, bool) or size <= 0 or not isinstance(sha, str)
                    or not _SHA.fullmatch(sha)):
                raise SchemaError(f"{where}: a published entry needs a positive integer size and a 64-digit "
                                  f"lowercase hex sha256; received size {size!r}, sha256 {sha!r}")
        elif not (raw.get("spec") and _DIGEST.fullmatch(str(raw.get("content_digest", "")))):
            raise SchemaError(f"{where}: an entry without sha256 (not published) needs a spec and a content_digest "
                              f"'sha256:<64 hex>' to regenerate it against; received spec {raw.get('spec')!r}, "
                              f"content_digest {raw.get('content_digest')!r}")
        if "/" in raw["file"] or raw["file"].startswith("."):
            raise SchemaError(f"{where}: file must be a plain file name, got {raw['file']!r}")
        if raw["name"] in entries:
            raise SchemaError(f"{where}: duplicate name {raw['name']!r}")
        entries[raw["name"]] = RegistryEntry(name=raw["name"], file=raw["file"], size=int(raw.get("size", 0)),
                                             sha256=str(raw.get("sha256", "")), spec=str(raw.get("spec", "")),
                                             content_digest=str(raw.get("content_digest", "")))
    return Registry(entries=entries, mirrors=tuple(m.rstrip("/") for m in mirrors), source=str(path))


def render_registry(entries: list[RegistryEntry], mirrors: list[str] | tuple[str, ...] = ()) -> str:
    """The TOML text of a registry (what ``bilevelbench release`` writes)."""
    lines = ["# Released bilevelbench instance-set files: the spec that regenerates each and the content digest a",
             "# regeneration must give; published files also have their exact size and SHA-256. A file F is fetched",
             "# from MIRROR/F (BILEVELBENCH_MIRROR or --mirror go first); 'bilevelbench fetch NAME --regenerate'",
             "# builds an unpublished one from its spec.",
             f"schema = {REGISTRY_SCHEMA}",
             "mirrors = [" + ", ".join(f'"{m}"' for m in mirrors) + "]", ""]
    for e in sorted(entries, key=lambda e: e.name):
        lines += ["[[file]]", f'name = "{e.name}"', f'file = "{e.file}"']
        lines += [f"size = {e.size}", f'sha256 = "{e.sha256}"'] if e.published else []
        lines += [f'spec = "{e.spec}"'] if e.spec else []
        lines += [f'content_digest = "{e.content_digest}"'] if e.content_digest else []
        lines.append("")
    return "\n".join(lines)


def spec_entries(spec_paths: list[Path], root: Path) -> list[RegistryEntry]:
    """Unpublished registry entries for the specs that record a content digest (``spec`` relative to ``root``)."""
    from bilevelbench.data.spec import load_spec

    out = []
    for path in spec_paths:
        spec = load_spec(path)
        if spec.content_digest:
            out.append(RegistryEntry(name=spec.name, file=f"{spec.name}.h5",
                                     spec=Path(path).resolve().relative_to(Path(root).resolve()).as_posix(),
                                     content_digest=spec.content_digest))
    return out
