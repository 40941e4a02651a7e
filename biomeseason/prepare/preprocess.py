"""Clean raw Earth photos into a training-ready folder: data/raw -> data/processed.

Run it once after adding photos; training never decodes the raw originals:

    python dataset_preproc.py                                   # data/raw -> data/processed
    python dataset_preproc.py --raw ~/iss_photos --size 256 --workers 2
    python dataset_preproc.py --raw ~/eurosat --vocab folders   # <class>/x.jpg layout
    python dataset_preproc.py --labels labels.csv               # path,biome,month[,group,split,lat,...]
    python -m biomeseason preprocess ...                        # the same command

It shows a progress bar, then prints a summary such as:

    kept 336 of 340 files: data/raw -> data/processed (short side 256 px)

    biome                       train    val   test  total
    boreal_forest                  34      7      7     48
    ...
    total                         238     49     49    336
    month known for 336 of 336 images (name 336)
    12 groups of near duplicates or shared places hold 40 images; each group stays in one split

    rejected 4 (reasons in rejected.csv):
      duplicate (identical bytes)      1
      ...

and writes into --out (the schema is in biomeseason/prepare/manifest.py):

    manifest.csv  one row per kept image
    rejected.csv  one row per raw file (or unreadable folder) not kept: source, reason
    labels.json   classes in head order, months, hemisphere, vocabulary
    summary.txt   the summary above
    images/       the kept images, mirroring raw/'s folders, as RGB JPEG

The jobs live in their own modules: ``scan`` (listing, labels from paths and
CSV), ``clean`` (one file: decode, resize, fingerprint), ``dedupe``
(identical and near-duplicate files), ``splits``, ``manifest`` (the schema),
``table`` (the manifest's rows: labels per file, duplicates merged
or grouped, groups, splits, seasons) and ``output`` (writing the
outputs, swapping them into --out, the summary). This module runs them, cleans
every file in a process pool, and is the command line.

Decisions worth knowing:

* Every file under raw/ ends up in manifest.csv or rejected.csv, with a reason.
* Labels come from the labels CSV if one is given (files it does not list are
  rejected, but for the scenes ``synth`` wrote: its ``scenes.csv`` labels
  them); else from folders and file names (see ``scan``). EXIF
  DateTimeOriginal gives the month when nothing else does; the CSV's lat or
  the EXIF GPS latitude gives the hemisphere, and the season follows from both.
* Images are never upscaled. An original whose short side is below
  ``min_side`` is rejected as too small.
* Byte-identical files with the same labels are merged: one is kept (the one
  in the most held-out given split, then with more labels, larger, by name),
  the others are listed as its duplicates. Near duplicates, identical files
  labelled differently, and rows sharing a CSV ``group`` are kept and share a
  ``group``, which never straddles splits: a place seen in twelve months looks
  alike on purpose. ``--drop-near-duplicates`` keeps one of each near-duplicate
  set instead, and rejects sets whose labels disagree.
* raw/ is only read. Output is built in a temporary sibling of --out and put in
  place at the end, so an interrupted run (Ctrl-C, kill) leaves the previous
  output valid and no temporary folder behind. --out must be new, empty, or
  written by us (it carries a marker file); ``--force`` writes into another
  folder, replacing only our own outputs and never deleting anything else.
  One run at a time writes into an --out (``files.output_lock``); a second is
  refused, naming the first one's pid.
"""
from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import shutil
import sys
import tempfile
import time
import unicodedata
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from ..io import files
from ..io.files import UsageError
from ..io.images import MAX_PIXELS
from ..io.workers import bounded_map, cap, process_pool, usable_cpus
from ..labels import HEMISPHERES, Vocabulary
from . import clean, manifest, scan
from .output import (
    OUTPUTS,
    clean_leftovers,
    foreign_outputs,
    make_summary,
    reason_kind,
    swap_into_place,
    write_outputs,
)
from .table import LABEL_FIELDS, finish_table, group_duplicates, label_files

__all__ = ["RAW", "OUT", "SIZE", "MIN_SIDE", "VAL_FRAC", "TEST_FRAC", "SEED", "HEMISPHERE", "OUTPUTS", "STORES",
           "STORE", "MANIFEST_COLUMNS", "LABEL_FIELDS", "PreprocessResult", "preprocess", "check_settings",
           "foreign_outputs", "clean_leftovers", "label_files", "output_paths", "run_jobs", "clean_all",
           "group_duplicates", "finish_table", "write_outputs", "swap_into_place", "reason_kind", "make_summary",
           "get_args_parser", "main"]

