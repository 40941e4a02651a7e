"""Every file we write goes through here: atomic, never over an input, never into a stranger's folder.

    from biomeseason import files
    files.write_csv(table, out / "manifest.csv")        # temp file + os.replace
    with files.atomic_path(out / "best.pt") as tmp:      # for libraries that want a path
        torch.save(payload, tmp)
    out = files.claim_dir("runs/demo", force=False)      # creates it with our marker, or
                                                         # refuses a folder we did not make
    files.check_output_file("preds.csv", inputs=[photo])  # one sentence if it is unsafe

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
"""
from __future__ import annotations

import argparse
import contextlib
import csv
import io
import itertools
import json
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

MARKER = ".biomeseason"
MARKER_TEXT = "This folder was written by biomeseason; its commands may replace what is in it.\n"


class UsageError(ValueError):
    """A setting or path we refuse before doing any work; the message is one sentence."""

    def _render_traceback_(self):
        # IPython/Jupyter call this instead of printing a traceback: a notebook
        # cell shows the one sentence, as the command line does.
        return [f"error: {self}"]


# ---------------------------------------------------------------- atomic writes

@contextlib.contextmanager
def atomic_path(path, mode: int = 0o644):
    """Yield a temporary path beside ``path``; on success it is renamed over ``path``.

    On any exception (Ctrl-C included) the temporary file is removed and
    ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.chmod(tmp, mode)  # mkstemp makes files private; outputs are shared like any other file
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write(path, data: bytes | str | Callable[[io.IOBase], None], *, text: bool | None = None,
                 fsync: bool = False) -> Path:
    """Write bytes, text, or whatever ``data(file)`` writes, atomically; returns the path.

    ``fsync`` makes the new contents durable before the rename (checkpoints);
    plain outputs skip it: the rename alone already keeps them whole.
    """
    path = Path(path)
    binary = isinstance(data, (bytes, bytearray)) if text is None else not text
    with atomic_path(path) as tmp:
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
    finished file over the real output in one rename.
    """
    with open(path, "a", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames, lineterminator="\n", extrasaction="ignore")

        def append(rows) -> None:
            writer.writerows(rows)
            f.flush()  # a crash loses at most the rows in flight
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
        raise UsageError(f"{flag} {folder}: cannot write in {parent} (permission denied)")


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
