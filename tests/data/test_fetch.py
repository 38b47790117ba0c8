"""Verified downloads from a real HTTP server on 127.0.0.1: good, corrupt, truncated, 404, stalled, cached,
resumed, and a changed registry entry."""

from __future__ import annotations

import hashlib
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from bilevelbench.data.fetch import DownloadError, fetch
from bilevelbench.data.registry import Registry, RegistryEntry, load_registry, render_registry
from bilevelbench.errors import MissingDataError, SchemaError

PAYLOAD = bytes(range(256)) * 4096          # 1 MiB
SHA = hashlib.sha256(PAYLOAD).hexdigest()


class Handler(BaseHTTPRequestHandler):
    """``/good/F`` serves PAYLOAD (honours Range), ``/corrupt/F`` flips a byte, ``/truncated/F`` announces the
    full length and closes half way, ``/stall/F`` sends a little and then sleeps, anything else is 404.
    ``/flaky/F`` cuts the first answer half way and serves the rest with Range afterwards."""

    requests_seen: list[tuple[str, str | None]] = []
    flaky_calls = 0
    payload_override: bytes | None = None

    def log_message(self, *args):  # quiet
        pass

    def do_GET(self):  # noqa: N802 - http.server's name
        Handler.requests_seen.append((self.path, self.headers.get("Range")))
        kind = self.path.split("/")[1]
        body = PAYLOAD
        if kind == "file" and Handler.payload_override is not None:
            kind, body = "good", Handler.payload_override
        if kind == "corrupt":
            body = bytearray(PAYLOAD)
            body[1000] ^= 0xFF
            body = bytes(body)
        if kind not in ("good", "corrupt", "truncated", "stall", "flaky"):
            self.send_error(404)
            return
        start = 0
        rng = self.headers.get("Range")
        if rng and kind in ("good", "flaky"):
            start = int(rng.split("=")[1].split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        if kind == "truncated" or (kind == "flaky" and Handler.flaky_calls == 0 and not rng):
            Handler.flaky_calls += kind == "flaky"
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        if kind == "stall":
            self.wfile.write(body[:1000])
            self.wfile.flush()
            time.sleep(5)
            return
        self.wfile.write(body[start:])


@pytest.fixture()
def server():
    Handler.requests_seen = []
    Handler.flaky_calls = 0
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def _registry(sha: str = SHA, size: int = len(PAYLOAD)) -> Registry:
    entry = RegistryEntry(name="toy", file="toy.h5", size=size, sha256=sha, spec="datasets/toy.toml")
    return Registry(entries={"toy": entry}, mirrors=(), source="test registry")


def test_good_download_then_cache_hit(server, tmp_path):
    path = fetch("toy", registry=_registry(), mirror=f"{server}/good", cache=tmp_path)
    assert path == tmp_path / "toy.h5" and path.read_bytes() == PAYLOAD
    n = len(Handler.requests_seen)
    again = fetch("toy", registry=_registry(), mirror=f"{server}/good", cache=tmp_path)
    assert again == path and len(Handler.requests_seen) == n          # no request: verified cache hit
    assert not list(tmp_path.glob(".*part"))


def test_corrupt_file_is_never_moved_into_place(server, tmp_path):
    with pytest.raises(DownloadError, match="SHA-256 does not match") as info:
        fetch("toy", registry=_registry(), mirror=f"{server}/corrupt", cache=tmp_path, retries=1)
    assert "bilevelbench generate datasets/toy.toml" in str(info.value)
    assert not (tmp_path / "toy.h5").exists()
    assert len(Handler.requests_seen) == 2                               # one retry, bounded


def test_truncated_download_fails_after_bounded_retries(server, tmp_path):
    start = time.monotonic()
    with pytest.raises(DownloadError):
        fetch("toy", registry=_registry(), mirror=f"{server}/truncated", cache=tmp_path, retries=1)
    assert time.monotonic() - start < 15
    assert not (tmp_path / "toy.h5").exists()


def test_interrupted_download_resumes_with_range(server, tmp_path):
    path = fetch("toy", registry=_registry(), mirror=f"{server}/flaky", cache=tmp_path, retries=2)
    assert path.read_bytes() == PAYLOAD
    ranges = [r for p, r in Handler.requests_seen if p.startswith("/flaky")]
    assert ranges[0] is None and ranges[1] == f"bytes={len(PAYLOAD) // 2}-"


def test_404_is_not_retried_and_the_next_mirror_is_tried(server, tmp_path, monkeypatch):
    monkeypatch.setenv("BILEVELBENCH_MIRROR", f"{server}/good")
    path = fetch("toy", registry=_registry(), mirror=f"{server}/missing", cache=tmp_path, retries=3)
    assert path.read_bytes() == PAYLOAD
    assert [p for p, _ in Handler.requests_seen].count("/missing/toy.h5") == 1
    monkeypatch.delenv("BILEVELBENCH_MIRROR")
    with pytest.raises(DownloadError, match="HTTP 404"):
        fetch("toy", registry=_registry(SHA.replace("a", "b")), mirror=f"{server}/missing", cache=tmp_path / "x")


def test_stalled_server_is_bounded(server, tmp_path):
    start = time.monotonic()
    with pytest.raises(DownloadError):
        fetch("toy", registry=_registry(), mirror=f"{server}/stall", cache=tmp_path, retries=1, read_timeout=0.5)
    assert time.monotonic() - start < 12


def test_changed_registry_entry_replaces_the_cached_file(server, tmp_path):
    fetch("toy", registry=_registry(), mirror=f"{server}/good", cache=tmp_path)
    (tmp_path / "toy.h5").write_bytes(b"old release")                    # what an older release left behind
    path = fetch("toy", registry=_registry(), mirror=f"{server}/good", cache=tmp_path)
    assert path.read_bytes() == PAYLOAD
    with pytest.raises(DownloadError, match="SHA-256 does not match"):   # the registry moved on, the server not
        fetch("toy", registry=_registry(sha="0" * 64), mirror=f"{server}/good", cache=tmp_path, retries=0)
    assert path.read_bytes() == PAYLOAD                                   # the verified copy is left alone


def test_no_mirror_and_unknown_names_give_one_clear_line(tmp_path, monkeypatch):
    monkeypatch.delenv("BILEVELBENCH_MIRROR", raising=False)
    with pytest.raises(DownloadError, match="no mirror is configured.*bilevelbench generate datasets/toy.toml"):
        fetch("toy", registry=_registry(), cache=tmp_path)
    with pytest.raises(MissingDataError, match="known: toy"):
        fetch("nope", registry=_registry(), cache=tmp_path)


def test_registry_round_trip_and_validation(tmp_path):
    entries = [RegistryEntry("toy", "toy.h5", 10, "a" * 64, "datasets/toy.toml")]
    path = tmp_path / "registry.toml"
    path.write_text(render_registry(entries, ["https://example.org/d"]))
    reg = load_registry(path)
    assert reg.entry("toy") == entries[0] and reg.entry("toy.h5") == entries[0]
    assert reg.mirrors == ("https://example.org/d",)
    path.write_text(render_registry(entries).replace("a" * 64, "xyz"))
    with pytest.raises(SchemaError, match="sha256"):
        load_registry(path)


def test_committed_registry_matches_the_specs():
    root = Path(__file__).resolve().parents[2]
    reg = load_registry(root / "datasets" / "registry.toml")
    specs = {p.stem for p in (root / "datasets").glob("*.toml") if p.stem != "registry"}
    assert set(reg.entries) <= specs
    for entry in reg.entries.values():
        assert (root / entry.spec).is_file()


def test_instance_set_open_fetches_a_released_name(server, tmp_path, monkeypatch):
    """``InstanceSet.open("NAME")`` goes through the registry and the cache when no such file exists."""
    import h5py  # noqa: F401 - the fixture file below is a real instance set

    from bilevelbench.data import registry as registry_module
    from bilevelbench.data.instance_set import InstanceSet
    from bilevelbench.families.dcopf.generate import DCOPFRequest, generate_dcopf

    (tmp_path / "src").mkdir()
    real = generate_dcopf(DCOPFRequest(case="case14", n_test=3, seed=1), tmp_path / "src" / "tiny.h5")
    data = real.read_bytes()
    Handler.payload_override = data
    entry = RegistryEntry(name="tiny", file="tiny.h5", size=len(data), sha256=hashlib.sha256(data).hexdigest())
    reg = Registry(entries={"tiny": entry}, mirrors=(f"{server}/file",), source="test")
    monkeypatch.setattr(registry_module, "load_registry", lambda path=None: reg)
    monkeypatch.setenv("BILEVELBENCH_DATA", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    try:
        ds = InstanceSet.open("tiny")
    finally:
        Handler.payload_override = None
    assert ds.path == tmp_path / "cache" / "tiny.h5" and len(ds.split("test")) == 3


def test_unregistered_names_point_to_the_spec_files():
    """The committed registry: a spec without a digest is named as such, any other name lists what exists."""
    root = Path(__file__).resolve().parents[2]
    reg = load_registry(root / "datasets" / "registry.toml")
    unreleased = sorted(p.stem for p in (root / "datasets").glob("*.toml")
                        if p.stem != "registry" and p.stem not in reg.entries)
    with pytest.raises(MissingDataError, match="spec files in") as info:
        reg.entry("no-such-set")
    message = str(info.value)
    assert "\n" not in message and all(name in message for name in [*reg.entries, *unreleased])
    if unreleased:
        with pytest.raises(MissingDataError, match=f"is not released: its spec .*{unreleased[0]}.toml records no "
                                                   "content digest"):
            reg.entry(unreleased[0])