# ---- defaults --------------------------------------------------------------
RAW = "data/raw"
OUT = "data/processed"
SIZE = 256                  # short side of the stored images, in pixels
MIN_SIDE = 32               # originals with a shorter short side are rejected as too small
VAL_FRAC = 0.15
TEST_FRAC = 0.15
SEED = 0
HEMISPHERE = "north"        # seasons from months where no latitude says otherwise
STORES = ("png", "npy", "both")  # the images/ folder to look at, the memory-mapped store to train from
STORE = "both"
MANIFEST_COLUMNS = manifest.COLUMNS


@dataclass
class PreprocessResult:
    out: Path
    manifest: pd.DataFrame      # the rows of manifest.csv
    rejected: pd.DataFrame      # the rows of rejected.csv
    summary: str                # the text printed by main() and saved as summary.txt
    vocab: Vocabulary


# ---- the run ---------------------------------------------------------------------

def preprocess(raw=RAW, out=OUT, size=SIZE, seed=SEED, workers=None, labels_csv=None, vocab=None,
               val_frac=VAL_FRAC, test_frac=TEST_FRAC, hemisphere=HEMISPHERE, progress=True,
               min_side=MIN_SIDE, max_pixels=MAX_PIXELS, force=False,
               drop_near_duplicates=False, store=STORE) -> PreprocessResult:
    """Clean raw/ into out/ (see the module docstring); returns what was written.

    Raises files.UsageError, before any work, for settings that make no sense
    or could lose data.
    """
    raw, out = Path(raw), Path(out)
    labels_csv = Path(labels_csv) if labels_csv else None
    check_settings(raw, out, size, min_side, max_pixels, workers, val_frac, test_frac, hemisphere,
                   labels_csv, vocab, force)
    if store not in STORES:
        raise UsageError(f"--store must be one of {', '.join(STORES)}, not {store!r}")
    csv_table = scan.read_labels_csv(labels_csv) if labels_csv else None
    workers = cap(workers) if workers else usable_cpus()
    with files.terminate_as_interrupt(), files.output_lock(out):
        notices = clean_leftovers(out)
        listing = scan.list_raw_files(raw)
        sources = listing.files
        ignored = {s: r for s in sources if (r := scan.ignore_reason(s, labels_csv, raw))}
        data_sources = [s for s in sources if s not in ignored]
        vocabulary = scan.load_vocabulary(vocab, data_sources)
        if csv_table is not None:
            csv_table, scenes = scan.with_synthetic_scenes(csv_table, raw, sources)
            if scenes:
                notices.append(f"{scenes} synthetic scene(s) that the labels CSV does not list labelled from "
                               f"the {scan.SCENES_LIST} that synth wrote beside them")
        claim = not out.exists() or files.is_ours(out) or not any(out.iterdir())
        tmp = Path(tempfile.mkdtemp(prefix=f"{out.name}.tmp-{os.getpid()}-", dir=out.parent))
        try:
            files.mark_ours(tmp)
            labelled, rejected = label_files(data_sources, vocabulary, csv_table)
            rejected.update(ignored)
            rejected.update(listing.unreadable)
            if csv_table is not None:
                listed = {scan.nfc_key(s) for s in sources}
                unused = sorted(set(csv_table.index) - listed)
                if unused:
                    notices.append(f"warning: {len(unused)} row(s) of the labels CSV name no file "
                                   f"under raw/, e.g. {unused[0]!r}")
            settings = clean.Settings(str(raw), str(tmp), size, min_side, max_pixels)
            table, failed = clean_all(labelled, settings, tmp, workers, progress)
            rejected.update(failed)
            table, dropped = group_duplicates(table, tmp, drop_near_duplicates)
            rejected.update(dropped)
            table = finish_table(table, listing.notes, val_frac, test_frac, seed, hemisphere,
                                 csv_table)
            rejected_table = pd.DataFrame(
                sorted((scan.display_name(s), r) for s, r in rejected.items()), columns=["source", "reason"])
            summary = make_summary(table, rejected_table, vocabulary, len(sources) + len(listing.unreadable),
                                   raw, out, size, notices)
            write_outputs(tmp, table, rejected_table, vocabulary, hemisphere, summary, store, size,
                          progress, workers)
            swap_into_place(tmp, out, claim)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return PreprocessResult(out, table, rejected_table, summary, vocabulary)


