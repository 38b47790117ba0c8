"""Where and with what a result was produced: machine fingerprint, versions, git commit."""

from __future__ import annotations

import datetime as _dt
import hashlib
import os
import platform
import subprocess
from pathlib import Path

import numpy as np

import bilevelbench


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gib() -> float | None:
    try:
        import psutil

        return round(psutil.virtual_memory().total / 2**30, 1)
    except Exception:
        return None


def machine_fingerprint() -> dict:
    """CPU model, core count, memory, OS and interpreter: enough to tell two machines apart."""
    return {"platform": platform.platform(), "processor": _cpu_model(), "cpu_count": os.cpu_count(),
            "memory_gib": _memory_gib(), "python": platform.python_version(), "numpy": np.__version__}


def git_state() -> tuple[str | None, bool | None]:
    """Commit and dirty flag of the checkout bilevelbench runs from (None when not a git checkout)."""
    root = Path(bilevelbench.__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip() != ""
        return commit or None, dirty
    except (OSError, subprocess.SubprocessError):
        return None, None


def provenance(command: str) -> dict:
    """The ``provenance`` block of a results record."""
    commit, dirty = git_state()
    return {"bilevelbench_version": bilevelbench.__version__, "git_commit": commit, "git_dirty": dirty,
            "date": _dt.datetime.now(_dt.UTC).replace(microsecond=0).isoformat(),
            "machine": machine_fingerprint(), "command": command}


def file_sha256(path: Path | str, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes."""
    sha = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            sha.update(block)
    return sha.hexdigest()
