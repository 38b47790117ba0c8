"""Verified downloads of released instance sets into a local cache (pooch underneath).

``fetch("NAME")`` looks the name up in the registry, and unless the cache already holds a file with the
registered SHA-256, downloads it from the first mirror that works:

* into a temporary file next to the target (pooch), moved into place only after its size and SHA-256 match;
* through :class:`ResumableDownloader`: a ``.part`` file in the cache keeps what arrived, and the next attempt
  asks for the rest with an HTTP ``Range`` request (servers that ignore it send everything again);
* with bounded retries and waits (pooch's ``retry_if_failed``: 1 s, 2 s, ... between attempts), a read timeout
  per chunk and a time limit per attempt, so a stalled server cannot hang the caller;
* never asking a question.

The cache is ``$BILEVELBENCH_DATA`` if set, else the platform's user cache (``pooch.os_cache``). Mirrors: the
``mirror`` argument, then ``$BILEVELBENCH_MIRROR``, then the registry's ``mirrors``. When none works and no
cached copy exists, the error says how to build the dataset locally instead: :func:`regenerate` generates it from
its spec into the cache and checks its content digest against the registry, so a regenerated set is provably the
released one (or the call fails and says so).
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path

from bilevelbench.data.registry import Registry, RegistryEntry, load_registry
from bilevelbench.errors import BilevelBenchError, MissingDataError, SchemaError

log = logging.getLogger(__name__)

#: Environment variables that point at the cache and at a mirror.
DATA_ENV = "BILEVELBENCH_DATA"
MIRROR_ENV = "BILEVELBENCH_MIRROR"


class DownloadError(BilevelBenchError):
    """A download failed for good (after the allowed retries, or with an answer that retrying cannot change)."""


class _PermanentHTTPError(MissingDataError):
    """A 4xx answer: retrying the same URL cannot help (not a RequestException, so pooch does not retry)."""


def cache_dir() -> Path:
    """Where fetched files live: ``$BILEVELBENCH_DATA``, else the platform's user cache."""
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env).expanduser()
    import pooch

    return Path(pooch.os_cache("bilevelbench"))


class ResumableDownloader:
    """A pooch downloader that resumes from a ``.part`` file with HTTP ``Range`` and checks the size.

    Parameters
    ----------
    size : int
        Expected size in bytes (a shorter or longer body is an error, retried).
    part : Path
        Where the bytes received so far are kept between attempts.
    read_timeout : float
        Seconds to wait for the next chunk before the attempt fails.
    attempt_seconds : float
        Longest time one attempt may take.
    progress : bool
        Show a tqdm bar on stderr.
    """

    def __init__(self, size: int, part: Path, read_timeout: float = 30.0, attempt_seconds: float = 600.0,
                 progress: bool = False) -> None:
        self.size, self.part = int(size), Path(part)
        self.read_timeout, self.attempt_seconds, self.progress = read_timeout, attempt_seconds, progress

    def __call__(self, url: str, output_file, pooch_obj=None) -> None:
        import requests

        have = self.part.stat().st_size if self.part.exists() else 0
        if have > self.size:
            self.part.unlink()
            have = 0
        headers = {"Range": f"bytes={have}-"} if 0 < have < self.size else {}
        start = time.monotonic()
        if have < self.size:
            with requests.get(url, headers=headers, stream=True, timeout=(10.0, self.read_timeout)) as resp:
                if 400 <= resp.status_code < 500 and resp.status_code not in (408, 416, 429):
                    raise _PermanentHTTPError(f"{url} answered HTTP {resp.status_code}")
                resp.raise_for_status()
                mode = "ab" if resp.status_code == 206 and headers else "wb"
                if mode == "wb":
                    have = 0
                bar = None
                if self.progress:
                    from tqdm import tqdm

                    bar = tqdm(total=self.size, initial=have, unit="B", unit_scale=True, desc=self.part.name[1:-5])
                try:
                    with open(self.part, mode) as f:
                        for chunk in resp.iter_content(chunk_size=1 << 16):
                            f.write(chunk)
                            if bar is not None:
                                bar.update(len(chunk))
                            if time.monotonic() - start > self.attempt_seconds:
                                raise requests.exceptions.Timeout(
                                    f"download attempt took more than {self.attempt_seconds:g} s")
                finally:
                    if bar is not None:
                        bar.close()
        got = self.part.stat().st_size
        if got != self.size:
            if got > self.size:
                self.part.unlink()
            raise ValueError(f"received {got} bytes of {url}, expected {self.size}")
        out = output_file if isinstance(output_file, (str, os.PathLike)) else output_file.name
        shutil.copyfile(self.part, out)
        self.part.unlink()                     # a copy that then fails its hash must not be resumed


