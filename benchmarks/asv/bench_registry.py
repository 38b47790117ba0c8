"""What the family protocol costs every command: discovering the families and starting the command line.

``bilevelbench --help`` loads every family's descriptor through the entry points; descriptors must stay cheap
(no solver or torch at import). ``time_cli_help`` is the whole start-up of a fresh interpreter, as a user pays it.
"""

from __future__ import annotations

import subprocess
import sys


class Registry:
    timeout = 120

    def time_cli_help(self):
        subprocess.run([sys.executable, "-m", "bilevelbench.cli", "--help"], check=True, capture_output=True)

    def time_discover_families(self):
        subprocess.run([sys.executable, "-c", "from bilevelbench.core.registry import families; families()"],
                       check=True, capture_output=True)

    def track_modules_imported_by_help(self):
        code = ("import sys, contextlib, io\nfrom bilevelbench.cli import main\n"
                "with contextlib.redirect_stdout(io.StringIO()):\n"
                "    try:\n        main(['--help'])\n    except SystemExit:\n        pass\n"
                "print(len(sys.modules))")
        proc = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
        return int(proc.stdout.split()[-1])

    track_modules_imported_by_help.unit = "modules"