def check_settings(raw: Path, out: Path, size, min_side, max_pixels, workers, val_frac, test_frac,
                   hemisphere, labels_csv, vocab, force):
    """Refuse, before touching anything, settings that could lose data or make no sense."""
    if size < 1:
        raise UsageError(f"--size must be at least 1 pixel, not {size}")
    if not 1 <= min_side <= size:
        raise UsageError(f"--min-side must be between 1 and --size ({size}), not {min_side}")
    if max_pixels < 1:
        raise UsageError(f"--max-pixels must be at least 1, not {max_pixels}")
    if workers is not None and workers < 1:
        raise UsageError(f"--workers must be at least 1, not {workers}")
    if val_frac < 0 or test_frac < 0 or val_frac + test_frac >= 1:
        raise UsageError(f"--val-frac and --test-frac must be >= 0 with a sum below 1, "
                         f"not {val_frac} and {test_frac}")
    if hemisphere not in HEMISPHERES:
        raise UsageError(f"--hemisphere must be north or south, not {hemisphere!r}")
    if not raw.is_dir():
        raise UsageError(f"--raw {raw}: raw folder not found" if not raw.exists()
                         else f"--raw {raw} is a file, not a folder")
    if labels_csv is not None and not labels_csv.is_file():
        raise UsageError(f"--labels {labels_csv}: no such file")
    if vocab is not None and not isinstance(vocab, Vocabulary) and str(vocab) != "folders" \
            and not Path(vocab).is_file():
        raise UsageError(f"--vocab {vocab}: no such file (or say 'folders')")
    raw_r, out_r = raw.resolve(), out.resolve()
    if out_r == raw_r or raw_r in out_r.parents:
        raise UsageError(f"--out {out} is inside --raw {raw}: raw/ is never written to")
    if out_r in raw_r.parents:
        raise UsageError(f"--raw {raw} is inside --out {out}: replacing --out could lose it")
    files.check_dir_target(out, force=force)
    if out.is_dir() and not files.is_ours(out):
        for name in foreign_outputs(out):
            raise UsageError(f"--out {out} holds a {name} that biomeseason did not write; "
                             "move it away or choose another folder (--force never replaces it)")


# ---- cleaning every file ---------------------------------------------------------------

def output_paths(sources: list[str]) -> list[str]:
    """images/... .jpg per source: raw/'s folders mirrored, the suffix made .jpg.

    'x.png' and 'x.jpg', two cases or two Unicode forms of one name would
    meet, so later ones (in sorted order) get '-2', '-3'; names that are not
    UTF-8 are written with their escapes ('\\' made '%').
    """
    taken, paths = set(), []
    for source in sources:
        shown = unicodedata.normalize("NFC", scan.display_name(source)).replace("\\", "%")
        base = PurePosixPath("images") / PurePosixPath(shown).with_suffix("")
        path, n = f"{base}.jpg", 1
        while path.casefold() in taken:
            n += 1
            path = f"{base}-{n}.jpg"
        taken.add(path.casefold())
        paths.append(path)
    return paths


