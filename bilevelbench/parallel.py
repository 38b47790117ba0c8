"""Run independent generation tasks here, in a local process pool, or on a Dask cluster.

``map_tasks(func, tasks, ...)`` yields ``func(task)`` for every task as results arrive. Each worker calls
``initializer(*initargs)`` once before its first task (building the certifier, the HiGHS model, ...), whichever
executor runs it:

* ``workers == 1`` and no scheduler: in this process, in order;
* ``workers > 1``: a ``spawn`` process pool of that size (the default for one machine);
* ``scheduler="tcp://HOST:PORT"``: an existing Dask cluster (``distributed.Client``); ``scheduler="local:K"``
  starts a ``LocalCluster`` of K single-threaded worker processes for the duration of the call.

Results do not depend on the executor: tasks carry their own data and seeds, and the generators put results
in place by task identity, not arrival order.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from bilevelbench.errors import UsageError

log = logging.getLogger(__name__)

_INITIALISED: set[tuple] = set()


def _ignore_sigint_then(initializer: Callable | None, initargs: tuple) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)    # the parent handles Ctrl-C and stops the pool
    if initializer is not None:
        initializer(*initargs)


def _dask_call(task: Any, func: Callable, initializer: Callable | None, initargs: tuple, key: str) -> Any:
    """Run ``func(task)`` on a Dask worker, initialising that worker process once per ``key``."""
    if initializer is not None and key not in _INITIALISED:
        initializer(*initargs)
        _INITIALISED.add(key)
    return func(task)


def map_tasks(func: Callable[[Any], Any], tasks: Iterable[Any], *, workers: int = 1, scheduler: str | None = None,
              initializer: Callable | None = None, initargs: tuple = (), key: str = "") -> Iterator[Any]:
    """Yield ``func(task)`` for each task as it finishes (see the module docstring).

    Parameters
    ----------
    key : str
        Identifies the initializer's arguments on Dask workers (which outlive one call): a worker that already
        ran the initializer for ``key`` does not run it again.

    Raises
    ------
    UsageError
        If ``workers < 1``, the scheduler address is malformed, or Dask is not installed.
    """
    tasks = list(tasks)
    if workers < 1:
        raise UsageError(f"--workers must be >= 1, got {workers}")
    if not tasks:
        return
    if scheduler:
        yield from _map_dask(func, tasks, scheduler, initializer, initargs, key or repr(initargs)[:200])
        return
    if workers == 1 or len(tasks) == 1:
        if initializer is not None:
            initializer(*initargs)
        for task in tasks:
            yield func(task)
        return
    ctx = multiprocessing.get_context("spawn")
    pool = ctx.Pool(min(workers, len(tasks)), initializer=_ignore_sigint_then, initargs=(initializer, initargs))
    try:
        yield from pool.imap_unordered(func, tasks, chunksize=1)
        pool.close()
    finally:
        pool.terminate()
        pool.join()


def _map_dask(func, tasks, scheduler, initializer, initargs, key) -> Iterator[Any]:
    try:
        from distributed import Client, LocalCluster, as_completed
    except ImportError as exc:
        raise UsageError("--scheduler needs Dask: pip install 'dask[distributed]'") from exc
    for name in ("distributed", "distributed.scheduler", "distributed.nanny", "distributed.core",
                 "distributed.http.proxy", "distributed.worker"):
        if logging.getLogger(name).getEffectiveLevel() < logging.WARNING:
            logging.getLogger(name).setLevel(logging.WARNING)   # its INFO lines would drown the progress bar
    cluster = None
    if scheduler.startswith("local:"):
        try:
            n = int(scheduler.split(":", 1)[1])
        except ValueError:
            raise UsageError(f"--scheduler local:K needs a worker count, got {scheduler!r}") from None
        if n < 1:
            raise UsageError(f"--scheduler local:K needs K >= 1, got {n}")
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None)
        address = cluster
    elif scheduler.startswith(("tcp://", "tls://", "ucx://", "inproc://")):
        address = scheduler
    else:
        raise UsageError(f"--scheduler must be tcp://HOST:PORT (a running Dask scheduler) or local:K, "
                         f"got {scheduler!r}")
    client = Client(address, timeout="30s")
    try:
        log.info("sending %d tasks to Dask (%s)", len(tasks), client.dashboard_link or scheduler)
        futures = [client.submit(_dask_call, task, func, initializer, initargs, key, pure=False) for task in tasks]
        for future in as_completed(futures):
            yield future.result()
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
