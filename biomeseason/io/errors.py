"""The two errors of writing that a user reads as one sentence (``files`` re-exports them).

* ``UsageError``: a setting or path refused before any work starts.
* ``OutOfSpaceError``: a write failed for want of room (a full disk or quota, a
  file-size limit, a read-only file system); ``out_of_space`` finds such an
  error behind the one a library raised.
"""
from __future__ import annotations

import errno


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
