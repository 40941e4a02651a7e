"""Where the rows of ``predict --out`` go, in one process or in many (``torchrun``), CSV or Parquet.

    preds.csv | preds.parquet   the output: the previous one until a run is complete
    preds.csv.partial           rows so far of a run (of its first process, under torchrun), CSV
    preds.csv.partial.1, .2 ... rows so far of the other processes of a torchrun run

Every process streams its rows as CSV into a partial file of its own, a batch at a time and
whole rows only, so an interrupted run keeps them for ``--resume``. When every process is
done, the first appends the others' parts to its own in rank order: each process predicted a
contiguous share of the images (``distributed.share``), so these are the rows one process
would have written, in its order. Then the output is published: a rename for CSV; for
``.parquet`` a conversion row group by row group (``files.write_parquet``), so memory stays
bounded however many rows there are. Parquet needs pyarrow, which only this format imports.

``Previous`` reads what ``--resume`` keeps: the partial file (else a complete output, CSV or
Parquet) and the parts of other processes, each row once.
"""
from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from pathlib import Path

from ..io import files
from .rows import COLUMNS, OUR_HEADER

SUFFIXES = [".csv", ".parquet"]
PYARROW = "pyarrow==26.0.1"   # the version the tests ran with
COPY_ROWS = 10_000            # rows appended at a time when parts are joined


def partial_path(out: str | Path) -> Path:
    """Where a run appends its rows until it is complete: ``<out>.partial``."""
    out = Path(out)
    return out.with_name(out.name + ".partial")


def part_path(out: str | Path, rank: int) -> Path:
    """The partial file of process ``rank``: ``<out>.partial`` for the first, ``<out>.partial.<rank>`` else."""
    partial = partial_path(out)
    return partial if rank == 0 else partial.with_name(f"{partial.name}.{rank}")


def other_parts(out: str | Path) -> list[Path]:
    """The parts of processes other than the first that are there, in rank order."""
    partial = partial_path(out)
    pattern = re.compile(re.escape(partial.name) + r"\.([0-9]+)")
    found = [(int(m.group(1)), p) for p in partial.parent.glob(partial.name + ".*")
             if (m := pattern.fullmatch(p.name)) and int(m.group(1)) > 0 and p.is_file()]
    return [p for _, p in sorted(found)]


def is_parquet(path: str | Path) -> bool:
    return Path(path).suffix.lower() == ".parquet"


def check_engine(out: str | Path) -> None:
    """Refuse a ``.parquet`` output, before any work, where pyarrow is missing."""
    if not is_parquet(out):
        return
    try:
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        raise files.UsageError(f"--out {out}: writing Parquet needs pyarrow, which is not installed "
                               f"(pip install {PYARROW}), or write a .csv") from None


def columns_of(path: str | Path) -> list[str]:
    """The column names of a predictions file: a CSV's header, or a Parquet file's schema."""
    if is_parquet(path):
        import pyarrow.parquet as pq

        return list(pq.read_schema(path).names)
    with open(path, encoding="utf-8", newline="") as f:
        return next(csv.reader(f), [])


def looks_ours(path: Path) -> bool:
    """Whether a file is predictions of ours (the ``looks_ours`` test of ``files.check_output_file``)."""
    return columns_of(path)[:len(OUR_HEADER)] == OUR_HEADER


# --------------------------------------------------------------------------- reading rows

def csv_rows(path: Path) -> Iterator[dict]:
    """The whole rows of one of our CSV files, streamed; a last row cut by a crash is left out."""
    with open(path, "rb") as f:
        end = f.seek(0, 2)
        whole = end == 0 or (f.seek(end - 1) >= 0 and f.read(1) == b"\n")
    with open(path, encoding="utf-8", newline="") as f:
        rows = csv.DictReader(f)
        last = None
        for row in rows:
            if last is not None:
                yield last
            last = row
        if last is not None and whole:
            yield last


def parquet_rows(path: Path) -> Iterator[dict]:
    """The rows of one of our Parquet files, a row group at a time, as ``csv.DictWriter`` writes
    them back (None is an empty field; True, 0.1234 and 7 print as they did in the CSV)."""
    import pyarrow.parquet as pq

    for batch in pq.ParquetFile(path).iter_batches():
        yield from batch.to_pylist()


def rows_of(path: Path) -> Iterator[dict]:
    return parquet_rows(path) if is_parquet(path) else csv_rows(path)


