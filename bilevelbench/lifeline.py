"""End a helper process when the process that started it is gone.

A parent killed by ``SIGKILL`` cannot stop its children; a child that calls :func:`exit_with_parent` notices
within a ``period`` and exits, so no scorer or solver outlives the evaluator or service that started it.
"""

from __future__ import annotations

import os
import threading
import time


def exit_with_parent(env_var: str, period: float = 1.0, status: int = 3) -> None:
    """Start a daemon thread that ends this process (``os._exit(status)``) once its parent changes.

    Parameters
    ----------
    env_var : str
        Environment variable holding the parent's pid (so a parent that died while this process was still
        starting is noticed too); the current parent pid when it is unset.
    period : float
        Seconds between checks.
    status : int
        Exit status used when the parent is gone.
    """
    parent = int(os.environ.get(env_var) or os.getppid())

    def watch() -> None:
        while True:
            time.sleep(period)
            if os.getppid() != parent:
                os._exit(status)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()
