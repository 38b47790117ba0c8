"""Atomic writes: all or nothing, with ordinary permissions."""

from __future__ import annotations

import os

import pytest

from bilevelbench.atomic import atomic_target


def test_success_renames_with_ordinary_permissions(tmp_path):
    target = tmp_path / "out.json"
    with atomic_target(target) as tmp:
        tmp.write_text("{}")
    mask = os.umask(0)
    os.umask(mask)
    assert target.read_text() == "{}"
    assert target.stat().st_mode & 0o777 == 0o666 & ~mask
    assert list(tmp_path.iterdir()) == [target]


def test_failure_leaves_nothing(tmp_path):
    target = tmp_path / "out.json"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_target(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert target.read_text() == "old"
    assert list(tmp_path.iterdir()) == [target]
