"""Train ``miqp_ssl`` (self-supervised: objective + constraint penalty through the relaxed QP layer) on one data set::

    python -m baselines.miqp_ssl.train --dataset data/mimpc-tank.h5 --seed 0

writes ``baselines/miqp_ssl/weights/<family>.pt`` and ``.json`` (see :mod:`baselines.miqp_common.train`).
"""

from __future__ import annotations

import sys
from pathlib import Path

from baselines.miqp_common.train import main

WEIGHTS = Path(__file__).resolve().parent / "weights"

if __name__ == "__main__":
    sys.exit(main("ssl", WEIGHTS))
