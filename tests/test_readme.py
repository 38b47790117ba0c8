"""The README's two quick-start commands are exactly what CI runs."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ci_runs_the_readme_commands():
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)\n```", readme, flags=re.DOTALL)
    assert len(blocks) >= 2
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
    for command in blocks[:2]:
        assert command.strip() in ci_lines
    assert "pytest" in blocks[1]
