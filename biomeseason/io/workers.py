"""Worker processes that end with their parent.

    from biomeseason.io.workers import process_pool
    with process_pool(2) as pool:
        for result in pool.map(work, jobs, chunksize=8):
            ...

Workers are started by a fork server (on Linux): a small single-threaded
process, started once, that has imported the modules whose functions the
workers run (``PRELOAD``) and forks a worker on request. Forking the caller
itself would copy whatever threads it has at that moment (PyTorch's, a
progress bar's, a notebook kernel's) together with any lock one of them held,
and a worker can then wait for ever on a lock nobody will release; the fork
server has no threads to copy. Worker functions must live in modules that
do not import torch, so the server stays small and starts in a second.

On Ctrl-C or ``kill`` the parent alone handles the signal (workers ignore
SIGINT, so there is one message, not one per worker), cancels what is queued
and stops the workers.

No worker outlives its parent, however the parent dies (``kill -9``, the
out-of-memory killer, a job scheduler): ``end_with(parent)`` runs first in
every worker, ours and training's DataLoader workers alike. A thread in the
worker ends it when the process that asked for it dies (a pidfd, which the
kernel marks the moment that process ends; elsewhere its pid is checked twice
a second), and on Linux the kernel also ends a fork server's worker with the
fork server (``PR_SET_PDEATHSIG``). The thread is the one that counts: a
worker's parent is the fork server, which lives until the last worker has
gone (each holds its "alive" pipe), so without it the two would wait for each
other for ever. The fork server and the resource tracker then end by
themselves, having no client left.
"""
from __future__ import annotations

import collections
import contextlib
import ctypes
import functools
import importlib.machinery
import itertools
import multiprocessing
import os
import select
import signal
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor

_PR_SET_PDEATHSIG = 1
PARENT_CHECK_SECONDS = 0.5   # how often a worker looks for its parent where no pidfd tells it
# The modules whose functions run in workers: imported once, by the fork server.
PRELOAD = ["biomeseason.prepare.clean", "biomeseason.predict.scene", "biomeseason.synthetic.generate"]


def _context(preload=()) -> multiprocessing.context.BaseContext:
    if sys.platform.startswith("linux"):
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload([*PRELOAD, *preload])   # only read when the server starts
        return ctx
    return multiprocessing.get_context("spawn")


