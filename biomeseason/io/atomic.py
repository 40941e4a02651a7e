"""Atomic writes: every output goes to a temporary file beside it and is renamed over it when whole.

    files.write_csv(out / "manifest.csv", table)       # temp file + os.replace
    with files.atomic_path(out / "best.pt") as tmp:     # for libraries that want a path
        torch.save(payload, tmp)

Text, JSON, CSV tables and rows, Parquet (``write_parquet``: row group by row group, for
millions of rows; needs pyarrow), images and figures; ``appending_rows`` and
``publish`` for runs that stream into a partial file of their own. A want of
room while writing is ``OutOfSpaceError`` naming the output. Reached through
``files`` (``files.write_text`` ...), which re-exports every name here.
"""
from __future__ import annotations

import contextlib
import csv
import io
import itertools
import json
import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

from .errors import OutOfSpaceError, out_of_space


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


def write_parquet(path, batches: Iterable, schema, row_group_rows: int = 65_536) -> int:
    """Arrow record batches (or tables) of ``schema`` to a Parquet file, atomically, in row groups of
    ``row_group_rows``: at most one row group is held at a time, however many rows come. Returns the
    row count; with no rows nothing is written (an empty result never replaces an output)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    batches = iter(batches)
    first = next(batches, None)
    if first is None:
        return 0
    count = 0
    with atomic_path(path) as tmp, pq.ParquetWriter(tmp, schema) as writer:
        held, rows = [], 0
        for batch in itertools.chain([first], batches):
            held.append(batch)
            rows += batch.num_rows
            if rows >= row_group_rows:
                writer.write_table(pa.Table.from_batches(_record_batches(held), schema), row_group_rows)
                count += rows
                held, rows = [], 0
        if held or not count:
            writer.write_table(pa.Table.from_batches(_record_batches(held), schema), row_group_rows)
            count += rows
    return count


def _record_batches(parts) -> list:
    return [b for part in parts for b in (part.to_batches() if hasattr(part, "to_batches") else [part])]


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
