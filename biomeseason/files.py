"""Every file we write goes through here: atomic, never over an input, never into a stranger's folder.

    from biomeseason import files
    files.write_csv(table, out / "manifest.csv")        # temp file + os.replace
    with files.atomic_path(out / "best.pt") as tmp:      # for libraries that want a path
        torch.save(payload, tmp)
    out = files.claim_dir("runs/demo", force=False)      # creates it with our marker, or
                                                         # refuses a folder we did not make
    files.check_output_file("preds.csv", inputs=[photo])  # one sentence if it is unsafe
    with files.output_lock("runs/demo"):                 # one writer per output at a time
        ...

The rules (README "Your files are safe"):

* A write goes to a temporary file in the target's folder and is renamed over
  the target only when complete, so a reader, a crash or Ctrl-C never sees half
  a file, and the previous version stays valid until the new one is whole.
* A folder we create carries a small marker file (``MARKER``). We write into
  or replace only folders that carry it; any other existing folder is refused
  with one sentence naming it and ``--force``. ``--force`` lets us add our
  files to such a folder; it never deletes anything of the user's.
* An output path equal to an input, or a folder where a file is wanted, is
  refused before any work starts. An existing output file is replaced only if
  it is ours (``looks_ours`` says so, or it lies in a folder of ours).
* ``remove_ours`` (``make clean``) deletes only folders that carry the marker.
* A full disk, a used-up quota, a file-size limit or a read-only file system
  while writing is ``OutOfSpaceError``: one sentence naming the file and what
  ran out; the temporary file is gone and the previous version is untouched.
* One writer per output: ``output_lock`` holds a lock file beside the output
  (its pid and start time) for the whole run; a second run into the same
  output is refused in one sentence naming the first one's pid, and the lock
  of a run that is gone (killed) is taken over with a note.
"""
from __future__ import annotations

import argparse
import contextlib
import csv
import errno
import io
import itertools
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path

try:
    import fcntl
except ImportError:   # Windows: the lock file's pid says whether its run is alive
    fcntl = None

MARKER = ".biomeseason"
MARKER_TEXT = "This folder was written by biomeseason; its commands may replace what is in it.\n"


class UsageError(ValueError):
    """A setting or path we refuse before doing any work; the message is one sentence."""

    def _render_traceback_(self):
        # IPython/Jupyter call this instead of printing a traceback: a notebook
        # cell shows the one sentence, as the command line does.
        return [f"error: {self}"]


# What ran out, by errno, for OutOfSpaceError's sentence.
OUT_OF_SPACE = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is used up",
                errno.EFBIG: "a file would grow past the file-size limit (see `ulimit -f`)",
                errno.EROFS: "the file system is read-only"}


class OutOfSpaceError(OSError):
    """A write failed for want of room: a full disk or quota, a file-size limit, a read-only file system.

    ``str()`` is one sentence naming the file and what ran out.
    """

    def __str__(self):
        what = OUT_OF_SPACE.get(self.errno, (self.strerror or "").lower())
        return (f"cannot write {self.filename}: {what}; nothing half-written was left and the previous "
                "version is untouched")

    def _render_traceback_(self):
        return [f"error: {self}"]


