"""The family registry: entry-point discovery, cheap descriptors, broken and missing plugins."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from bilevelbench.core import registry
from bilevelbench.core.family import Family, Option, check_options
from bilevelbench.errors import UnknownFamilyError, UsageError

BUILT_IN = {"bqp", "ccd-hvac", "ccd-twotank", "dcopf", "mimpc-robot", "mimpc-tank"}


def _python(code: str, extra_path: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    if extra_path is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(extra_path), *filter(None, [env.get("PYTHONPATH")])])
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env,
                          timeout=120, check=False)


def test_built_in_families_register_through_entry_points():
    from importlib.metadata import entry_points

    names = {ep.name for ep in entry_points(group=registry.GROUP)}
    assert BUILT_IN <= names
    assert BUILT_IN <= set(registry.family_names())
    for name in BUILT_IN:
        family = registry.get_family(name)
        assert isinstance(family, Family) and family.name == name
        assert family.title and family.docs and family.tiny_args and family.exact_solver
        assert family.param_fields and family.decision in family.label_fields


def test_help_and_the_descriptors_import_no_solver_or_torch():
    proc = _python("""
        import sys, contextlib, io
        from bilevelbench.cli import main
        from bilevelbench.core.registry import families
        families()
        with contextlib.redirect_stdout(io.StringIO()):
            for argv in (["--help"], ["generate", "--help"], ["generate", "bqp", "--help"], ["families"]):
                try:
                    main(argv)
                except SystemExit:
                    pass
        print(sorted(m for m in ("torch", "pyscipopt", "gurobipy", "highspy") if m in sys.modules))
    """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]", f"imported by --help: {proc.stdout}"


def test_unknown_family_names_the_installed_ones():
    with pytest.raises(UnknownFamilyError, match="no installed family is called .no-such-family.*installed: .*bqp"):
        registry.get_family("no-such-family")


def _fake_distribution(root: Path, name: str, entry_points: str) -> Path:
    """A distribution as pip installs it (a .dist-info folder with entry_points.txt) under ``root``."""
    info = root / f"{name}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[bilevelbench.families]\n{entry_points}\n")
    return root


def test_a_broken_plugin_is_reported_and_does_not_break_the_others(tmp_path):
    root = _fake_distribution(tmp_path, "broken_plugin", "broken = no_such_module.family:FAMILY\n"
                                                         "misnamed = bilevelbench.families.bqp.family:FAMILY")
    proc = _python("""
        from bilevelbench.cli import main
        from bilevelbench.core.registry import family_names, get_family
        print(sorted(family_names()))
        main(["families"])
        try:
            get_family("broken")
        except Exception as exc:
            print("ERROR", type(exc).__name__, exc)
    """, root)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert "broken" not in lines[0] and "misnamed" not in lines[0] and "'bqp'" in lines[0]
    assert "plugin installed but not loaded: ModuleNotFoundError" in proc.stdout
    assert "describes family 'bqp', not 'misnamed'" in proc.stdout
    assert "ERROR UnknownFamilyError the plugin of family 'broken' is installed but failed to load" in proc.stdout


def test_register_without_an_entry_point():
    class Toy(Family):
        name = "toy-registered"

    registry.register(Toy())
    try:
        assert registry.get_family("toy-registered").name == "toy-registered"
    finally:
        registry.unregister("toy-registered")
    with pytest.raises(UnknownFamilyError):
        registry.get_family("toy-registered")
    with pytest.raises(TypeError):
        registry.register(object())


def test_options_are_checked_with_clear_messages():
    class Toy(Family):
        name = "toy"
        options = (Option("k", int, 3, "size"), Option("scale", list, [0.5, 1.0], "range", metavar="LO,HI", length=2),
                   Option("mode", str, "a", "mode", choices=("a", "b")), Option("need", str, None, "x", required=True),
                   Option("splits", list, ["test"], "which", item=str, choices=("train", "test")))

    toy = Toy()
    full = check_options(toy, {"need": "yes", "scale": "0.1,0.2"}, "here")
    assert full == {"k": 3, "scale": [0.1, 0.2], "mode": "a", "need": "yes", "splits": ["test"]}
    for values, message in (({}, "--need is required for toy"),
                            ({"need": "y", "k": 1.5}, "k = 1.5; expected an integer"),
                            ({"need": "y", "k": True}, "expected an integer"),
                            ({"need": "y", "scale": [1]}, "expected 2 numbers (--scale LO,HI)"),
                            ({"need": "y", "mode": "c"}, "expected one of a, b"),
                            ({"need": "y", "splits": ["valid"]}, "holds ['valid']"),
                            ({"need": "y", "colour": 1}, "colour not an option of toy")):
        with pytest.raises(UsageError, match=None) as info:
            check_options(toy, values, "here")
        assert message in str(info.value) and str(info.value).startswith("here:")
