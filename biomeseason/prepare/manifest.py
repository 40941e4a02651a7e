"""The manifest schema, defined once: what ``processed/manifest.csv`` holds and how it is read.

    from biomeseason.prepare.manifest import read_manifest, write_manifest, manifest_sha256
    df = read_manifest("data/processed")       # typed table, one row per kept image

Preprocessing writes it, training and the tests read it, all through here.

Columns, in this order (``COLUMNS``), then any extra columns of a labels CSV
(``region``, ``tile_id``, ... kept as text, in the CSV's order), and ``lat``
(degrees north: the CSV's, else the EXIF GPS latitude; blank where unknown;
training fits the biome's latitude prior on it) when any image has one:

=============  ========  ============================================================
path           str       the processed image, relative to processed/
source         str       the raw file, relative to raw/ (a name that is not valid
                         UTF-8 is shown with ``\\x..`` escapes and says so in ``note``)
sha256         str       of the raw file's bytes
biome          str       canonical biome name; '' when unknown
month          Int64     1..12; <NA> when unknown
season         str       winter/spring/summer/autumn for that month and hemisphere; ''
hemisphere     str       north/south: from the CSV (lat or hemisphere), EXIF GPS, else
                         the --hemisphere setting
month_source   str       where the month came from: csv, folder, name, exif, or ''
group          str       images that must share a split: a CSV ``group``, joined with
                         near duplicates (connected); a lone image is its own group,
                         named by its source
split          str       train, val or test
width, height  int       of the processed image
note           str       anything read leniently (close spellings, small images, frames)
=============  ========  ============================================================

Reading an older manifest without the newer columns (hemisphere,
month_source, group) fills them in: every image its own group.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd

from ..io import files

COLUMNS = ["path", "source", "sha256", "biome", "month", "season", "hemisphere", "month_source",
           "group", "split", "width", "height", "note"]
REQUIRED = ["path", "source", "sha256", "biome", "month", "season", "split", "width", "height"]
TEXT = ["path", "source", "sha256", "biome", "season", "hemisphere", "month_source", "group", "split",
        "note"]
SPLITS = ("train", "val", "test")
MONTH_SOURCES = ("csv", "folder", "name", "exif", "")
NAME = "manifest.csv"


def read_manifest(processed: str | Path, columns: list[str] | None = None) -> pd.DataFrame:
    """The manifest of a processed folder, typed: month Int64, sizes int, the rest text.

    ``columns``: read only these (of ``REQUIRED``), for a million rows in less memory."""
    path = Path(processed) / NAME
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run `python dataset_preproc.py --out {processed}` first")
    df = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8", usecols=columns)
    if columns is not None:
        return _typed(df)
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise ValueError(f"{path} lacks columns {missing}; re-run the preprocessing")
    defaults = {"hemisphere": "north", "month_source": "", "note": ""}
    for column, value in defaults.items():
        if column not in df.columns:
            df[column] = value
    if "group" not in df.columns:
        df["group"] = df["source"]
    df = _typed(df)
    extras = [c for c in df.columns if c not in COLUMNS]
    return df[COLUMNS + extras]


def _typed(df: pd.DataFrame) -> pd.DataFrame:
    if "month" in df.columns:
        df["month"] = pd.to_numeric(df["month"].replace("", None), errors="raise").astype("Int64")
    for column in [c for c in ("width", "height") if c in df.columns]:
        df[column] = pd.to_numeric(df[column], errors="raise").astype("int64")
    for column in [c for c in df.columns if c not in ("month", "width", "height")]:
        df[column] = df[column].astype("string")
    return df


def write_manifest(folder: str | Path, table: pd.DataFrame) -> Path:
    """manifest.csv in ``folder``, atomically; columns in schema order, extras after."""
    missing = [c for c in COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"manifest table lacks columns {missing}")
    extras = [c for c in table.columns if c not in COLUMNS]
    return files.write_csv(Path(folder) / NAME, table[COLUMNS + extras])


def manifest_sha256(processed: str | Path) -> str:
    """Hash of manifest.csv: ties a checkpoint to the exact data it saw."""
    return hashlib.sha256((Path(processed) / NAME).read_bytes()).hexdigest()