def run_jobs(jobs, n: int, settings: clean.Settings, workers: int, progress: bool):
    """clean_file over (index, source, dest) jobs, yielding outcomes in job order.

    Chunks are submitted a few at a time, not all at once, so a million jobs
    never sit in memory as futures.
    """
    bar = tqdm(total=n, desc="preprocess", unit="img", disable=not progress, file=sys.stderr,
               mininterval=0.5)
    try:
        if workers == 1 or n < 2:
            for job in jobs:
                yield clean.clean_file(settings, *job)
                bar.update()
            return
        chunk = max(1, min(64, n // (workers * 8)))
        with process_pool(workers, initializer=clean.start_worker, initargs=(settings,)) as pool:
            batches = iter(lambda: list(itertools.islice(jobs, chunk)), [])
            for outcomes in bounded_map(pool, clean.clean_chunk, batches):
                yield from outcomes
                bar.update(len(outcomes))
    finally:
        bar.close()


def clean_all(labelled: dict, settings: clean.Settings, tmp: Path, workers: int, progress: bool):
    """(table of cleaned files with fingerprints, {source: reason} of failures).

    Thumbnails are streamed to a file in the build folder (read back for
    candidate pairs only), so memory does not hold a million of them.
    """
    sources = labelled["source"]
    n = len(sources)
    dests = output_paths(sources)
    thumbs_path = tmp / ".thumbs"
    numbers = {k: np.zeros(n, dtype) for k, dtype in
               [("width", np.int32), ("height", np.int32), ("pixels", np.int64), ("phash", np.uint64),
                ("exif_month", np.int8), ("exif_lat", np.float32), ("ok", bool)]}
    sha, notes, failed = [""] * n, [""] * n, {}
    jobs = ((i, s, d) for i, (s, d) in enumerate(zip(sources, dests)))
    blank = bytes(clean.THUMB_BYTES)
    # closing: an interrupt here, between two outcomes, still stops the workers at once.
    with open(thumbs_path, "wb") as thumbs, contextlib.closing(run_jobs(jobs, n, settings, workers, progress)) as outs:
        for o in outs:
            thumbs.write(o.thumb or blank)
            if o.reason:
                failed[sources[o.index]] = o.reason
                continue
            for k in ("width", "height", "pixels", "phash", "exif_month"):
                numbers[k][o.index] = getattr(o, k)
            numbers["exif_lat"][o.index] = np.nan if o.exif_lat is None else o.exif_lat
            numbers["ok"][o.index] = True
            sha[o.index], notes[o.index] = o.sha256, o.note
    ok = numbers.pop("ok")
    # A file name that is not UTF-8 keeps its surrogate escapes: Python strings, not Arrow's (with pyarrow
    # installed pandas stores text as Arrow, which refuses them).
    table = pd.DataFrame({"path": pd.Series(dests, dtype=object), "sha256": sha, "clean_note": notes, **numbers})
    for name in LABEL_FIELDS[:-1]:
        table[name] = pd.Series(labelled[name], dtype=object) if name == "source" else labelled[name]
    table["month"] = pd.array(table["month"], dtype="Int64")
    table["row"] = np.arange(n)  # into the thumbnails file
    if len(labelled["extras"].columns):
        table = pd.concat([table, labelled["extras"].set_axis(table.index)], axis=1)
    return table[ok].reset_index(drop=True), failed

# ---- command line ---------------------------------------------------------------

def get_args_parser(add_help=True) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Clean raw Earth photos into data/processed "
                                     "(manifest.csv, rejected.csv, labels.json, images/).",
                                     add_help=add_help)
    parser.add_argument("--raw", default=RAW, help=f"folder of raw images, only read (default: {RAW})")
    parser.add_argument("--out", default=OUT, help=f"output folder; our outputs in it are replaced at the "
                        f"end (default: {OUT})")
    parser.add_argument("--force", action="store_true",
                        help="write into an existing --out that biomeseason did not make; only our own "
                             "outputs there are replaced, nothing else is touched (default: refuse)")
    parser.add_argument("--size", type=int, default=SIZE,
                        help=f"short side of stored images in pixels, never upscaled (default: {SIZE})")
    parser.add_argument("--seed", type=int, default=SEED, help=f"seed of the train/val/test split (default: {SEED})")
    parser.add_argument("--workers", type=int, default=None,
                        help="processes decoding images, at most the CPU count (default: the CPU count)")
    parser.add_argument("--labels", default=None, metavar="CSV",
                        help="CSV with columns path and biome and/or month, optionally group, split, lat, "
                             "lon, hemisphere and any others (kept); paths relative to --raw "
                             "(default: labels from folders or file names)")
    parser.add_argument("--vocab", default=None, metavar="FILE|folders",
                        help="biome vocabulary JSON, or 'folders' to use the class folder names "
                             "(default: the study's seven biomes)")
    parser.add_argument("--val-frac", type=float, default=VAL_FRAC,
                        help=f"share of validation images where no split is given (default: {VAL_FRAC})")
    parser.add_argument("--test-frac", type=float, default=TEST_FRAC,
                        help=f"share of test images where no split is given (default: {TEST_FRAC})")
    parser.add_argument("--hemisphere", choices=list(HEMISPHERES), default=HEMISPHERE,
                        help=f"hemisphere for seasons where no latitude is known (default: {HEMISPHERE})")
    parser.add_argument("--min-side", type=int, default=MIN_SIDE,
                        help=f"reject originals whose short side is below this (default: {MIN_SIDE})")
    parser.add_argument("--max-pixels", type=int, default=MAX_PIXELS,
                        help=f"reject larger originals as decompression bombs (default: {MAX_PIXELS})")
    parser.add_argument("--store", choices=STORES, default=STORE,
                        help="png: the images/ folder to look at; npy: the memory-mapped store that "
                             "training reads without decoding; both (default: both)")
    parser.add_argument("--drop-near-duplicates", action="store_true",
                        help="keep one image of each near-duplicate set and reject sets whose labels "
                             "disagree, instead of grouping them (default: group)")
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
                            min_side=args.min_side, max_pixels=args.max_pixels, force=args.force,
                            drop_near_duplicates=args.drop_near_duplicates, store=args.store)
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(result.summary)
    seconds = time.perf_counter() - start
    print(f"\ndone in {seconds:.1f} s; wrote {result.out}/manifest.csv, rejected.csv, labels.json")
    return 0


if __name__ == "__main__":
    from ..__main__ import main as cli
    sys.exit(cli(["preprocess", *sys.argv[1:]]))
