"""Outside ``bilevelbench/families/`` no module names a family: the generic layers ask the registry."""

from __future__ import annotations

import re
from pathlib import Path

from bilevelbench.core.registry import families

PACKAGE = Path(__file__).resolve().parents[2] / "bilevelbench"


def test_no_generic_module_names_a_family():
    words = set()
    for name, family in families().items():
        module = type(family).__module__
        if not module.startswith("bilevelbench.families."):
            continue                                   # a plugin's name may be any word
        words.add(name)
        words.add(module.split(".")[2])                # its package: bqp, mimpc, dcopf, ccd
    pattern = re.compile(r"(?<![\w-])(" + "|".join(map(re.escape, sorted(words, key=len, reverse=True))) + r")(?![\w])",
                         re.IGNORECASE)
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if (PACKAGE / "families") in path.parents:
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if pattern.search(line):
                offenders.append(f"{path.relative_to(PACKAGE.parent)}:{number}: {line.strip()}")
    assert offenders == [], "generic modules that name a family:\n" + "\n".join(offenders)
