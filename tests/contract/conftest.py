"""The contract suite's setup: install the test plugin family (``tests/contract/plugin``) with pip, as a user
installs any third-party family, then parametrize the contract tests over every registered family."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from bilevelbench.core import registry

PLUGIN_SOURCE = Path(__file__).with_name("plugin")


def _install_plugin() -> Path:
    """``pip install --target`` the plugin into a temporary folder put on this process's and its children's path."""
    target = Path(tempfile.mkdtemp(prefix="bilevelbench-plugin-"))
    build = Path(tempfile.mkdtemp(prefix="bilevelbench-plugin-src-"))
    source = build / "plugin"
    subprocess.run(["cp", "-r", str(PLUGIN_SOURCE), str(source)], check=True)   # pip builds in place
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                           "--no-index", "--target", str(target), str(source)], capture_output=True, text=True,
                          check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"installing the test plugin failed:\n{proc.stdout}\n{proc.stderr}")
    sys.path.insert(0, str(target))
    os.environ["PYTHONPATH"] = os.pathsep.join([str(target), *filter(None, [os.environ.get("PYTHONPATH")])])
    registry.reload()
    return target


PLUGIN_PATH = _install_plugin()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "family_name" in metafunc.fixturenames:
        metafunc.parametrize("family_name", registry.family_names())


@pytest.fixture(scope="session")
def tiny_sets(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One tiny set per family, generated on first use and shared by the contract and golden tests."""
    return {"root": tmp_path_factory.mktemp("contract")}


@pytest.fixture
def tiny(tiny_sets: dict, family_name: str):
    from bilevelbench.testing.contract import make_tiny_set

    if family_name not in tiny_sets:
        tiny_sets[family_name] = make_tiny_set(family_name, tiny_sets["root"] / family_name)
    return tiny_sets[family_name]