class Previous:
    """The rows ``--resume`` keeps: of the partial file, else of a complete output, and of the
    other processes' parts; each (path, sha256) once. Read once to learn ``done`` and ``count``;
    ``rows()`` streams them again, so they are never all held in memory."""

    def __init__(self, out: Path, resume: bool):
        partial = partial_path(out)
        first = partial if partial.is_file() else out if out.is_file() else None
        self.sources = (([first] if first else []) + other_parts(out)) if resume else []
        self.from_output_alone = self.sources == [out]
        self.done: set[tuple[str, str]] = set()
        # Which camera kind answered the rows (model.kinds): "" a model of one kind, None a file whose version
        # did not say.
        self.cameras: set[str | None] = set()
        for row in self.rows():
            self.done.add((row["path"], row["sha256"]))
            self.cameras.add(row.get("camera"))
        self.count = len(self.done)

    def mixing(self, camera: str | None) -> str | None:
        """Why the rows of before cannot be continued by a model reading with ``camera`` (None: they can):
        one file holds the answers of one camera kind. Rows of a version that did not say are taken as a
        model of one kind's."""
        now = camera or ""
        others = self.cameras - {now} - (set() if now else {None})
        if not others:
            return None
        if None in others:
            return (f"its rows do not say which camera kind answered them (an older version wrote them), and "
                    f"this run would answer with the {now} kind")
        said = " and ".join(f"the {c} kind" if c else "a model of one kind" for c in sorted(others))
        return f"its rows were answered by {said}, and this run would answer with " + (
            f"the {now} kind" if now else "a model of one kind")

    def rows(self) -> Iterator[dict]:
        seen: set[tuple[str, str]] = set()
        for source in self.sources:
            for row in rows_of(source):
                key = (row["path"], row["sha256"])
                if key not in seen:   # a row twice: a run stopped between joining the parts and removing them
                    seen.add(key)
                    yield row

    @property
    def paths(self) -> set[str]:
        return {path for path, _ in self.done}


# --------------------------------------------------------------------------- writing

def start_part(path: Path, previous: Previous | None) -> None:
    """A process's partial file, new: the rows kept from before (the first process), else a header alone."""
    if previous is None or not files.write_rows(path, previous.rows(), COLUMNS):
        files.write_text(path, ",".join(COLUMNS) + "\n")


def remove_parts(paths) -> None:
    """Delete partial files of ours (their header says so); any other file is left alone."""
    for path in paths:
        if path.is_file() and looks_ours(path):
            path.unlink()


def join_parts(partial: Path, parts: list[Path]) -> None:
    """Append the rows of the other processes' ``parts`` to ``partial``, in order, a few thousand at a time."""
    with files.appending_rows(partial, COLUMNS) as append:
        for part in parts:
            chunk = []
            for row in csv_rows(part):
                chunk.append(row)
                if len(chunk) == COPY_ROWS:
                    append(chunk)
                    chunk = []
            append(chunk)


def publish(partial: Path, out: Path) -> None:
    """The finished partial CSV becomes ``out``: renamed, or converted to Parquet row group by row group."""
    if not is_parquet(out):
        files.publish(partial, out)
        return
    files.write_parquet(out, _csv_batches(partial), schema())
    partial.unlink()


def schema():
    """The Parquet schema of ``COLUMNS``: numbers as numbers, the flag as a boolean, the rest text."""
    import pyarrow as pa

    def kind(column: str):
        if column in ("month",) or re.fullmatch(r"month_top[0-9]+", column):
            return pa.int64()
        if column == "unfamiliar":
            return pa.bool_()
        if column in ("lat", "lon", "familiarity") or column.endswith("_p"):
            return pa.float64()
        return pa.string()

    return pa.schema([(c, kind(c)) for c in COLUMNS])


def _csv_batches(path: Path):
    """Record batches of our CSV at ``path``, typed by ``schema()``; an empty field is null, except in text."""
    from pyarrow import csv as pacsv

    types = schema()
    reader = pacsv.open_csv(
        path, read_options=pacsv.ReadOptions(block_size=16 << 20),
        parse_options=pacsv.ParseOptions(newlines_in_values=True),   # a file name may hold one
        convert_options=pacsv.ConvertOptions(column_types={f.name: f.type for f in types}, include_columns=COLUMNS,
                                             null_values=[""], strings_can_be_null=False,
                                             true_values=["True"], false_values=["False"]))
    yield from reader


def read_columns(path: Path, columns: list[str]):
    """A pandas table of some columns of a predictions file, CSV or Parquet (the others are not read)."""
    import pandas as pd

    if is_parquet(path):
        return pd.read_parquet(path, columns=columns)
    return pd.read_csv(path, usecols=columns, keep_default_na=False)
