"""Which output folders and files we may write: our marker, claiming a folder, checking an output path.

A folder we create carries a small marker file (``MARKER``); we write into or
replace only folders that carry it, and ``remove_ours`` deletes only those. An
output file equal to an input, or an existing file that is not ours, is
refused in one sentence before any work starts. Reached through ``files``,
which re-exports every name here.
"""
from __future__ import annotations

import csv
import errno
import os
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path

from .atomic import write_text
from .errors import OutOfSpaceError, UsageError

MARKER = ".biomeseason"
MARKER_TEXT = "This folder was written by biomeseason; its commands may replace what is in it.\n"


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
