"""Train ``miqp_hybrid`` (hybrid: objective + penalty + supervised loss) on one data set::

    python -m baselines.miqp_hybrid.train --dataset data/mimpc-tank.h5 --seed 0

writes ``baselines/miqp_hybrid/weights/<family>.pt`` and ``.json`` (see :mod:`baselines.miqp_common.train`).
"""

from __future__ import annotations

import sys
from pathlib import Path

from baselines.miqp_common.train import main

WEIGHTS = Path(__file__).resolve().parent / "weights"

if __name__ == "__main__":
    sys.exit(main("hybrid", WEIGHTS))
