"""``bilevelbench fetch`` and ``bilevelbench release``: released datasets in and out."""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
from pathlib import Path

from bilevelbench.errors import UsageError

log = logging.getLogger("bilevelbench")


def _add_fetch(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "fetch", help="download released datasets into the cache, verifying size and SHA-256",
        description="Download released instance sets named in datasets/registry.toml into the cache "
                    "($BILEVELBENCH_DATA, else the user cache directory). A file is written under a temporary "
                    "name, checked against the registry's size and SHA-256, then moved into place; interrupted "
                    "downloads resume; failures are retried with backoff; nothing is ever asked. Prints the "
                    "local path of each file. InstanceSet.open(NAME) does the same on first use.",
        epilog="examples:\n  bilevelbench fetch --list\n  bilevelbench fetch NAME\n"
               "  bilevelbench fetch --all --mirror https://example.org/bb\n"
               "  BILEVELBENCH_DATA=/scratch/bb bilevelbench fetch NAME\n"
               "  bilevelbench fetch NAME --regenerate --workers 2",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("names", nargs="*", metavar="NAME", help="dataset names (see --list)")
    p.add_argument("--all", action="store_true", help="every dataset in the registry")
    p.add_argument("--list", action="store_true", help="list the registry's datasets and exit")
    p.add_argument("--mirror", default=None, metavar="URL",
                   help="base URL tried first (then $BILEVELBENCH_MIRROR, then the registry's mirrors)")
    p.add_argument("--registry", type=Path, default=None, metavar="FILE",
                   help="registry file (default: datasets/registry.toml)")
    p.add_argument("--retries", type=int, default=3, metavar="K", help="extra attempts per mirror (default 3)")
    p.add_argument("--regenerate", action="store_true",
                   help="build the dataset here from its spec instead of downloading it, and check that its content "
                        "digest equals the registry's (so it is provably the released set); needs a source checkout")
    p.add_argument("--workers", type=int, default=1, metavar="K", help="worker processes for --regenerate")
    p.set_defaults(run=_run_fetch)


def _run_fetch(args: argparse.Namespace) -> int:
    from bilevelbench.data.fetch import cache_dir, fetch, regenerate
    from bilevelbench.data.registry import load_registry

    registry = load_registry(args.registry)
    if args.list:
        if not registry.entries:
            print(f"{registry.source}: no released files yet (generate locally: bilevelbench generate "
                  "datasets/NAME.toml --out FILE)")
        for e in sorted(registry.entries.values(), key=lambda e: e.name):
            where = (f"{e.size / 2**20:8.1f} MiB  sha256 {e.sha256[:12]}..." if e.published
                     else "not published: --regenerate")
            print(f"{e.name:<22} {where:<40} content {e.content_digest[7:19] or '—'}...  {e.spec}")
        print(f"mirrors: {', '.join(registry.mirrors) or 'none'}; cache: {cache_dir()}")
        return 0
    if args.workers < 1:
        raise UsageError(f"--workers must be >= 1, got {args.workers}")
    names = sorted(registry.entries) if args.all else args.names
    if not names:
        raise UsageError("name at least one dataset (or --all, or --list to see them)")
    if args.retries < 0:
        raise UsageError(f"--retries must be >= 0, got {args.retries}")
    for name in names:
        if args.regenerate:
            path = regenerate(name, registry=registry, workers=args.workers, quiet=args.quiet)
        else:
            path = fetch(name, registry=registry, mirror=args.mirror, retries=args.retries, progress=not args.quiet)
        print(path)
    return 0


def _add_release(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "release", help="generate every dataset spec, verify every label, write the files and registry entries",
        description="For each spec in SPECS (a folder of datasets/*.toml, or spec files), generate the dataset "
                    "into OUT (resumable: rerun after an interruption), re-check every label with "
                    "'bilevelbench verify', and write OUT/registry.toml with each file's size, SHA-256 and content "
                    "digest. Per-instance solve times, which no rerun reproduces, are moved to "
                    "OUT/NAME.timings.json and stored as NaN in the HDF5 file. The SHA-256 also depends on the "
                    "package versions recorded in the file; the content digest (bilevelbench info) does not, and "
                    "is what a regeneration elsewhere must match. Upload OUT to any static host and list its URL "
                    "under mirrors (or pass --mirror) to serve it.",
        epilog="example:\n  bilevelbench release datasets/ --out release/ --workers 2\n"
               "  bilevelbench release datasets/NAME.toml datasets/OTHER.toml --out release/\n"
               "  bilevelbench release datasets/ --registry-only --out datasets/   # the committed registry",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("specs", nargs="+", type=Path, metavar="SPECS", help="a folder of spec files, or spec files")
    p.add_argument("--out", required=True, type=Path, metavar="DIR", help="output folder (created)")
    p.add_argument("--workers", type=int, default=1, metavar="K", help="worker processes per generation")
    p.add_argument("--mirror", action="append", default=[], metavar="URL",
                   help="base URL to list under mirrors in the written registry (repeatable)")
    p.add_argument("--public", action="store_true",
                   help="also write NAME.public.h5 beside each file: the test split keeps its parameters only (no "
                        "labels, checks or reference episodes), for a scoring service to hold the full file")
    p.add_argument("--cards", action="store_true",
                   help="also write NAME.croissant.json (Croissant JSON-LD: files, fields, splits) and NAME.card.md "
                        "(license, citation, how it was certified, status counts, known limits) for every file; "
                        "needs mlcroissant (pip install 'bilevelbench[cards]')")
    p.add_argument("--registry-only", action="store_true",
                   help="generate nothing: write OUT/registry.toml with an unpublished entry (spec and content digest, "
                        "for 'fetch --regenerate') for every spec that records a content_digest")
    p.set_defaults(run=_run_release)


def spec_files(paths: list[Path]) -> list[Path]:
    """Spec files named directly or found in folders (``registry.toml`` excluded), sorted by name."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found += [p for p in sorted(path.glob("*.toml")) if p.name != "registry.toml"]
        elif path.is_file() and path.suffix == ".toml":
            found.append(path)
        else:
            raise UsageError(f"{str(path)!r} is neither a folder nor a .toml spec file")
    if not found:
        raise UsageError("no spec files found")
    return found


def release(specs: list[Path], out: Path, workers: int = 1, mirrors: list[str] | None = None,
            quiet: bool = False, public: bool = False, cards: bool = False) -> Path:
    """Generate, verify and register every spec; returns the written registry path.

    With ``public``, each file also gets a public copy ``NAME.public.h5`` whose test split keeps its parameters
    only (:func:`bilevelbench.data.redact.public_release`), registered as ``NAME-public``. With ``cards``, every
    written file gets ``NAME.croissant.json`` and ``NAME.card.md`` (:mod:`bilevelbench.data.croissant`).
    """
    import h5py
    import numpy as np
    import pooch

    from bilevelbench.data.instance_set import InstanceSet
    from bilevelbench.data.registry import RegistryEntry, render_registry
    from bilevelbench.data.spec import load_spec
    from bilevelbench.verify import verify_instance_set

    out.mkdir(parents=True, exist_ok=True)
    entries = []
    for spec_path in specs:
        spec = load_spec(spec_path)
        target = out / f"{spec.name}.h5"
        if not target.exists():
            cmd = [sys.executable, "-m", "bilevelbench.cli"] + (["-q"] if quiet else []) + [
                "generate", "--spec", str(spec_path), "--out", str(target), "--workers", str(workers)]
            log.info("release: %s", " ".join(cmd))
            proc = subprocess.run(cmd, check=False)
            if proc.returncode != 0:
                raise UsageError(f"generating {spec.name} failed (exit {proc.returncode}); rerun to resume")
            _strip_timings(target, out / f"{spec.name}.timings.json", h5py, np)
        report = verify_instance_set(InstanceSet.open(target))
        if not report.ok:
            raise UsageError(f"{spec.name}: {len(report.failures)} label(s) failed verification (first: "
                             f"{report.failures[0]}); nothing is registered")
        from bilevelbench.data.fetch import file_content_digest

        entries.append(RegistryEntry(name=spec.name, file=target.name, size=target.stat().st_size,
                                     sha256=pooch.file_hash(str(target)), spec=f"datasets/{spec_path.name}",
                                     content_digest=file_content_digest(target)))
        log.info("release: %s verified (%d labels), %d bytes", spec.name, report.checked, target.stat().st_size)
        if public:
            from bilevelbench.data.redact import public_release

            copy = public_release(target, out / f"{spec.name}.public.h5")
            entries.append(RegistryEntry(name=f"{spec.name}-public", file=copy.name, size=copy.stat().st_size,
                                         sha256=pooch.file_hash(str(copy)), content_digest=file_content_digest(copy)))
        if cards:
            from bilevelbench.data.croissant import write_cards

            for written in [target] + ([out / f"{spec.name}.public.h5"] if public else []):
                write_cards(written, out, url=f"{mirrors[0].rstrip('/')}/{written.name}" if mirrors else None)
    registry = out / "registry.toml"
    registry.write_text(render_registry(entries, mirrors or []))
    return registry


def _strip_timings(path: Path, sidecar: Path, h5py, np) -> None:
    """Move ``/labels/solve_time`` to a JSON sidecar and store NaN in its place (the bytes then depend on the
    content and the recorded package versions only)."""
    with h5py.File(path, "r+") as f:
        if "labels/solve_time" not in f:
            return
        times = f["labels/solve_time"][()]
        sidecar.write_text(json.dumps({"file": path.name, "solve_time_seconds": [
            None if not np.isfinite(t) else float(t) for t in times]}))
        f["labels/solve_time"][...] = np.nan
    # rewrite through the atomic writer so the bytes depend on the content only
    from bilevelbench.data.hdf5 import read_instance_set, write_instance_set

    write_instance_set(path, read_instance_set(path), overwrite=True)


def _run_release(args: argparse.Namespace) -> int:
    if args.registry_only:
        from bilevelbench.data.registry import render_registry, spec_entries

        args.out.mkdir(parents=True, exist_ok=True)
        entries = spec_entries(spec_files(args.specs), Path.cwd())
        (args.out / "registry.toml").write_text(render_registry(entries, args.mirror))
        print(f"wrote {args.out / 'registry.toml'}: {len(entries)} unpublished entries (fetch NAME --regenerate)")
        return 0
    if args.workers < 1:
        raise UsageError(f"--workers must be >= 1, got {args.workers}")
    if args.cards:
        from bilevelbench.data.croissant import _mlcroissant

        _mlcroissant()                                  # fail before generating anything
    registry = release(spec_files(args.specs), args.out, args.workers, args.mirror, args.quiet, args.public,
                       args.cards)
    print(f"wrote {registry}; upload {args.out}/ to a static host and list its URL under mirrors")
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Register ``fetch`` and ``release``."""
    _add_fetch(sub)
    _add_release(sub)