def alive(pid: int) -> bool:
    """Whether a process with this id exists (ours or not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity mask where the system has one)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def cap(workers: int, flag: str = "--workers", quiet: bool = False) -> int:
    """``workers`` capped at the CPU count; a larger value is said once (on stderr) unless ``quiet``.

    More processes than CPUs only take turns on them, each holding its own memory.
    """
    cpus = usable_cpus()
    if workers <= cpus:
        return workers
    if not quiet:
        print(f"note: {flag} {workers} is more than the {cpus} CPU(s) here; using {cpus}",
              file=sys.stderr, flush=True)
    return cpus


def end_with(parent: int, *_) -> None:
    """End this process within a second of process ``parent`` ending, however it ends.

    Call it first thing in a worker (extra arguments are ignored, so it can be
    a DataLoader's ``worker_init_fn`` through ``functools.partial``).
    """
    forked = os.getppid() == parent
    if sys.platform.startswith("linux") and not forked:
        # Our parent is the fork server (single-threaded). Not for a process forked by ``parent``
        # itself: the kernel would end it with the *thread* that forked it, which may be a
        # short-lived one while ``parent`` lives on; the thread below covers that case.
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        except (OSError, AttributeError):
            pass
    pidfd = None
    if hasattr(os, "pidfd_open"):
        try:   # opened before the check below, so a parent gone in between is still seen
            pidfd = os.pidfd_open(parent)
        except OSError:   # already gone, or a kernel without pidfds (then we poll)
            pidfd = None
    if not alive(parent) or (forked and os.getppid() != parent):
        os._exit(1)   # it died while we were starting
    threading.Thread(target=_exit_when_gone, args=(parent, pidfd, forked), daemon=True,
                     name="end-with-parent").start()


def _exit_when_gone(parent: int, pidfd: int | None, forked: bool) -> None:
    if pidfd is not None:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)   # readable once the process has ended
        while not poller.poll():
            pass
    else:
        # Our parent's pid cannot be reused under us: once it dies we are adopted.
        while (os.getppid() == parent) if forked else alive(parent):
            time.sleep(PARENT_CHECK_SECONDS)
    os._exit(1)


def _init_worker(client: int, initializer=None, initargs=()):
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Stopping a worker must end it, whatever the process that started the fork
    # server held or ignored; a handler inherited from it would print a traceback.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
    end_with(client)
    if initializer is not None:
        initializer(*initargs)


@contextlib.contextmanager
def interrupts_held():
    """SIGINT and SIGTERM wait until the block ends, then act as they would have."""
    caught = []
    try:
        previous = {sig: signal.signal(sig, lambda signum, _: caught.append(signum))
                    for sig in (signal.SIGINT, signal.SIGTERM)}
    except ValueError:   # not the main thread: signals are not ours to hold
        yield
        return
    try:
        yield
    finally:
        for sig, handler in previous.items():
            if handler is not None:   # None: set outside Python, nothing of ours to restore
                signal.signal(sig, handler)
        if caught:
            signal.raise_signal(caught[0])


@contextlib.contextmanager
def _main_not_rerun():
    """Workers are told that the caller's ``__main__`` is nothing to import.

    A started worker normally runs the caller's script again (as ``__mp_main__``)
    so that functions defined there can be found; a script without an
    ``if __name__ == "__main__":`` guard would then start the whole job again in
    every worker. Our workers run functions of biomeseason only, so they skip
    it, and a plain script calling ``preprocess(...)`` works as it always did.
    """
    main = sys.modules.get("__main__")
    if main is None or getattr(main, "__spec__", None) is not None:
        yield   # run with -m, or an interactive session: nothing is run again
        return
    main.__spec__ = importlib.machinery.ModuleSpec("__main__", None)
    try:
        yield
    finally:
        main.__spec__ = None


@contextlib.contextmanager
def process_pool(workers: int, initializer=None, initargs=(), preload=()):
    """A ProcessPoolExecutor whose workers never outlive this process; ``preload``: modules the
    fork server imports once for all its workers, besides ``PRELOAD`` (if it is not running yet).

    Leaving the block by an exception (KeyboardInterrupt included) cancels
    pending work and terminates the workers at once instead of waiting.
    """
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=_context(preload), initializer=_init_worker,
                               initargs=(os.getpid(), initializer, initargs))
    try:
        # All workers now, not one per submitted job, with Ctrl-C and kill held until each
        # has its process id: a worker left half-started would be out of reach of terminate
        # and would print a traceback once this process had gone.
        launch = getattr(pool, "_launch_processes", None)
        if launch is not None:
            with interrupts_held(), _main_not_rerun():
                launch()
        yield pool
    except BaseException:
        for process in list((getattr(pool, "_processes", None) or {}).values()):
            with contextlib.suppress(Exception):
                process.terminate()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    else:
        pool.shutdown(wait=True)


def bounded_map(pool, fn, items, window: int | None = None):
    """``map(fn, items)`` through ``pool``, in order, with at most ``window`` items in flight
    (default: 4 per worker), so a million items never sit in memory as futures."""
    window = window or 4 * max(1, getattr(pool, "_max_workers", 1))
    items = iter(items)
    pending = collections.deque(pool.submit(fn, item) for item in itertools.islice(items, window))
    while pending:
        result = pending.popleft().result()
        pending.extend(pool.submit(fn, item) for item in itertools.islice(items, 1))
        yield result


def one_thread(user_api: str | None = None):
    """A context that limits OpenMP/BLAS (or only ``user_api``, e.g. "blas") to one thread. On
    ~10k points (k-means), a handful (colour naming) or one photo's familiarity score, starting
    threads costs more than it saves, and threads that spin beside PyTorch's own on a 2-core
    machine cost tens of milliseconds."""
    return _thread_pools().limit(limits=1, user_api=user_api)


@functools.cache
def _thread_pools():
    """The thread pools of the loaded libraries: scanning them is slow, so it is done once."""
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()