def out_of_space(error: BaseException | None) -> OSError | None:
    """The out-of-room OSError that is ``error`` or caused it (torch wraps it in a RuntimeError), else None."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno in OUT_OF_SPACE:
            return error
        error = error.__cause__ or error.__context__
    return None


# ---------------------------------------------------------------- atomic writes

@contextlib.contextmanager
def atomic_path(path, mode: int = 0o644):
    """Yield a temporary path beside ``path``; on success it is renamed over ``path``.

    On any exception (Ctrl-C included) the temporary file is removed and
    ``path`` is left as it was; a want of room becomes ``OutOfSpaceError`` naming ``path``.
    """
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        tmp = Path(tmp)
        yield tmp
        os.chmod(tmp, mode)  # mkstemp makes files private; outputs are shared like any other file
        os.replace(tmp, path)
    except BaseException as e:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        full = out_of_space(e)
        if full is not None and not isinstance(e, OutOfSpaceError):
            raise OutOfSpaceError(full.errno, full.strerror, str(path)) from e
        raise


def atomic_write(path, data: bytes | str | Callable[[io.IOBase], None], *, text: bool | None = None,
                 fsync: bool = False) -> Path:
    """Write bytes, text, or whatever ``data(file)`` writes, atomically; returns the path.

    ``fsync`` makes the new contents durable before the rename (checkpoints);
    plain outputs skip it: the rename alone already keeps them whole. Ctrl-C or
    ``kill`` during ``data(file)`` acts when it returns: raised inside a library's
    writer (torch.save) it would come out as that library's error, or be lost.
    """
    from .workers import interrupts_held

    path = Path(path)
    binary = isinstance(data, (bytes, bytearray)) if text is None else not text
    with atomic_path(path) as tmp, interrupts_held() if callable(data) else contextlib.nullcontext():
        with open(tmp, "wb" if binary else "w", **({} if binary else {"encoding": "utf-8", "newline": ""})) as f:
            if callable(data):
                data(f)
            else:
                f.write(data)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
    return path


def write_text(path, text: str) -> Path:
    return atomic_write(path, text, text=True)


def write_json(path, obj) -> Path:
    return atomic_write(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n",
                        text=True)


def _json_default(value):
    if hasattr(value, "item"):  # numpy and torch scalars
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def write_csv(path, table, **kwargs) -> Path:
    """A pandas table as CSV with '\\n' line ends and no index: unchanged inputs give identical bytes.

    With '\\n' line ends the csv module leaves a bare '\\r' unquoted, and a
    macOS 'Icon\\r' would then split its row; such a table is written fully quoted.
    """
    from pandas.api.types import is_object_dtype, is_string_dtype

    has_cr = any(table[c].map(lambda v: isinstance(v, str) and "\r" in v).any()
                 for c in table.columns if is_object_dtype(table[c]) or is_string_dtype(table[c]))
    kwargs.setdefault("index", False)
    kwargs.setdefault("lineterminator", "\n")
    kwargs.setdefault("quoting", csv.QUOTE_ALL if has_cr else csv.QUOTE_MINIMAL)
    return atomic_write(path, lambda f: table.to_csv(f, **kwargs), text=True)


def write_rows(path, rows: Iterable[dict], fieldnames: list[str] | None = None) -> int:
    """Dict rows to CSV (columns from ``fieldnames`` or the first row); returns the row count.

    Nothing is written when there are no rows: an empty result never replaces
    an existing output (the caller says so to the user).
    """
    rows = iter(rows)
    first = next(rows, None)
    if first is None:
        return 0
    count = 0

    def dump(f):
        nonlocal count
        writer = csv.DictWriter(f, fieldnames=fieldnames or list(first), extrasaction="ignore",
                                lineterminator="\n")
        writer.writeheader()
        for row in itertools.chain([first], rows):
            writer.writerow(row)
            count += 1

    atomic_write(path, dump, text=True)
    return count


@contextlib.contextmanager
def appending_rows(path, fieldnames: list[str]):
    """Yield ``append(rows)``, which adds dict rows to the CSV at ``path`` and flushes them.

    For runs that stream results into a partial file of their own (which
    ``write_rows`` started, header included); ``publish`` then moves the
    finished file over the real output in one rename. Each call's rows are
    written whole or not at all: a call cut short (a full disk, Ctrl-C) is
    taken back, so the file always ends with a whole row.
    """
    with open(path, "ab", buffering=0) as f:
        def append(rows) -> None:
            text = io.StringIO()
            csv.DictWriter(text, fieldnames, lineterminator="\n", extrasaction="ignore").writerows(rows)
            data = memoryview(text.getvalue().encode("utf-8"))
            start = f.seek(0, os.SEEK_END)
            try:
                while data:
                    data = data[f.write(data):]
            except BaseException:
                f.truncate(start)
                raise
        yield append


def publish(partial, path) -> Path:
    """Replace ``path`` by the finished file ``partial`` (same folder) in one atomic rename."""
    os.replace(partial, path)
    return Path(path)


def save_image(path, image, format: str | None = None, **options) -> Path:
    """A PIL image, atomically; the format comes from the suffix unless given."""
    path = Path(path)
    fmt = format or {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG"}.get(path.suffix.lower())
    with atomic_path(path) as tmp:
        image.save(tmp, format=fmt, **options)
    return path


def save_figure(path, fig, dpi: int = 120, close: bool = True) -> Path:
    """A matplotlib figure, atomically; the format comes from the suffix."""
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format=path.suffix.lstrip(".") or "png")
    if close:
        import matplotlib.pyplot as plt
        plt.close(fig)
    return path


# ---------------------------------------------------------------- our folders

def is_ours(folder) -> bool:
    return (Path(folder) / MARKER).is_file()


def mark_ours(folder) -> Path:
    folder = Path(folder)
    if not is_ours(folder):
        write_text(folder / MARKER, MARKER_TEXT)
    return folder


def claim_dir(folder, *, force: bool = False, flag: str = "--out") -> Path:
    """The output folder, created with our marker; refuses a folder that is not ours.

    An existing empty folder is taken (and marked); an existing folder with
    files but no marker is refused unless ``force``, in which case our files are
    added beside the user's and nothing of theirs is removed.
    """
    folder = Path(folder)
    check_dir_target(folder, force=force, flag=flag)
    folder.mkdir(parents=True, exist_ok=True)
    return mark_ours(folder)


def check_dir_target(folder, *, force: bool = False, flag: str = "--out") -> None:
    """Raise UsageError if ``folder`` cannot be (or become) an output folder of ours."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"{flag} {folder} is a file, not a folder; choose a folder path")
    if folder.is_dir() and not is_ours(folder) and not force and _has_entries(folder):
        raise UsageError(f"{flag} {folder} already exists and was not written by biomeseason; "
                         f"choose a new folder or pass --force to add our files beside yours")
    parent = _existing_parent(folder)
    if not os.access(parent, os.W_OK | os.X_OK):
        _refuse_if_read_only(folder, parent)
        raise UsageError(f"{flag} {folder}: cannot write in {parent} (permission denied)")


