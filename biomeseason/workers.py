"""Worker processes that end with their parent.

    from biomeseason.workers import process_pool
    with process_pool(2) as pool:
        for result in pool.map(work, jobs, chunksize=8):
            ...

On Ctrl-C or ``kill`` the parent alone handles the signal (workers ignore
SIGINT, so there is one message, not one per worker), cancels what is queued
and stops the workers; on Linux each worker is also told by the kernel to
exit if its parent dies without cleaning up (``PR_SET_PDEATHSIG``), so no
orphan keeps running after ``kill -9``.
"""
from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import signal
import sys
from concurrent.futures import ProcessPoolExecutor

_PR_SET_PDEATHSIG = 1


def _init_worker(parent: int, initializer=None, initargs=()):
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # A fork inherits the parent's handlers; the parent's SIGTERM-as-Ctrl-C would
    # make a stopped worker print a traceback instead of just ending.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)
    if initializer is not None:
        initializer(*initargs)


@contextlib.contextmanager
def process_pool(workers: int, initializer=None, initargs=()):
    """A ProcessPoolExecutor whose workers never outlive this process.

    Leaving the block by an exception (KeyboardInterrupt included) cancels
    pending work and terminates the workers at once instead of waiting.
    """
    # fork is cheap and keeps imported modules; torch is never used in our workers.
    ctx = multiprocessing.get_context("fork" if sys.platform.startswith("linux") else "spawn")
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker,
                               initargs=(os.getpid(), initializer, initargs))
    try:
        yield pool
    except BaseException:
        for process in list((getattr(pool, "_processes", None) or {}).values()):
            with contextlib.suppress(Exception):
                process.terminate()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    else:
        pool.shutdown(wait=True)
