"""One writer per output: a lock file beside the output, held for the whole run.

    with files.output_lock("runs/demo"):    # refused in one sentence if another run writes there
        ...

The lock file holds the run's pid and start time and is locked with ``flock``,
so the kernel releases it however the run dies; the lock of a run that is gone
is taken over with a note. Reached through ``files``, which re-exports it.
"""
from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from pathlib import Path

from .errors import UsageError

try:
    import fcntl
except ImportError:   # Windows: the lock file's pid says whether its run is alive
    fcntl = None


def lock_path(output) -> Path:
    """The lock file of an output (a folder or a file): ``.<name>.lock`` beside it."""
    output = Path(output)
    return output.with_name(f".{output.name}.lock")


@contextlib.contextmanager
def output_lock(output, flag: str = "--out", hold: bool = True):
    """Hold the one-writer lock of ``output`` for the block; yields the lock file's path.

    The lock is a file beside the output holding our pid and start time, locked
    with ``flock`` so that the kernel releases it however we die. A lock held
    by a live run raises UsageError naming that run's pid; a lock left by a run
    that is gone is taken over with a note on stderr. ``hold=False`` does
    nothing (the other processes of a multi-process run, whose first one holds it).
    """
    lock = lock_path(output)
    if not hold:
        yield lock
        return
    made = []   # folders made for the lock, removed again if the run leaves them empty
    folder = lock.parent.absolute()
    while not folder.exists():
        made.append(folder)
        folder = folder.parent
    lock.parent.mkdir(parents=True, exist_ok=True)
    fd, previous = _take_lock(lock, Path(output), flag)
    if previous:
        print(f"note: {flag} {output}: taking over the lock of run {_holder(previous)}, which is no "
              "longer running", file=sys.stderr, flush=True)
    try:
        yield lock
    finally:
        with contextlib.suppress(OSError):
            lock.unlink()   # while we still hold it: a run waiting on this file then looks again
        os.close(fd)
        for folder in made:
            with contextlib.suppress(OSError):
                folder.rmdir()


def _take_lock(lock: Path, output: Path, flag: str) -> tuple[int, dict | None]:
    """(open locked descriptor holding our record, the record of a dead run it held or None)."""
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if not _lock_fd(fd, lock):
                raise UsageError(f"{flag} {output} is being written by another run ({_holder(_read_record(fd))}); "
                                 f"wait for it to end, or choose another {flag}")
            try:   # the file we locked must still be the one at the path: an ending run removes it
                current = os.path.samestat(os.fstat(fd), os.stat(lock))
            except FileNotFoundError:
                current = False
            if not current:
                os.close(fd)
                continue
            previous = _read_record(fd, wait=0)
            record = json.dumps({"pid": os.getpid(), "started": time.strftime("%Y-%m-%d %H:%M:%S"),
                                 "command": " ".join(sys.argv)[:500]}) + "\n"
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, record.encode())
            return fd, previous
        except BaseException:
            os.close(fd)
            raise


def _lock_fd(fd: int, lock: Path) -> bool:
    """Whether we now hold the lock on ``fd``."""
    if fcntl is not None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return False
    # No flock: the run named in the file holds the lock while its process is alive.
    from .workers import alive

    record = _read_record(fd, wait=0)
    return not (record and record.get("pid") != os.getpid() and alive(int(record["pid"])))


def _read_record(fd: int, wait: float = 1.0) -> dict | None:
    """The JSON record in the lock file; a run that has just taken the lock gets ``wait`` seconds to write it."""
    deadline = time.monotonic() + wait
    while True:
        try:
            os.lseek(fd, 0, os.SEEK_SET)
            record = json.loads(os.read(fd, 4096).decode("utf-8", "replace"))
            if isinstance(record, dict) and "pid" in record:
                return record
        except ValueError:
            pass
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.05)


def _holder(record: dict | None) -> str:
    if not record:
        return "pid unknown"
    return f"pid {record.get('pid')}, started {record.get('started', 'at an unknown time')}"
