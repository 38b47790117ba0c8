"""``bilevelbench fetch NAME --regenerate`` (issue 20): the registry lists every spec that records a content
digest; a dataset with no published file says so in one line and points to --regenerate, which builds the set
from its spec and accepts it only when its content digest equals the registry's."""

from __future__ import annotations

from pathlib import Path

import pytest

from bilevelbench.cli import main
from bilevelbench.cli_data import spec_files
from bilevelbench.data.fetch import file_content_digest
from bilevelbench.data.registry import load_registry, render_registry, spec_entries
from bilevelbench.errors import SchemaError

ROOT = Path(__file__).resolve().parents[2]
TINY = 'name = "tiny"\nfamily = "bqp"\nsize = "3x2"\nseed = 3\nn_train = 0\nn_valid = 0\nn_test = 2\n'


def test_the_committed_registry_lists_every_spec_with_a_content_digest():
    reg = load_registry(ROOT / "datasets" / "registry.toml")
    expected = {e.name: e for e in spec_entries(spec_files([ROOT / "datasets"]), ROOT)}
    assert expected, "no spec records a content digest"
    for name, entry in expected.items():
        assert name in reg.entries, f"{name} records a content digest but is not in datasets/registry.toml"
        got = reg.entries[name]
        assert (got.spec, got.content_digest) == (entry.spec, entry.content_digest), name


@pytest.fixture
def tiny_release(tmp_path, monkeypatch):
    """A source tree with one spec (its digest measured by a first generation) and its registry."""
    datasets = tmp_path / "tree" / "datasets"
    datasets.mkdir(parents=True)
    # the spec's name is recorded in the file, so measure the digest of a spec-made file
    (datasets / "tiny.toml").write_text(TINY)
    assert main(["-q", "generate", str(datasets / "tiny.toml"), "--out", str(tmp_path / "probe.h5")]) == 0
    digest = file_content_digest(tmp_path / "probe.h5")
    (datasets / "tiny.toml").write_text(TINY + f'content_digest = "{digest}"\n')
    (datasets / "registry.toml").write_text(render_registry(spec_entries([datasets / "tiny.toml"],
                                                                         tmp_path / "tree")))
    monkeypatch.setenv("BILEVELBENCH_DATA", str(tmp_path / "cache"))
    return datasets / "registry.toml", digest


def test_fetch_without_a_published_file_points_to_regenerate(tiny_release, capsys):
    registry, _ = tiny_release
    assert main(["-q", "fetch", "tiny", "--registry", str(registry)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no published file yet" in err[0] and "bilevelbench fetch tiny --regenerate" in err[0]


def test_regenerate_builds_the_released_content_and_reuses_it(tiny_release, tmp_path, capsys):
    registry, digest = tiny_release
    assert main(["-q", "fetch", "tiny", "--regenerate", "--registry", str(registry)]) == 0
    path = Path(capsys.readouterr().out.strip().splitlines()[-1])
    assert path == tmp_path / "cache" / "tiny.h5" and file_content_digest(path) == digest
    stamp = path.stat().st_mtime_ns
    assert main(["-q", "fetch", "tiny", "--regenerate", "--registry", str(registry)]) == 0
    assert path.stat().st_mtime_ns == stamp                          # the verified copy is reused, not rebuilt


def test_a_regeneration_that_differs_is_refused_and_set_aside(tiny_release, tmp_path, capsys):
    registry, digest = tiny_release
    wrong = "sha256:" + "0" * 64
    spec = registry.parent / "tiny.toml"
    spec.write_text(spec.read_text().replace(digest, wrong))
    registry.write_text(registry.read_text().replace(digest, wrong))
    assert main(["-q", "fetch", "tiny", "--regenerate", "--registry", str(registry)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "differs from the release" in err[-1]
    assert not (tmp_path / "cache" / "tiny.h5").exists() and (tmp_path / "cache" / "tiny.mismatch.h5").is_file()


def test_a_spec_and_registry_that_disagree_are_refused(tiny_release, capsys):
    registry, digest = tiny_release
    registry.write_text(registry.read_text().replace(digest, "sha256:" + "1" * 64))
    assert main(["-q", "fetch", "tiny", "--regenerate", "--registry", str(registry)]) == 2
    assert "one of them is out of date" in capsys.readouterr().err


def test_an_unpublished_entry_needs_a_spec_and_a_digest(tmp_path):
    path = tmp_path / "registry.toml"
    path.write_text('schema = 1\nmirrors = []\n[[file]]\nname = "x"\nfile = "x.h5"\nspec = "datasets/x.toml"\n')
    with pytest.raises(SchemaError, match="not published.*needs a spec and a content_digest"):
        load_registry(path)