def _refuse_if_read_only(path: Path, folder: Path) -> None:
    """A read-only file system is not a permission the user can change: say which it is."""
    try:
        read_only = bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except (AttributeError, OSError):   # no statvfs (Windows)
        read_only = False
    if read_only:
        raise OutOfSpaceError(errno.EROFS, os.strerror(errno.EROFS), str(path))


def _has_entries(folder: Path) -> bool:
    try:
        return any(folder.iterdir())
    except OSError:
        return True


def _existing_parent(path: Path) -> Path:
    path = path.absolute()
    while not path.exists():
        path = path.parent
    return path if path.is_dir() else path.parent


def check_output_file(path, *, inputs: Iterable = (), force: bool = False, flag: str = "--out",
                      looks_ours: Callable[[Path], bool] | None = None,
                      suffixes: Iterable[str] | None = None) -> Path:
    """Refuse, in one sentence, an output file path that would lose something.

    Refused: a folder; a path equal to (or the same file as) any input, or
    inside an input folder when ``force`` is not given; a suffix not in
    ``suffixes``; a folder we cannot write in; an existing file that is not
    ours (``looks_ours(path)`` false and not in a folder of ours) unless ``force``.
    """
    path = Path(path)
    if path.is_dir() or str(path).endswith(("/", os.sep)):
        raise UsageError(f"{flag} {path} is a folder; give a file path such as {Path(path) / 'out.csv'}")
    if suffixes is not None:
        allowed = [s.lower() for s in suffixes]
        if path.suffix.lower() not in allowed:
            raise UsageError(f"{flag} {path}: the file name must end in {' or '.join(allowed)}")
    target = path.resolve()
    for given in inputs:
        given = Path(given)
        same = given.resolve() == target or (path.exists() and given.exists() and _samefile(given, path))
        if same:
            raise UsageError(f"{flag} {path} is one of the inputs; it would be overwritten; "
                             "choose another output path")
    if path.exists() and not force:
        ours = is_ours(path.parent) or (looks_ours is not None and _safe(looks_ours, path))
        if not ours:
            raise UsageError(f"{flag} {path} already exists and was not written by biomeseason; "
                             "choose another path or pass --force to replace it")
    parent = _existing_parent(path.parent)
    if not os.access(parent, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        _refuse_if_read_only(path, parent)
        raise UsageError(f"{flag} {path}: cannot write there (permission denied)")
    return path


def _samefile(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _safe(check: Callable[[Path], bool], path: Path) -> bool:
    try:
        return bool(check(path))
    except (OSError, ValueError, UnicodeDecodeError):
        return False


def csv_header_is(columns: Iterable[str]) -> Callable[[Path], bool]:
    """A ``looks_ours`` test: the file is a CSV whose header starts with these columns."""
    want = list(columns)

    def check(path: Path) -> bool:
        with open(path, encoding="utf-8", newline="") as f:
            header = next(csv.reader(f), [])
        return header[:len(want)] == want
    return check


def remove_ours(folder) -> bool:
    """Delete ``folder`` if it carries our marker; returns whether it was deleted."""
    folder = Path(folder)
    if not folder.exists():
        return False
    if not is_ours(folder):
        raise UsageError(f"{folder} was not written by biomeseason (no {MARKER} in it); not deleting it")
    shutil.rmtree(folder)
    return True


# ---------------------------------------------------------------- one writer per output

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


# ---------------------------------------------------------------- signals

@contextlib.contextmanager
def terminate_as_interrupt():
    """Turn SIGTERM into KeyboardInterrupt for the duration, so ``finally`` blocks
    (temporary files, worker pools) run on ``kill`` as they do on Ctrl-C."""
    if os.name != "posix" or signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, None):
        yield
        return

    def handler(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread
        yield
        return
    # A blocked SIGTERM is inherited from whatever started us (a test runner, a
    # job system holding signals); blocked, kill would wait for ever.
    blocked = signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        signal.signal(signal.SIGTERM, previous)


# ---------------------------------------------------------------- command line: clean

def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Delete output folders written by biomeseason "
                                     f"(those holding a {MARKER} marker); any other folder is left alone.",
                                     add_help=add_help)
    parser.add_argument("folders", nargs="+", metavar="FOLDER", help="output folders to delete")
    return parser


def main(args) -> int:
    status = 0
    for folder in args.folders:
        try:
            print(f"deleted {folder}" if remove_ours(folder) else f"{folder}: not there, nothing to do")
        except UsageError as e:
            print(f"kept {e}", file=sys.stderr)
            status = 2
    return status
