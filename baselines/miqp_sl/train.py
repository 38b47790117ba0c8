"""Train ``miqp_sl`` (supervised: integers fitted to the certified labels) on one data set::

    python -m baselines.miqp_sl.train --dataset data/mimpc-tank.h5 --seed 0

writes ``baselines/miqp_sl/weights/<family>.pt`` and ``.json`` (see :mod:`baselines.miqp_common.train`).
"""

from __future__ import annotations

import sys
from pathlib import Path

from baselines.miqp_common.train import main

WEIGHTS = Path(__file__).resolve().parent / "weights"

if __name__ == "__main__":
    sys.exit(main("sl", WEIGHTS))
