"""Every file we write goes through here: atomic, never over an input, never into a stranger's folder.

    from biomeseason import files
    files.write_csv(out / "manifest.csv", table)        # temp file + os.replace
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

The work is done by one module a job; every name is reached as ``files.<name>``:
- ``atomic``: atomic writes (text, JSON, CSV, rows, Parquet, images, figures);
- ``targets``: our marker, ``claim_dir``, ``check_dir_target``, ``check_output_file``, ``remove_ours``;
- ``lock``: ``output_lock``, one writer per output;
- ``errors``: ``UsageError`` and ``OutOfSpaceError``.
This module keeps ``terminate_as_interrupt`` and the ``clean`` command.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys

from .atomic import (
    appending_rows,
    atomic_path,
    atomic_write,
    publish,
    save_figure,
    save_image,
    write_csv,
    write_json,
    write_parquet,
    write_rows,
    write_text,
)
from .errors import OUT_OF_SPACE, OutOfSpaceError, UsageError, out_of_space
from .lock import lock_path, output_lock
from .targets import (
    MARKER,
    MARKER_TEXT,
    check_dir_target,
    check_output_file,
    claim_dir,
    csv_header_is,
    is_ours,
    mark_ours,
    remove_ours,
)

__all__ = ["MARKER", "MARKER_TEXT", "OUT_OF_SPACE", "OutOfSpaceError", "UsageError", "out_of_space",
           "atomic_path", "atomic_write", "write_text", "write_json", "write_csv", "write_rows", "write_parquet",
           "appending_rows", "publish", "save_image", "save_figure", "is_ours", "mark_ours", "claim_dir",
           "check_dir_target", "check_output_file", "csv_header_is", "remove_ours", "lock_path", "output_lock",
           "terminate_as_interrupt", "get_args_parser", "main"]


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
