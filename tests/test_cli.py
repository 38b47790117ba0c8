"""The command line as a user runs it: real subprocesses, real files, real signals."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import pytest

CLI = [sys.executable, "-m", "bilevelbench"]


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], check=False, cwd=cwd, capture_output=True, text=True, timeout=300)


def assert_one_line_error(proc: subprocess.CompletedProcess, pattern: str, code: int = 2) -> None:
    assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and pattern in errors[0], proc.stderr


def test_help_teaches(tmp_path):
    top = run("--help", cwd=tmp_path)
    assert top.returncode == 0 and "generate" in top.stdout and "verify" in top.stdout and "examples:" in top.stdout
    gen = run("generate", "--help", cwd=tmp_path)
    for text in ("--n-test", "--workers", "--overwrite", "--spec", "bqp", "dcopf", "mimpc-tank", "ccd-hvac"):
        assert text in gen.stdout
    bqp = run("generate", "bqp", "--help", cwd=tmp_path)
    assert bqp.returncode == 0
    for flag in ("--size", "--n-test", "--workers", "--backend", "--no-label-train", "--overwrite"):
        assert flag in bqp.stdout
    assert "--case" not in bqp.stdout            # another family's option is not offered
    dcopf = run("generate", "dcopf", "--help", cwd=tmp_path)
    assert "--case" in dcopf.stdout and "--load-scale" in dcopf.stdout and "--size" not in dcopf.stdout
    foreign = run("-q", "generate", "bqp", "--size", "3x2", "--case", "case14", "--out", "x.h5", cwd=tmp_path)
    assert_one_line_error(foreign, "--case is not an option of bqp (an option of dcopf)")


def test_done_when_generate_then_verify(tmp_path):
    gen = run("generate", "bqp", "--size", "3x2", "--n-train", "0", "--n-valid", "0", "--n-test", "60",
              "--seed", "7", "--out", "x.h5", cwd=tmp_path)
    assert gen.returncode == 0, gen.stderr
    assert "60 certified_optimal" in gen.stdout
    ver = run("verify", "x.h5", cwd=tmp_path)
    assert ver.returncode == 0, ver.stderr
    assert "60 instances checked" in ver.stdout and "OK" in ver.stdout
    info = run("info", "x.h5", cwd=tmp_path)
    assert info.returncode == 0 and "3x2" in info.stdout and "scip" in info.stdout and "median" in info.stdout


def test_verify_with_oracle_and_detects_a_tampered_label(small_set, tmp_path):
    ok = run("-q", "verify", "--oracle", str(small_set), cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    bad = tmp_path / "tampered.h5"
    bad.write_bytes(small_set.read_bytes())
    with h5py.File(bad, "r+") as f:
        f["labels/z"][9, 0] += 0.05
        f["labels/objective"][10] -= 0.5
    proc = run("-q", "verify", str(bad), cwd=tmp_path)
    assert proc.returncode == 1
    assert "FAIL instance 9" in proc.stderr and "FAIL instance 10" in proc.stderr
    assert "FAILED (2 label(s))" in proc.stdout


@pytest.mark.parametrize("size", ["3", "3y2", "0x2", "ax2", "3x2x1"])
def test_bad_size_strings(size, tmp_path):
    proc = run("-q", "generate", "bqp", "--size", size, "--out", "o.h5", cwd=tmp_path)
    assert_one_line_error(proc, "size")
    assert not (tmp_path / "o.h5").exists()


def test_existing_output_is_refused_then_overwritten(tmp_path):
    out = tmp_path / "exists.h5"
    out.write_text("keep me")
    proc = run("-q", "generate", "bqp", "--size", "3x2", "--n-test", "2", "--out", str(out), cwd=tmp_path)
    assert_one_line_error(proc, "already exists; pass --overwrite")
    assert out.read_text() == "keep me"
    proc = run("-q", "generate", "bqp", "--size", "3x2", "--n-test", "2", "--out", str(out), "--overwrite",
               cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert out.read_bytes()[:8] == b"\x89HDF\r\n\x1a\n"


@pytest.mark.parametrize("target,pattern", [("missing-dir/o.h5", "does not exist"), ("/proc/o.h5", "not writable"),
                                            (".", "is a directory")])
def test_unwritable_output(target, pattern, tmp_path):
    proc = run("-q", "generate", "bqp", "--size", "3x2", "--n-test", "2", "--out", target, cwd=tmp_path)
    assert_one_line_error(proc, pattern)


def test_bad_counts(tmp_path):
    proc = run("-q", "generate", "bqp", "--size", "3x2", "--n-test", "-1", "--out", "o.h5", cwd=tmp_path)
    assert_one_line_error(proc, "--n-test must be >= 0")
    proc = run("-q", "generate", "bqp", "--size", "3x2", "--n-test", "0", "--out", "o.h5", cwd=tmp_path)
    assert_one_line_error(proc, "nothing to generate")


@pytest.mark.parametrize("command", ["info", "verify"])
def test_corrupt_foreign_and_missing_files(command, small_set, tmp_path):
    (tmp_path / "text.h5").write_text("hello")
    with h5py.File(tmp_path / "foreign.h5", "w") as f:
        f["data"] = [1, 2, 3]
    (tmp_path / "cut.h5").write_bytes(small_set.read_bytes()[:5000])
    for name, pattern in (("text.h5", "not an HDF5 file"), ("foreign.h5", "not a bilevelbench instance set"),
                          ("cut.h5", "corrupt or truncated"), ("absent.h5", "no such")):
        assert_one_line_error(run(command, name, cwd=tmp_path), pattern)


def test_ctrl_c_leaves_no_file(tmp_path):
    # Interrupt once the first shard is on disk (a fixed 6 s sleep let a 9x6 run finish on an idle machine; 12x9
    # labels take long enough that 20 shards cannot finish first). The child gets SIGINT's default action back:
    # a test run started in the background of a non-interactive shell inherits SIGINT ignored, and so would the CLI.
    proc = subprocess.Popen([*CLI, "-q", "generate", "bqp", "--size", "12x9", "--n-test", "400", "--workers", "2",
                             "--out", "big.h5"], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    while not list((tmp_path / "big.h5.partial").glob("*.npz")) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert proc.poll() is None, proc.communicate()
    os.killpg(proc.pid, signal.SIGINT)  # as a terminal's Ctrl-C: the whole process group
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted; no output file was written" in err and "Traceback" not in err
    assert "rerun the same command to resume" in err
    # only the finished shards remain (no output file, no lock held or left behind)
    assert [p.name for p in tmp_path.iterdir()] == ["big.h5.partial"]
