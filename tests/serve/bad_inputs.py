"""The bad inputs the service is tried with: each kind, how it is sent, and the answer expected.

``python -m tests.serve.bad_inputs`` prints the table with the answers a live service gave (for the docs); the
test suite (``test_bad_inputs.py``) asserts every row.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import requests

from tests.serve.conftest import DATASET, N_TEST, Service, labels, predictions


@dataclass(frozen=True)
class Case:
    """One kind of bad input."""

    kind: str
    send: Callable[[Service, Path, Path], requests.Response]
    status: int
    reason: str


def _post(service: Service, team: str | None, file: Path | None, dataset: str | None = DATASET,
          filename: str | None = None) -> requests.Response:
    headers = service.headers(team) if team else {}
    data = {} if dataset is None else {"dataset": dataset}
    files = None
    if file is not None:
        files = {"file": (filename or file.name, file.read_bytes())}
    return requests.post(f"{service.url}/api/v1/submissions", headers=headers, data=data, files=files, timeout=60)


def _file(data: Path, tmp: Path, name: str, edit: Callable[[h5py.File], None] | None = None, **kw) -> Path:
    path = predictions(data, tmp / name, **kw)
    if edit is not None:
        with h5py.File(path, "r+") as f:
            edit(f)
    return path


def _replace(name: str, values) -> Callable[[h5py.File], None]:
    def edit(f: h5py.File) -> None:
        del f[name]
        f.create_dataset(name, data=values)
    return edit


def _external(tmp: Path) -> Callable[[h5py.File], None]:
    def edit(f: h5py.File) -> None:
        del f["y"]
        f["y"] = h5py.ExternalLink(str(tmp / "elsewhere.h5"), "/y")
    return edit


def _virtual(tmp: Path) -> Callable[[h5py.File], None]:
    def edit(f: h5py.File) -> None:
        source = tmp / "source.h5"
        y = f["y"][()]
        with h5py.File(source, "w") as s:
            s["y"] = y
        layout = h5py.VirtualLayout(shape=y.shape, dtype=y.dtype)
        layout[:] = h5py.VirtualSource(str(source), "y", shape=y.shape)
        f.create_virtual_dataset("extra", layout)
    return edit


def _soft(f: h5py.File) -> None:
    f["y_copy"] = f["y"][()]
    del f["y"]
    f["y"] = h5py.SoftLink("/y_copy")


def _chunked_oversize(service: Service, data: Path, tmp: Path) -> requests.Response:
    """A body sent without Content-Length (chunked), past the cap."""
    def body():
        yield b"--B\r\nContent-Disposition: form-data; name=\"dataset\"\r\n\r\n" + DATASET.encode() + b"\r\n"
        yield b"--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x.h5\"\r\n\r\n"
        for _ in range(200):
            yield b"\0" * 1024
        yield b"\r\n--B--\r\n"
    headers = {**service.headers("alpha"), "Content-Type": "multipart/form-data; boundary=B"}
    return requests.post(f"{service.url}/api/v1/submissions", headers=headers, data=body(), timeout=60)


def _other_team(service: Service, data: Path, tmp: Path) -> requests.Response:
    sid = _post(service, "beta", predictions(data, tmp / "beta.h5")).json()["id"]
    return requests.get(f"{service.url}/api/v1/submissions/{sid}", headers=service.headers("alpha"), timeout=30)


def _quota(service: Service, data: Path, tmp: Path) -> requests.Response:
    last = None
    for k in range(QUOTA + 1):
        last = _post(service, "greedy", predictions(data, tmp / f"greedy-{k}.h5", shift=0.01 * k))
    return last


def _not_hdf5(data: Path, tmp: Path) -> Path:
    path = tmp / "preds.csv"
    path.write_text("instance,y1,y2,y3\n0,1,2,3\n")
    return path


def _empty(data: Path, tmp: Path) -> Path:
    path = tmp / "empty.h5"
    path.write_bytes(b"")
    return path


def _oversize(data: Path, tmp: Path) -> Path:
    path = _file(data, tmp, "big.h5")
    with h5py.File(path, "r+") as f:
        f.create_dataset("padding", data=np.random.default_rng(0).random(20000))
    return path


QUOTA = 3
MAX_UPLOAD_MB = "0.1"
n = N_TEST

CASES: tuple[Case, ...] = (
    Case("no token", lambda s, d, t: _post(s, None, predictions(d, t / "a.h5")), 401, "Authorization: Bearer"),
    Case("wrong token", lambda s, d, t: requests.post(
        f"{s.url}/api/v1/submissions", headers={"Authorization": "Bearer bbt_not-a-token"},
        data={"dataset": DATASET}, files={"file": ("a.h5", b"x")}, timeout=30), 401, "not a valid team token"),
    Case("another team's submission id", _other_team, 404, "has no submission"),
    Case("path tricks in the submission id", lambda s, d, t: requests.get(
        f"{s.url}/api/v1/submissions/..%2F..%2Fservice.db", headers=s.headers("alpha"), timeout=30), 404, ""),
    Case("oversize file (announced)", lambda s, d, t: _post(s, "alpha", _oversize(d, t)), 413, "at most"),
    Case("oversize file (chunked, no Content-Length)", _chunked_oversize, 413, "at most"),
    Case("not HDF5 (a CSV)", lambda s, d, t: _post(s, "alpha", _not_hdf5(d, t)), 422, "not HDF5"),
    Case("empty file", lambda s, d, t: _post(s, "alpha", _empty(d, t)), 422, "empty"),
    Case("external link", lambda s, d, t: _post(s, "alpha", _file(d, t, "ext.h5", _external(t))), 422,
         "external link"),
    Case("virtual dataset pointing outside", lambda s, d, t: _post(s, "alpha", _file(d, t, "vds.h5", _virtual(t))),
         422, "virtual dataset"),
    Case("soft link", lambda s, d, t: _post(s, "alpha", _file(d, t, "soft.h5", _soft)), 422, "soft link"),
    Case("wrong shape (4 columns, expected 3)", lambda s, d, t: _post(s, "alpha", _file(
        d, t, "wide.h5", _replace("y", np.zeros((n, 4))))), 422, "expected (rows, 3)"),
    Case("wrong dtype (strings)", lambda s, d, t: _post(s, "alpha", _file(
        d, t, "str.h5", _replace("y", np.array([b"a"] * n)))), 422, "dtype"),
    Case("NaN", lambda s, d, t: _post(s, "alpha", _file(
        d, t, "nan.h5", _replace("y", np.where(np.arange(n)[:, None] == 4, np.nan, labels(d))))), 422, "NaN"),
    Case("inf", lambda s, d, t: _post(s, "alpha", _file(
        d, t, "inf.h5", _replace("y", np.where(np.arange(n)[:, None] == 2, np.inf, labels(d))))), 422, "inf"),
    Case("missing instances", lambda s, d, t: _post(s, "alpha", _file(d, t, "part.h5", lambda f: (
        _replace("y", labels(d)[:-2])(f), _replace("instance_index", np.arange(n - 2))(f)))), 422,
        "first missing: 28"),
    Case("an instance twice", lambda s, d, t: _post(s, "alpha", _file(
        d, t, "dup.h5", _replace("instance_index", np.r_[0, np.arange(n - 1)]))), 422, "more than once"),
    Case("instance index out of range", lambda s, d, t: _post(s, "alpha", _file(
        d, t, "oob.h5", _replace("instance_index", np.arange(n) + 1))), 422, "outside 0..29"),
    Case("another split (valid)", lambda s, d, t: _post(s, "alpha", _file(
        d, t, "valid.h5", lambda f: f.attrs.__setitem__("split", "valid"))), 422, "scores only the hidden split"),
    Case("predictions made for another file", lambda s, d, t: _post(s, "alpha", _file(
        d, t, "sha.h5", dataset_sha256="0" * 64)), 422, "made for a data set with sha256"),
    Case("another file format", lambda s, d, t: _post(s, "alpha", _file(
        d, t, "fmt.h5", lambda f: f.attrs.__setitem__("format", "something-else"))), 422, "expected"),
    Case("unknown dataset", lambda s, d, t: _post(s, "alpha", predictions(d, t / "a.h5"), dataset="bqp-99x99"),
         422, "unknown dataset"),
    Case("path tricks in the dataset name", lambda s, d, t: _post(
        s, "alpha", predictions(d, t / "a.h5"), dataset=f"../{DATASET}"), 422, "unknown dataset"),
    Case("no dataset field", lambda s, d, t: _post(s, "alpha", predictions(d, t / "a.h5"), dataset=None), 400,
         "no 'dataset' field"),
    Case("no file field", lambda s, d, t: _post(s, "alpha", None), 400, "no 'file' upload"),
    Case("not multipart (a JSON body)", lambda s, d, t: requests.post(
        f"{s.url}/api/v1/submissions", headers=s.headers("alpha"), json={"dataset": DATASET}, timeout=30), 400,
        "no 'dataset' field"),
    Case("path tricks in the file name (accepted: the name is never used)", lambda s, d, t: _post(
        s, "alpha", predictions(d, t / "a.h5"), filename="../../../../tmp/owned.h5"), 202, ""),
    Case("a script in the solver name (accepted: shown escaped)", lambda s, d, t: _post(
        s, "alpha", predictions(d, t / "xss.h5", solver_name='<script>alert("owned")</script><img src=x '
                                                              'onerror=alert(2)>')), 202, ""),
    Case(f"daily quota exceeded ({QUOTA + 1}th upload of a day)", _quota, 429, "quota resets at midnight UTC"),
)


def teams() -> tuple[str, ...]:
    return ("alpha", "beta", "greedy")


def service_args() -> tuple[str, ...]:
    return ("--daily-quota", str(QUOTA), "--max-upload-mb", MAX_UPLOAD_MB, "--workers", "1")

