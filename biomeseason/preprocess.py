"""Clean raw Earth photos into a training-ready folder: data/raw -> data/processed.

Run it once after adding photos; training never decodes the raw originals:

    python dataset_preproc.py                                   # data/raw -> data/processed
    python dataset_preproc.py --raw ~/iss_photos --size 256 --workers 2
    python dataset_preproc.py --raw ~/eurosat --vocab folders   # <class>/x.jpg layout
    python dataset_preproc.py --labels labels.csv               # path,biome,month
    python -m biomeseason preprocess ...                        # the same command

It shows a progress bar, then prints a summary such as:

    kept 336 of 340 files: data/raw -> data/processed (short side 256 px)

    biome                       train    val   test  total
    boreal_forest                  34      7      7     48
    ...
    temperate_grassland            34      7      7     48
    total                         238     49     49    336
    month known for 336 of 336 images

    rejected 4 (reasons in rejected.csv):
      duplicate (identical bytes)      1
      ignored                          1
      label                            1
      truncated                        1

and writes into --out:

    manifest.csv  one row per kept image: path, source, sha256, biome, month,
                  season, split, width, height, note
    rejected.csv  one row per raw file not kept: source, reason
    labels.json   classes in head order, months, hemisphere, vocabulary
    summary.txt   the summary above
    images/       the kept images, mirroring raw/'s folders, as RGB JPEG

Decisions worth knowing:

* Labels come from the labels CSV if one is given (files it does not list are
  rejected); else from folders (``<biome>/<month>/x``, ``<biome>/x``); else from
  the file name ``<Biome>[ free text]_<Month>[suffix].<ext>``. A first folder
  named train/val/test fixes that image's split. Anything unreadable is
  rejected with the reason; a close misspelling is kept and noted.
* Images are never upscaled: upscaling invents no detail and the training
  transforms resize anyway. An original whose short side is below ``min_side``
  is rejected as too small; one between ``min_side`` and ``size`` is stored at
  its own size, with a note.
* Duplicates (identical bytes, or near-identical: close perceptual hash *and*
  close colours) are grouped and one is kept, so no group can straddle splits.
  The keeper is the copy in the most held-out given split (test, then val, then
  train, so a test set stays as given and the leaked copy leaves training),
  then the one with more labels, then the larger, then by name. A group whose
  copies carry different labels is rejected whole: we cannot tell which is
  right.
* Splits are stratified by biome and, inside a biome, spread evenly over the
  months; an image's place is fixed by a hash of the seed and its content, so
  renaming files does not move them and the same seed gives the same splits.
* raw/ is only read. Output is built in a temporary sibling of --out and
  swapped in at the end, so an interrupted run leaves the previous output
  valid; an --out that exists but was not written by us is never replaced.
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import os
import shutil
import sys
import tempfile
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import imagehash
import numpy as np
import pandas as pd
from PIL import Image, ImageOps, UnidentifiedImageError
from tqdm import tqdm

from biomeseason.images import to_rgb
from biomeseason.labels import (FileLabel, LabelError, Vocabulary, parse_filename,
                                parse_month, season_of)

# ---- defaults --------------------------------------------------------------
RAW = "data/raw"
OUT = "data/processed"
SIZE = 256                  # short side of the stored images, in pixels
MIN_SIDE = 32               # originals with a shorter short side are rejected as too small
MAX_PIXELS = 89_478_485     # larger originals are rejected as decompression bombs (PIL's own limit)
JPEG_QUALITY = 95           # stored images; chroma kept at full resolution (colour is a cue)
VAL_FRAC = 0.15
TEST_FRAC = 0.15
SEED = 0
HEMISPHERE = "north"        # seasons from months; "south" shifts them by six months
# Near-duplicates: both tests must pass. Measured on our synthetic scenes: a
# copy re-encoded at quality 50, halved or doubled sits at a pHash distance of
# 0-2 and a thumbnail difference below 1 level (a 5% brightness edit: up to 10);
# distinct scenes are far apart (2,016 scenes in three sets: pairs of one biome
# and month 16 or more bits apart, any pair 12 or more). The colour test keeps
# apart views of one place in different months, whose structure can match but
# whose colours (snow, green-up, autumn) do not. Crops are not caught.
PHASH_MAX_DISTANCE = 8      # of 64 bits
THUMB_MAX_DIFF = 10.0       # mean absolute difference of 16x16 RGB thumbnails, 0..255
THUMB_SIZE = 16

MANIFEST_COLUMNS = ["path", "source", "sha256", "biome", "month", "season",
                    "split", "width", "height", "note"]
SPLITS = ("train", "val", "test")
# Folder names that fix a split; a first folder under raw/ with one of these names.
SPLIT_FOLDERS = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}
SYSTEM_FILES = {".ds_store", "thumbs.db", "ehthumbs.db", "desktop.ini", "icon\r"}
SYSTEM_FOLDERS = {"__macosx"}
READMES = {"readme", "readme.md", "readme.txt"}


@dataclass
class PreprocessResult:
    out: Path
    manifest: pd.DataFrame      # the rows of manifest.csv
    rejected: pd.DataFrame      # the rows of rejected.csv
    summary: str                # the text printed by main() and saved as summary.txt
    vocab: Vocabulary


# ---- listing and labels ------------------------------------------------------

def list_raw_files(raw: Path) -> list[str]:
    """Every file under raw/, as sorted POSIX paths relative to it.

    Symlinked folders are followed (users link data sets in), each real folder
    once, so a link loop cannot hang us.
    """
    found, seen = [], set()
    for folder, dirs, files in os.walk(raw, followlinks=True):
        dirs.sort()  # a fixed walk order decides which of two linked paths is listed
        real = os.path.realpath(folder)
        if real in seen:
            dirs[:] = []
            continue
        seen.add(real)
        rel = Path(folder).relative_to(raw)
        found += [(rel / f).as_posix() for f in files]
    return sorted(found)


def ignore_reason(source: str, labels_csv: Path | None, raw: Path) -> str:
    """Why a file is not data at all (system file, read-me, our labels CSV), else ''."""
    parts = PurePosixPath(source).parts
    name = parts[-1]
    if name.lower() in SYSTEM_FILES or name.startswith("."):
        return "ignored: system file"
    if any(p.startswith(".") or p.lower() in SYSTEM_FOLDERS for p in parts[:-1]):
        return "ignored: system file (in a hidden or system folder)"
    if len(parts) == 1 and name.lower() in READMES:
        return "ignored: read-me file"
    if labels_csv is not None and (raw / source).resolve() == labels_csv.resolve():
        return "ignored: the labels CSV"
    return ""


def _empty(path: Path) -> str:
    try:
        return "empty file: 0 bytes" if path.stat().st_size == 0 else ""
    except OSError:  # a broken link, say: the reader reports it with the reason
        return ""


def given_split(source: str) -> tuple[str, list[str]]:
    """The split fixed by a first folder named train/val/test, and the remaining path parts."""
    parts = list(PurePosixPath(source).parts)
    if len(parts) > 1 and parts[0].lower() in SPLIT_FOLDERS:
        return SPLIT_FOLDERS[parts[0].lower()], parts[1:]
    return "", parts


def class_folders(sources: list[str]) -> list[str]:
    """Names of the class folders (first folder below any split folder), for --vocab folders."""
    names = set()
    for source in sources:
        _, parts = given_split(source)
        if len(parts) > 1:
            names.add(parts[0])
    return sorted(names)


def load_vocabulary(vocab, sources: list[str]) -> Vocabulary:
    """The default vocabulary (None), a vocabulary file, or "folders": the class folder names."""
    if isinstance(vocab, Vocabulary):
        return vocab
    if vocab is None:
        return Vocabulary.load()
    if str(vocab) == "folders":
        names = class_folders(sources)
        if not names:
            raise ValueError("--vocab folders: no class folders under raw/ "
                             "(expected raw/<class>/x.jpg, optionally under train/, val/, test/)")
        return Vocabulary.from_names(names)
    return Vocabulary.load(vocab)


def read_labels_csv(path: Path) -> dict[str, tuple[str, str]]:
    """{source: (biome text, month text)} from a CSV with columns path,biome,month.

    Values are parsed per file later, so one bad row rejects one image instead
    of the run; a malformed file as a whole is an error.
    """
    # utf-8-sig: spreadsheets saving "CSV UTF-8" put a byte-order mark before 'path'.
    table = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    table.columns = [c.strip().lower() for c in table.columns]
    if "path" not in table or not {"biome", "month"} & set(table.columns):
        raise ValueError(f"labels CSV {path} needs a 'path' column and a 'biome' and/or 'month' column; "
                         f"it has {list(table.columns)}")
    keys = table["path"].map(_csv_key)
    repeated = sorted(keys[keys.duplicated()].unique())
    if repeated:
        raise ValueError(f"labels CSV {path} lists a path more than once: {repeated[:5]}")
    biomes = table["biome"] if "biome" in table else pd.Series("", index=table.index)
    months = table["month"] if "month" in table else pd.Series("", index=table.index)
    return {k: (b.strip(), m.strip()) for k, b, m in zip(keys, biomes, months)}


def _csv_key(path: str) -> str:
    """A CSV path as the POSIX path relative to raw/ that we list files by."""
    key = path.strip().replace("\\", "/")
    while key.startswith("./"):
        key = key[2:]
    return key


def labels_from_csv(source: str, rows: dict, vocab: Vocabulary) -> FileLabel:
    if source not in rows:
        raise LabelError("not listed in the labels CSV")
    biome_text, month_text = rows[source]
    if not biome_text and not month_text:
        raise LabelError("biome and month both blank in the labels CSV")
    match = vocab.resolve(biome_text) if biome_text else None
    if biome_text and match is None:
        raise LabelError(f"biome '{biome_text}' in the labels CSV is not in the vocabulary")
    month = parse_month(month_text) if month_text else None
    if month_text and month is None:
        raise LabelError(f"month '{month_text}' in the labels CSV is not a month")
    return FileLabel(match.biome if match else None, month, match.note if match else "")


def labels_from_path(parts: list[str], vocab: Vocabulary) -> FileLabel:
    """Labels from ``<biome>/<month>/x``, ``<biome>/x`` or, at the top, the file name."""
    *folders, name = parts
    if not folders:
        return parse_filename(name, vocab)
    if len(folders) > 2:
        raise LabelError(f"folders nested too deep ('{'/'.join(folders)}'): "
                         "expected <biome>/<month>/file or <biome>/file")
    match = vocab.resolve(folders[0])
    if match is None and len(folders) == 1:
        # A folder that is no biome may just group files named by the convention.
        try:
            return parse_filename(name, vocab)
        except LabelError as e:
            raise LabelError(f"folder '{folders[0]}' is not a known biome and {e}") from None
    if match is None:
        raise LabelError(f"folder '{folders[0]}' is not a known biome")
    if len(folders) == 2:
        month = parse_month(folders[1])
        if month is None:
            raise LabelError(f"folder '{folders[1]}' is not a month")
        return FileLabel(match.biome, month, match.note)
    return FileLabel(match.biome, _month_from_name(name, match.biome, vocab), match.note)


def _month_from_name(name: str, biome: str, vocab: Vocabulary) -> int | None:
    """The month of a file inside a biome folder, when its name follows the convention.

    Only month words count here: in a class folder a number is a picture index.
    """
    try:
        label = parse_filename(name, vocab, bare_numbers=False)
    except LabelError:
        return None
    if label.biome != biome:
        raise LabelError(f"folder says {biome} but the file name says {label.biome}")
    return label.month


# ---- decoding one file (runs in the worker processes) ------------------------

class Rejected(Exception):
    """A file we do not keep; the message is the reason written to rejected.csv."""


@dataclass(frozen=True)
class Job:
    source: str         # relative to raw/
    src: str            # absolute path to read
    dest: str           # absolute path of the processed JPEG
    size: int
    min_side: int
    max_pixels: int


@dataclass
class Outcome:
    source: str
    reason: str = ""            # non-empty: rejected
    sha256: str = ""
    width: int = 0              # of the stored image
    height: int = 0
    pixels: int = 0             # of the original, to keep the largest of a duplicate group
    phash: int = 0
    thumb: bytes = b""          # THUMB_SIZE x THUMB_SIZE x 3, for the near-duplicate colour test
    note: str = ""


def process_file(job: Job) -> Outcome:
    """Read, hash, validate, decode, orient, convert, resize and store one file."""
    try:
        data = Path(job.src).read_bytes()
    except OSError as e:
        return Outcome(job.source, reason=f"unreadable: {e.strerror or e}")
    if not data:
        return Outcome(job.source, reason="empty file: 0 bytes")
    sha = hashlib.sha256(data).hexdigest()
    try:
        im, original, notes = decode(data, job.size, job.min_side, job.max_pixels)
    except Rejected as e:
        return Outcome(job.source, reason=str(e), sha256=sha)
    im = resize_short_side(im, job.size)
    if min(original) < job.size:
        notes.append(f"kept at {im.width}x{im.height}: smaller than size {job.size}, not upscaled")
    Path(job.dest).parent.mkdir(parents=True, exist_ok=True)
    im.save(job.dest, "JPEG", quality=JPEG_QUALITY, subsampling=0)
    phash, thumb = fingerprint(im)
    return Outcome(job.source, sha256=sha, width=im.width, height=im.height,
                   pixels=original[0] * original[1], phash=phash, thumb=thumb,
                   note="; ".join(notes))


def decode(data: bytes, size: int, min_side: int, max_pixels: int):
    """(RGB image, original (w, h), notes): the whole file decoded, EXIF-oriented.

    A JPEG is decoded at the smallest 1/2, 1/4 or 1/8 scale that still covers
    ``size`` (libjpeg scales in the DCT), which is most of our speed on
    12-megapixel photos; every byte is still decoded, so truncation is caught.
    """
    with _pixel_limit(max_pixels), warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            im = Image.open(io.BytesIO(data))
            original = im.size
            if min(original) < min_side:
                raise Rejected(f"too small: {original[0]}x{original[1]} "
                               f"(short side below {min_side} px)")
            im.draft(None, _draft_request(original, size))
            im.load()
        except Rejected:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
            raise Rejected(f"decompression bomb: {e}") from None
        except UnidentifiedImageError:
            raise Rejected("not an image: no image format recognised") from None
        except OSError as e:
            kind = "truncated" if "truncated" in str(e) else "corrupt"
            raise Rejected(f"{kind}: {e}") from None
        except Exception as e:  # plugins raise many types on malformed data; one file must not end the run
            raise Rejected(f"corrupt: {type(e).__name__}: {e}") from None
    notes = []
    try:
        im = ImageOps.exif_transpose(im)
    except Exception as e:  # malformed EXIF is common and must not cost the image
        notes.append(f"EXIF unreadable ({type(e).__name__}); orientation not applied")
    try:
        return to_rgb(im), original, notes
    except ValueError as e:
        raise Rejected(str(e)) from None


@contextmanager
def _pixel_limit(max_pixels: int):
    """PIL checks image sizes against a module global; set ours for the duration."""
    before = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = max_pixels
    try:
        yield
    finally:
        Image.MAX_IMAGE_PIXELS = before


def _draft_request(original: tuple[int, int], size: int) -> tuple[int, int]:
    """The (w, h) that a JPEG draft must still cover: short side ``size``, long side rounded up."""
    w, h = original
    if w <= h:
        return size, -(-h * size // w)
    return -(-w * size // h), size


def resize_short_side(im: Image.Image, size: int) -> Image.Image:
    """Shrink so the short side is ``size``; never enlarge."""
    short = min(im.size)
    if short <= size:
        return im
    w, h = im.size
    target = (max(1, round(w * size / short)), max(1, round(h * size / short)))
    target = tuple(size if side == short else t for side, t in zip(im.size, target))
    # reducing_gap: a box pre-shrink before Lanczos; visually the same, much faster on big PNGs.
    return im.resize(target, Image.Resampling.LANCZOS, reducing_gap=3.0)


def fingerprint(im: Image.Image) -> tuple[int, bytes]:
    """(64-bit perceptual hash, 16x16 RGB thumbnail bytes) of an RGB image, for near-duplicates."""
    bits = imagehash.phash(im).hash.flatten()
    thumb = im.resize((THUMB_SIZE, THUMB_SIZE), Image.Resampling.BOX)
    return int("".join("1" if b else "0" for b in bits), 2), thumb.tobytes()


# ---- duplicates ----------------------------------------------------------------

def near_duplicate_pairs(phash: np.ndarray, thumbs: np.ndarray,
                         max_distance: int = PHASH_MAX_DISTANCE,
                         max_diff: float = THUMB_MAX_DIFF) -> list[tuple[int, int, int]]:
    """(i, j, hash distance) with i < j for every near-identical pair.

    phash: (N,) uint64; thumbs: (N, T, T, 3) uint8. All pairs are compared, in
    blocks of rows to bound memory: fine for tens of thousands of images.
    """
    n, pairs, block = len(phash), [], 512
    for start in range(0, n, block):
        rows = phash[start:start + block]
        dist = np.bitwise_count(rows[:, None] ^ phash[None, :])       # (B, N)
        i, j = np.nonzero(dist <= max_distance)
        i = i + start
        keep = j > i
        for a, b in zip(i[keep], j[keep]):
            diff = np.abs(thumbs[a].astype(np.int16) - thumbs[b]).mean()
            if diff <= max_diff:
                pairs.append((int(a), int(b), int(dist[a - start, b])))
    return pairs


def group_duplicates(sha256: list[str], pairs: list[tuple[int, int, int]]) -> list[list[int]]:
    """Groups (lists of indices, sorted) of images that are copies of each other, size >= 2."""
    parent = list(range(len(sha256)))

    def root(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first = {}
    for i, digest in enumerate(sha256):
        parent[root(i)] = root(first.setdefault(digest, i))
    for i, j, _ in pairs:
        parent[root(i)] = root(j)
    groups: dict[int, list[int]] = {}
    for i in range(len(sha256)):
        groups.setdefault(root(i), []).append(i)
    return [g for g in groups.values() if len(g) > 1]


def resolve_duplicates(table: pd.DataFrame, pairs) -> dict[int, str]:
    """{row index: reason} for every image to drop as a duplicate (row indices of table)."""
    distance = {(i, j): d for i, j, d in pairs}
    drop = {}
    for group in group_duplicates(list(table["sha256"]), pairs):
        rows = table.iloc[group]
        biomes = set(rows["biome"].dropna())
        months = set(rows["month"].dropna())
        if len(biomes) > 1 or len(months) > 1:
            said = ", ".join(f"{r.source} ({r.biome or '?'}, {_month_text(r.month) or '?'})"
                             for r in rows.itertuples())
            for i in group:
                drop[i] = f"duplicates with conflicting labels: {said}"
            continue
        order = sorted(group, key=lambda i: _keeper_rank(table.iloc[i]))
        keeper = order[0]
        for i in order[1:]:
            if table.iloc[i]["sha256"] == table.iloc[keeper]["sha256"]:
                how = "identical bytes"
            else:
                d = distance.get((min(i, keeper), max(i, keeper)))
                how = f"near-identical, hash distance {d}" if d is not None else "near-identical, via others"
            drop[i] = f"duplicate of {table.iloc[keeper]['source']} ({how})"
    return drop


def _keeper_rank(row) -> tuple:
    split_rank = {"test": 0, "val": 1, "train": 2, "": 3}[row["given_split"]]
    known = int(pd.notna(row["biome"])) + int(pd.notna(row["month"]))
    return split_rank, -known, -row["pixels"], row["source"]


# ---- splits --------------------------------------------------------------------

def assign_splits(table: pd.DataFrame, val_frac: float, test_frac: float, seed: int) -> pd.Series:
    """train/val/test per row: the given split, else stratified by biome and month.

    Inside a biome, images are ordered by month and then by a hash of (seed,
    content); the splits are then dealt along that order in their proportions
    (a largest-remainder sequence), so every biome and, as far as counts allow,
    every month gets its share.
    """
    split = table["given_split"].copy()
    free = table[split == ""]
    fractions = {"train": 1.0 - val_frac - test_frac, "val": val_frac, "test": test_frac}
    for _, rows in free.groupby(free["biome"].fillna(""), sort=True):
        key = rows["sha256"].map(lambda digest: hashlib.sha256(f"{seed}:{digest}".encode()).hexdigest())
        order = rows.assign(_month=rows["month"].fillna(99), _key=key).sort_values(["_month", "_key"])
        split[order.index] = deal(len(order), fractions)
    return split


def deal(n: int, fractions: dict[str, float]) -> list[str]:
    """n labels spread evenly in the given proportions: each step goes to the most owed."""
    owed = dict.fromkeys(fractions, 0.0)
    out = []
    for _ in range(n):
        for name in owed:
            owed[name] += fractions[name]
        pick = max(owed, key=owed.get)  # ties go to the first listed
        owed[pick] -= 1.0
        out.append(pick)
    return out


# ---- the run ---------------------------------------------------------------------

def preprocess(raw=RAW, out=OUT, size=SIZE, seed=SEED, workers=None, labels_csv=None, vocab=None,
               val_frac=VAL_FRAC, test_frac=TEST_FRAC, hemisphere=HEMISPHERE, progress=True,
               min_side=MIN_SIDE, max_pixels=MAX_PIXELS) -> PreprocessResult:
    """Clean raw/ into out/ (see the module docstring); returns what was written."""
    raw, out = Path(raw), Path(out)
    labels_csv = Path(labels_csv) if labels_csv else None
    _check_settings(raw, out, size, min_side, val_frac, test_frac, hemisphere)
    sources = list_raw_files(raw)
    # Files that are no data, or empty, are reported before any label is read.
    ignored = {s: r for s in sources if (r := ignore_reason(s, labels_csv, raw) or _empty(raw / s))}
    data_sources = [s for s in sources if s not in ignored]
    vocabulary = load_vocabulary(vocab, data_sources)
    csv_rows = read_labels_csv(labels_csv) if labels_csv else None

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f"{out.name}.tmp-", dir=out.parent))
    try:
        labelled, rejected = label_files(data_sources, vocabulary, csv_rows)
        rejected.update(ignored)
        unused = sorted(set(csv_rows or ()) - set(sources))
        notices = [f"warning: {len(unused)} row(s) of the labels CSV name no file under raw/, "
                   f"e.g. {unused[0]!r}"] if unused else []
        paths = output_paths(list(labelled))
        jobs = [Job(source, str(raw / source), str(tmp / path), size, min_side, max_pixels)
                for source, path in paths.items()]
        outcomes = run_jobs(jobs, workers, progress)
        manifest, more_rejected = build_manifest(labelled, paths, outcomes, tmp, val_frac,
                                                 test_frac, seed, hemisphere)
        rejected.update(more_rejected)
        rejected_table = pd.DataFrame(sorted(rejected.items()), columns=["source", "reason"])
        summary = make_summary(manifest, rejected_table, vocabulary, len(sources), raw, out, size,
                               notices)
        write_outputs(tmp, manifest, rejected_table, vocabulary, hemisphere, summary)
        swap_into_place(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return PreprocessResult(out, manifest, rejected_table, summary, vocabulary)


def _check_settings(raw: Path, out: Path, size, min_side, val_frac, test_frac, hemisphere):
    """Refuse, before touching anything, settings that could lose data or make no sense."""
    if not raw.is_dir():
        raise FileNotFoundError(f"raw folder not found: {raw}")
    raw_r, out_r = raw.resolve(), out.resolve()
    if out_r == raw_r or raw_r in out_r.parents:
        raise ValueError(f"--out {out} is inside --raw {raw}: raw/ is never written to")
    if out_r in raw_r.parents:
        raise ValueError(f"--raw {raw} is inside --out {out}: replacing out/ would delete it")
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / "manifest.csv").is_file())):
        raise ValueError(f"refusing to replace {out}: it exists and holds no manifest.csv, "
                         "so it was not written by this tool")
    if not 1 <= min_side <= size:
        raise ValueError(f"need 1 <= min_side <= size, got min_side={min_side}, size={size}")
    if val_frac < 0 or test_frac < 0 or val_frac + test_frac >= 1:
        raise ValueError(f"need val_frac, test_frac >= 0 with a sum below 1, got {val_frac}, {test_frac}")
    season_of(1, hemisphere)  # raises on an unknown hemisphere


def label_files(sources, vocab, csv_rows) -> tuple[dict[str, tuple[str, FileLabel]], dict[str, str]]:
    """({source: (given split, labels)}, {source: reason}) from the CSV or the paths."""
    labelled, rejected = {}, {}
    for source in sources:
        split, parts = given_split(source)
        try:
            label = (labels_from_csv(source, csv_rows, vocab) if csv_rows is not None
                     else labels_from_path(parts, vocab))
        except LabelError as e:
            rejected[source] = f"label: {e}"
            continue
        labelled[source] = (split, label)
    return labelled, rejected


def output_paths(sources: list[str]) -> dict[str, str]:
    """{source: images/... .jpg}: raw/'s folders mirrored, the suffix made .jpg.

    'x.png' and 'x.jpg' would meet, so later ones (in sorted order) get '-2',
    '-3'; compared case-blind, for file systems that are.
    """
    taken, paths = set(), {}
    for source in sorted(sources):
        base = PurePosixPath("images") / PurePosixPath(source).with_suffix("")
        path, n = f"{base}.jpg", 1
        while path.casefold() in taken:
            n += 1
            path = f"{base}-{n}.jpg"
        taken.add(path.casefold())
        paths[source] = path
    return paths


def run_jobs(jobs: list[Job], workers, progress: bool) -> list[Outcome]:
    """Process every job, in a process pool when there is more than one worker."""
    workers = workers or os.cpu_count() or 1
    bar = tqdm(total=len(jobs), desc="preprocess", unit="img", disable=not progress, file=sys.stderr)
    try:
        if workers == 1 or len(jobs) < 2:
            results = []
            for job in jobs:
                results.append(process_file(job))
                bar.update()
            return results
        chunk = max(1, min(16, len(jobs) // (workers * 8)))
        with ProcessPoolExecutor(max_workers=workers) as pool:
            results = []
            for outcome in pool.map(process_file, jobs, chunksize=chunk):
                results.append(outcome)
                bar.update()
            return results
    finally:
        bar.close()


def build_manifest(labelled, paths, outcomes, tmp: Path, val_frac, test_frac, seed, hemisphere):
    """(manifest table, {source: reason}): drop failures and duplicates, assign splits."""
    rejected = {o.source: o.reason for o in outcomes if o.reason}
    good = [o for o in outcomes if not o.reason]
    table = pd.DataFrame({
        "path": [paths[o.source] for o in good],
        "source": [o.source for o in good],
        "sha256": [o.sha256 for o in good],
        "biome": pd.Series([labelled[o.source][1].biome for o in good], dtype=object),
        "month": pd.array([labelled[o.source][1].month for o in good], dtype="Int64"),
        "given_split": [labelled[o.source][0] for o in good],
        "width": [o.width for o in good],
        "height": [o.height for o in good],
        "pixels": [o.pixels for o in good],
        "note": ["; ".join(n for n in (labelled[o.source][1].note, o.note) if n) for o in good],
    })
    phash = np.array([o.phash for o in good], dtype=np.uint64)
    thumbs = np.frombuffer(b"".join(o.thumb for o in good), np.uint8).reshape(
        len(good), THUMB_SIZE, THUMB_SIZE, 3)
    drops = resolve_duplicates(table, near_duplicate_pairs(phash, thumbs))
    for i, reason in drops.items():
        rejected[table.iloc[i]["source"]] = reason
        (tmp / table.iloc[i]["path"]).unlink()
    table = table.drop(index=list(drops)).reset_index(drop=True)
    table["split"] = assign_splits(table, val_frac, test_frac, seed)
    table["season"] = [season_of(m if pd.notna(m) else None, hemisphere) for m in table["month"]]
    table["biome"] = table["biome"].fillna("")
    table = table.sort_values("source", kind="stable").reset_index(drop=True)
    return table[MANIFEST_COLUMNS], rejected


def _month_text(month) -> str:
    return "" if pd.isna(month) else str(int(month))


# ---- writing and reporting -------------------------------------------------------

def write_outputs(folder: Path, manifest, rejected, vocab: Vocabulary, hemisphere: str, summary: str):
    write_csv(manifest, folder / "manifest.csv")
    write_csv(rejected, folder / "rejected.csv")
    labels = {"biomes": vocab.biomes, "months": list(range(1, 13)), "hemisphere": hemisphere,
              "vocabulary": vocab.to_json()["biomes"]}
    (folder / "labels.json").write_text(json.dumps(labels, indent=2) + "\n", encoding="utf-8")
    (folder / "summary.txt").write_text(summary + "\n", encoding="utf-8")


def write_csv(table: pd.DataFrame, path: Path):
    """CSV with '\n' line ends and no floats, so unchanged inputs give identical bytes.

    With '\n' line ends the csv module leaves a bare '\r' unquoted, and a
    macOS 'Icon\r' would then split its row; such a file is written fully quoted.
    """
    has_cr = table.map(lambda v: isinstance(v, str) and "\r" in v).to_numpy().any()
    table.to_csv(path, index=False, lineterminator="\n",
                 quoting=csv.QUOTE_ALL if has_cr else csv.QUOTE_MINIMAL)


def swap_into_place(tmp: Path, out: Path):
    """Replace out/ by tmp/ with two renames; if the second fails, put the old one back."""
    if not out.exists():
        os.rename(tmp, out)
        return
    old = out.with_name(f"{out.name}.old-{os.getpid()}")
    os.rename(out, old)
    try:
        os.rename(tmp, out)
    except BaseException:
        os.rename(old, out)
        raise
    shutil.rmtree(old)


def reason_kind(reason: str) -> str:
    """The category of a rejection reason, for the summary table."""
    if reason.startswith("duplicate of"):
        return "duplicate (identical bytes)" if "(identical bytes)" in reason else "duplicate (near-identical)"
    return reason.split(":", 1)[0]


def make_summary(manifest, rejected, vocab: Vocabulary, n_files: int, raw: Path, out: Path,
                 size: int, notices: list[str] = ()) -> str:
    lines = [f"kept {len(manifest)} of {n_files} files: {raw} -> {out} (short side {size} px)", ""]
    counts = pd.crosstab(manifest["biome"].replace("", "(no biome)"), manifest["split"])
    counts = counts.reindex(columns=list(SPLITS), fill_value=0)
    order = [b for b in [*vocab.biomes, "(no biome)"] if b in counts.index]
    counts = counts.reindex(order)
    counts["total"] = counts.sum(axis=1)
    counts.loc["total"] = counts.sum(axis=0)
    width = max([len("biome"), *map(len, counts.index)])
    lines.append(f"{'biome':<{width}}  " + "  ".join(f"{c:>5}" for c in counts.columns))
    for name, row in counts.iterrows():
        lines.append(f"{name:<{width}}  " + "  ".join(f"{v:>5}" for v in row))
    lines.append(f"month known for {int(manifest['month'].notna().sum())} of {len(manifest)} images")
    missing = [s for s in SPLITS if not (manifest["split"] == s).any()]
    if len(manifest) and missing:
        lines.append(f"warning: no {' or '.join(missing)} images")
    lines += notices
    noted = int((manifest["note"] != "").sum())
    if noted:
        lines.append(f"{noted} kept image(s) carry a note (close spellings, small images): see manifest.csv")
    lines += ["", f"rejected {len(rejected)} (reasons in rejected.csv)" + (":" if len(rejected) else "")]
    kinds = rejected["reason"].map(reason_kind).value_counts()
    kinds = kinds.sort_index().sort_values(ascending=False, kind="stable")
    width = max([0, *map(len, kinds.index)])
    lines += [f"  {kind:<{width}}  {n:>5}" for kind, n in kinds.items()]
    return "\n".join(lines)


# ---- command line ---------------------------------------------------------------

def get_args_parser(add_help=True) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Clean raw Earth photos into data/processed "
                                     "(manifest.csv, rejected.csv, labels.json, images/).",
                                     add_help=add_help)
    parser.add_argument("--raw", default=RAW, help=f"folder of raw images, only read (default: {RAW})")
    parser.add_argument("--out", default=OUT, help=f"output folder, replaced at the end (default: {OUT})")
    parser.add_argument("--size", type=int, default=SIZE,
                        help=f"short side of stored images in pixels, never upscaled (default: {SIZE})")
    parser.add_argument("--seed", type=int, default=SEED, help=f"seed of the train/val/test split (default: {SEED})")
    parser.add_argument("--workers", type=int, default=None,
                        help="processes decoding images (default: the CPU count)")
    parser.add_argument("--labels", default=None, metavar="CSV",
                        help="CSV with columns path,biome,month (either may be blank); "
                             "paths relative to --raw (default: labels from folders or file names)")
    parser.add_argument("--vocab", default=None, metavar="FILE|folders",
                        help="biome vocabulary JSON, or 'folders' to use the class folder names "
                             "(default: the study's seven biomes)")
    parser.add_argument("--val-frac", type=float, default=VAL_FRAC,
                        help=f"share of validation images where no split folder is given (default: {VAL_FRAC})")
    parser.add_argument("--test-frac", type=float, default=TEST_FRAC,
                        help=f"share of test images where no split folder is given (default: {TEST_FRAC})")
    parser.add_argument("--hemisphere", choices=["north", "south"], default=HEMISPHERE,
                        help=f"hemisphere for seasons from months (default: {HEMISPHERE})")
    parser.add_argument("--min-side", type=int, default=MIN_SIDE,
                        help=f"reject originals whose short side is below this (default: {MIN_SIDE})")
    parser.add_argument("--max-pixels", type=int, default=MAX_PIXELS,
                        help=f"reject larger originals as decompression bombs (default: {MAX_PIXELS})")
    parser.add_argument("--no-progress", dest="progress", action="store_false",
                        help="hide the progress bar (default: shown)")
    return parser


def main(args) -> int:
    start = time.perf_counter()
    try:
        result = preprocess(raw=args.raw, out=args.out, size=args.size, seed=args.seed,
                            workers=args.workers, labels_csv=args.labels, vocab=args.vocab,
                            val_frac=args.val_frac, test_frac=args.test_frac,
                            hemisphere=args.hemisphere, progress=args.progress,
                            min_side=args.min_side, max_pixels=args.max_pixels)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(result.summary)
    seconds = time.perf_counter() - start
    print(f"\ndone in {seconds:.1f} s; wrote {result.out}/manifest.csv, rejected.csv, labels.json")
    return 0


if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args()))