def fetch(name: str, *, registry: Registry | None = None, mirror: str | None = None, cache: Path | None = None,
          retries: int = 3, read_timeout: float = 30.0, attempt_seconds: float = 600.0,
          progress: bool = False) -> Path:
    """Return the local path of released dataset ``name``, downloading and verifying it if needed.

    Parameters
    ----------
    name : str
        A dataset name (or file name) from the registry.
    registry : Registry, optional
        Defaults to :func:`bilevelbench.data.registry.load_registry`.
    mirror : str, optional
        Base URL tried first (before ``$BILEVELBENCH_MIRROR`` and the registry's mirrors).
    cache : Path, optional
        Defaults to :func:`cache_dir`.
    retries : int
        Extra attempts per mirror after a failed one (network error, wrong size, wrong hash).

    Raises
    ------
    MissingDataError
        If ``name`` is not in the registry.
    DownloadError
        If no mirror delivered a file with the registered size and SHA-256 (the message lists each mirror's
        failure and how to generate the dataset locally).
    """
    import pooch
    import requests

    registry = registry or load_registry()
    entry = registry.entry(name)
    cache = Path(cache) if cache is not None else cache_dir()
    target = cache / entry.file
    if not entry.published:
        raise DownloadError(f"{entry.name!r} has no published file yet (the registry records its spec and content "
                            f"digest only); {_generate_hint(entry)}")
    if target.is_file() and target.stat().st_size == entry.size and pooch.file_hash(str(target)) == entry.sha256:
        log.debug("cache hit: %s", target)
        return target
    mirrors = [m for m in (mirror, os.environ.get(MIRROR_ENV), *registry.mirrors) if m]
    if not mirrors:
        raise DownloadError(f"no mirror is configured for {entry.name!r} (the registry lists none); pass --mirror "
                            f"URL or set {MIRROR_ENV}, or {_generate_hint(entry)}")
    failures = []
    for base in dict.fromkeys(m.rstrip("/") for m in mirrors):
        store = pooch.create(path=cache, base_url=base + "/", registry={entry.file: f"sha256:{entry.sha256}"},
                             retry_if_failed=retries)
        part = cache / f".{entry.file}.part"
        downloader = ResumableDownloader(entry.size, part, read_timeout, attempt_seconds, progress)
        try:
            path = Path(store.fetch(entry.file, downloader=downloader))
        except _PermanentHTTPError as exc:
            failures.append(f"{base}: {exc}")
            continue
        except (ValueError, requests.exceptions.RequestException, OSError) as exc:
            failures.append(f"{base}: {_short(exc)}")
            continue
        log.info("fetched %s (%d bytes, sha256 verified) into %s", entry.file, entry.size, path)
        return path
    raise DownloadError(f"could not download {entry.file!r} (sha256 {entry.sha256[:12]}...): "
                        + "; ".join(failures) + f". Offline or no mirror has it? {_generate_hint(entry)}")


def _generate_hint(entry: RegistryEntry) -> str:
    if entry.spec and entry.content_digest:
        return (f"build it here from {entry.spec}, checked against the registry's content digest: bilevelbench fetch "
                f"{entry.name} --regenerate")
    spec = entry.spec or f"datasets/{entry.name}.toml"
    return f"generate it locally: bilevelbench generate {spec} --out {entry.file}"


def file_content_digest(path: Path) -> str:
    """The content digest of an instance-set file (:meth:`bilevelbench.data.instance_set.InstanceSet.content_digest`)."""
    from bilevelbench.data.instance_set import InstanceSet

    return InstanceSet.open(path).content_digest()


def regenerate(name: str, *, registry: Registry | None = None, cache: Path | None = None, workers: int = 1,
               quiet: bool = False) -> Path:
    """Build released dataset ``name`` from its spec into the cache and check it is the released content.

    A cached file that already has the registry's content digest is returned as it is. Otherwise the spec is
    generated (resumable: an interrupted run continues) and the result's content digest must equal the
    registry's; a file that differs is moved aside to ``NAME.mismatch.h5`` so that it is never taken for the
    release.

    Raises
    ------
    MissingDataError
        If ``name`` is not in the registry, the entry names no spec or digest, or the spec file is not here.
    SchemaError
        If the spec's digest and the registry's disagree, or the regenerated content differs from the release.
    """
    from bilevelbench.cli import run_generate
    from bilevelbench.data.spec import load_spec

    registry = registry or load_registry()
    entry = registry.entry(name)
    if not (entry.spec and entry.content_digest):
        raise MissingDataError(f"{entry.name!r} records no spec and content digest to regenerate against")
    root = Path(registry.source).resolve().parent.parent if registry.source else Path.cwd()
    spec_path = root / entry.spec
    if not spec_path.is_file():
        raise MissingDataError(f"the spec of {entry.name!r} ({entry.spec}) is not at {spec_path}; --regenerate "
                               "needs the repository's datasets/ folder (a source checkout)")
    spec_digest = load_spec(spec_path).content_digest
    if spec_digest != entry.content_digest:
        raise SchemaError(f"{spec_path} records content digest {spec_digest}, the registry {entry.content_digest}; "
                          "one of them is out of date")
    cache = Path(cache) if cache is not None else cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    target = cache / entry.file
    if target.is_file():
        try:
            if file_content_digest(target) == entry.content_digest:
                log.debug("cache hit (content digest): %s", target)
                return target
        except BilevelBenchError:
            pass                                        # unreadable: regenerate over it
    args = [str(spec_path), "--out", str(target), "--workers", str(int(workers))]
    run_generate(args + (["--overwrite"] if target.exists() else []), quiet, check_digest=False)
    got = file_content_digest(target)
    if got != entry.content_digest:
        aside = target.with_name(f"{entry.name}.mismatch.h5")
        shutil.move(str(target), aside)
        raise SchemaError(f"the regenerated {entry.name!r} differs from the release (content digest {got}, the "
                          f"registry says {entry.content_digest}); kept as {aside}")
    log.info("regenerated %s: content digest %s equals the registry's", entry.name, entry.content_digest)
    return target


def _short(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if "SHA256 hash of downloaded file" in str(exc) or "hash" in text.lower():
        return "the downloaded file's SHA-256 does not match the registry (corrupt or changed file)"
    return text[:300]


def verify_file(path: Path, entry: RegistryEntry) -> None:
    """Check a local file against its registry entry.

    Raises
    ------
    SchemaError
        If the size or SHA-256 differ.
    """
    import pooch

    size = path.stat().st_size
    if size != entry.size:
        raise SchemaError(f"{str(path)!r} has {size} bytes; the registry says {entry.size}")
    digest = pooch.file_hash(str(path))
    if digest != entry.sha256:
        raise SchemaError(f"{str(path)!r} has sha256 {digest[:12]}...; the registry says {entry.sha256[:12]}...")
