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

and writes into --out (the schema is in biomeseason/manifest.py):

    manifest.csv  one row per kept image
    rejected.csv  one row per raw file (or unreadable folder) not kept: source, reason
    labels.json   classes in head order, months, hemisphere, vocabulary
    summary.txt   the summary above
    images/       the kept images, mirroring raw/'s folders, as RGB JPEG

The jobs live in their own modules: ``scan`` (listing, labels from paths and
CSV), ``clean`` (one file: decode, resize, fingerprint), ``dedupe``
(identical and near-duplicate files), ``splits``, ``manifest`` (the schema).

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
import json
import os
import re
import shutil
import signal
import sys
import tempfile
import time
import unicodedata
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from . import clean, files, manifest, scan
from . import store as stores
from .dedupe import connected_groups, near_duplicate_array, same_value_pairs
from .files import UsageError
from .images import MAX_PIXELS
from .labels import HEMISPHERES, LabelError, Vocabulary, season_of
from .splits import SPLITS, assign_splits
from .workers import alive, bounded_map, cap, process_pool, usable_cpus

# ---- defaults --------------------------------------------------------------
RAW = "data/raw"
OUT = "data/processed"
SIZE = 256                  # short side of the stored images, in pixels
MIN_SIDE = 32               # originals with a shorter short side are rejected as too small
VAL_FRAC = 0.15
TEST_FRAC = 0.15
SEED = 0
HEMISPHERE = "north"        # seasons from months where no latitude says otherwise
# Everything we put in --out; nothing else there is ever moved or deleted.
OUTPUTS = ("images", "store", "manifest.csv", "rejected.csv", "labels.json", "summary.txt")
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


def foreign_outputs(out: Path) -> list[str]:
    """Entries of a folder without our marker that carry our output names but are not our outputs."""
    def first_line(path):
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.readline().strip()

    def ours(name: str) -> bool:
        path = out / name
        try:
            if name == "manifest.csv":
                return first_line(path).startswith("path,source,sha256")
            if name == "rejected.csv":
                return first_line(path).startswith("source,reason")
            if name == "summary.txt":
                return first_line(path).startswith("kept ")
            if name == "labels.json":
                return {"biomes", "months"} <= set(json.loads(path.read_text(encoding="utf-8")))
            if name == "store":
                return files.is_ours(path)
            if name == "images":  # only if an old manifest of ours lists every file in it
                listed = set(pd.read_csv(out / "manifest.csv", dtype=str, usecols=["path"])["path"])
                return all(p.relative_to(out).as_posix() in listed for p in path.rglob("*") if p.is_file())
        except (OSError, ValueError, TypeError, KeyError):
            return False
        return False

    return [name for name in OUTPUTS if (out / name).exists() and not ours(name)]


def clean_leftovers(out: Path) -> list[str]:
    """Remove temporary folders of ours left by a killed run; report any others. Returns notices."""
    notices = []
    if not out.parent.is_dir():
        return notices
    pattern = re.compile(re.escape(out.name) + r"\.(tmp|old)-(\d+)-")
    for path in sorted(out.parent.iterdir()):
        match = pattern.match(path.name)
        if not match or not path.is_dir() or alive(int(match.group(2))):
            continue
        if files.is_ours(path):
            shutil.rmtree(path, ignore_errors=True)
            notices.append(f"removed {path}, left by an interrupted run")
        else:
            notices.append(f"warning: {path} looks left by an interrupted run but carries no marker; "
                           "left alone")
    return notices


# ---- labels --------------------------------------------------------------------------

LABEL_FIELDS = ("source", "given_split", "biome", "month", "month_source", "note", "group",
                "hemisphere", "extras")


def label_files(sources, vocab: Vocabulary, csv_table) -> tuple[dict[str, list], dict[str, str]]:
    """(columns of the labelled files, {source: reason}) from the CSV or the paths."""
    columns = {name: [] for name in LABEL_FIELDS}
    rejected = {}
    rows = csv_table.to_dict("index") if csv_table is not None else None
    extras = scan.csv_extras(csv_table) if csv_table is not None else []
    for source in sources:
        try:
            split, label, month_source = scan.labels_from_path(source, vocab) if rows is None else \
                (scan.given_split(source)[0], None, "")
            group = hemisphere = ""
            extra = None
            if rows is not None:
                row = rows.get(scan.nfc_key(source))
                if row is None:
                    raise LabelError("not listed in the labels CSV")
                label = scan.labels_from_csv(row, vocab)
                month_source = "csv" if label.month else ""
                split = scan.csv_split(row["split"]) or split
                group, hemisphere = row["group"], scan.csv_hemisphere(row)
                extra = tuple(row[c] for c in extras)
        except LabelError as e:
            rejected[source] = f"label: {e}"
            continue
        for name, value in zip(LABEL_FIELDS, (source, split, label.biome or "", label.month, month_source,
                                              label.note, group, hemisphere, extra)):
            columns[name].append(value)
    columns["extras"] = pd.DataFrame([e for e in columns["extras"]] if extras else None,
                                     columns=extras or None)
    return columns, rejected


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
    table = pd.DataFrame({"path": dests, "sha256": sha, "clean_note": notes, **numbers})
    for name in LABEL_FIELDS[:-1]:
        table[name] = labelled[name]
    table["month"] = pd.array(table["month"], dtype="Int64")
    table["row"] = np.arange(n)  # into the thumbnails file
    if len(labelled["extras"].columns):
        table = pd.concat([table, labelled["extras"].set_axis(table.index)], axis=1)
    return table[ok].reset_index(drop=True), failed


# ---- duplicates --------------------------------------------------------------------------

def group_duplicates(table: pd.DataFrame, tmp: Path, drop_near: bool):
    """(table with a 'link' column, {source: reason}): merge identical files, join near duplicates.

    'link' is the smallest row index of the image's duplicate set (identical
    bytes with other labels, or near-identical), used for grouping.
    """
    dropped = {}
    thumbs_file = tmp / ".thumbs"
    n_rows = table["row"].max() + 1 if len(table) else 0
    thumbs = (np.memmap(thumbs_file, np.uint8, "r", shape=(n_rows, clean.THUMB_SIZE, clean.THUMB_SIZE, 3))
              if n_rows else np.zeros((0, clean.THUMB_SIZE, clean.THUMB_SIZE, 3), np.uint8))
    # Ranked on the few columns that decide, not on copies of the whole table (a million rows).
    rank = table[["source", "given_split", "biome", "month", "pixels"]].sort_values(["source"]).assign(
        _split=lambda t: t["given_split"].map({"test": 0, "val": 1, "train": 2}).fillna(3),
        _known=lambda t: -((t["biome"] != "").astype(int) + t["month"].notna().astype(int)),
        _pixels=lambda t: -t["pixels"]).sort_values(["_split", "_known", "_pixels", "source"], kind="stable")
    table = table.loc[rank.index].reset_index(drop=True)          # best keeper first within any set
    del rank
    identical = same_value_pairs(table["sha256"])
    pairs = near_duplicate_array(table["phash"].to_numpy(), _Rows(thumbs, table["row"].to_numpy()))
    del thumbs
    thumbs_file.unlink(missing_ok=True)
    links = connected_groups(len(table), identical, pairs)
    drop = set()
    if drop_near:
        for members in pd.Series(range(len(table))).groupby(links).groups.values():
            members = sorted(members)
            if len(members) < 2:
                continue
            rows = table.iloc[members]
            if rows["biome"].replace("", None).nunique() > 1 or rows["month"].nunique() > 1:
                said = ", ".join(f"{scan.display_name(r.source)} ({r.biome or '?'}, "
                                 f"{'?' if pd.isna(r.month) else int(r.month)})" for r in rows.itertuples())
                for i in members:
                    dropped[table.at[i, "source"]] = f"duplicates with conflicting labels: {said}"
                drop.update(members)
                continue
            keeper = members[0]
            for i in members[1:]:
                how = ("identical bytes" if table.at[i, "sha256"] == table.at[keeper, "sha256"]
                       else "near-identical")
                dropped[table.at[i, "source"]] = f"duplicate of {scan.display_name(table.at[keeper, 'source'])} ({how})"
                drop.add(i)
    else:
        for keeper, i in identical:
            a, b = table.iloc[keeper], table.iloc[i]
            if _compatible(a, b):
                dropped[b["source"]] = f"duplicate of {scan.display_name(a['source'])} (identical bytes)"
                drop.add(i)
            else:
                table.at[i, "clean_note"] = _join(table.at[i, "clean_note"],
                                                  f"identical bytes to {scan.display_name(a['source'])}, "
                                                  "labelled differently; kept in its group")
    for i in drop:
        (tmp / table.at[i, "path"]).unlink(missing_ok=True)
    table["link"] = links
    table = table.drop(index=sorted(drop))
    return table.reset_index(drop=True), dropped


class _Rows:
    """Rows of the thumbnails file in table order, read one at a time (never all in memory)."""

    def __init__(self, array, rows):
        self.array, self.rows = array, rows

    def __getitem__(self, i):
        return self.array[self.rows[i]]

    def release(self) -> None:
        stores.drop_mapped_pages(self.array)


def _compatible(a, b) -> bool:
    """Whether two copies say the same, where both say anything."""
    same_biome = not a["biome"] or not b["biome"] or a["biome"] == b["biome"]
    same_month = pd.isna(a["month"]) or pd.isna(b["month"]) or a["month"] == b["month"]
    return same_biome and same_month


def _join(*notes: str) -> str:
    return "; ".join(n for n in notes if n)


# ---- the manifest table ---------------------------------------------------------------------

def finish_table(table: pd.DataFrame, name_notes: dict, val_frac, test_frac, seed, hemisphere,
                 csv_table) -> pd.DataFrame:
    """Months from EXIF, hemispheres, groups, splits, seasons, notes: the manifest's rows."""
    from_exif = table["month"].isna() & (table["exif_month"] > 0)
    table.loc[from_exif, "month"] = table.loc[from_exif, "exif_month"]
    table.loc[from_exif, "month_source"] = "exif"
    lat = table["exif_lat"]
    exif_hemisphere = np.where(lat.isna(), hemisphere, np.where(lat < 0, "south", "north"))
    table["hemisphere"] = table["hemisphere"].where(table["hemisphere"] != "", exif_hemisphere)
    # Groups: a CSV group, joined with duplicate sets; named by the CSV group or the first source.
    user = table["group"].where(table["group"] != "", None)
    by_user = same_value_pairs(user.fillna(""))
    first = table.groupby("link", sort=False).cumcount() == 0
    leader = pd.Series(np.arange(len(table))[first.to_numpy()], index=table.loc[first, "link"].to_numpy())
    by_link = np.stack([leader.loc[table["link"]].to_numpy(), np.arange(len(table))], axis=1)
    component = connected_groups(len(table), by_user, by_link)
    names = pd.DataFrame({"c": component, "user": user.to_numpy(dtype=object),
                          "source": table["source"].map(scan.display_name).to_numpy(dtype=object)})
    # The first by sorting, not groupby().min(): pandas' string min runs per group in Python.
    by_user_name = names.dropna(subset=["user"]).sort_values("user").drop_duplicates("c").set_index("c")["user"]
    by_source = names.sort_values("source").drop_duplicates("c").set_index("c")["source"]
    name = by_user_name.reindex(by_source.index).fillna(by_source)
    table["group"] = name.loc[component].to_numpy()
    table["split"] = assign_splits(table, val_frac, test_frac, seed)
    table["season"] = [season_of(None if pd.isna(m) else int(m), h)
                       for m, h in zip(table["month"], table["hemisphere"])]
    moved = (table["given_split"] != "") & (table["given_split"] != table["split"])
    table["note"] = [_join(name_notes.get(s, ""), label_note, clean_note,
                           f"moved from {given} to {split} with its group" if m else "")
                     for s, label_note, clean_note, given, split, m in
                     zip(table["source"], table["note"], table["clean_note"], table["given_split"],
                         table["split"], moved)]
    table["source"] = table["source"].map(scan.display_name)
    extras = [c for c in (scan.csv_extras(csv_table) if csv_table is not None else [])]
    renamed = {c: (f"csv_{c}" if c in manifest.COLUMNS else c) for c in extras}
    table = table.rename(columns=renamed)
    columns = manifest.COLUMNS + list(renamed.values())
    if table["exif_lat"].notna().any():
        # EXIF GPS latitudes fill the lat column (training's latitude prior reads it) where the CSV gives none.
        exif_lat = table["exif_lat"].map(lambda v: "" if pd.isna(v) else f"{v:.5f}")
        if "lat" in table:
            table["lat"] = table["lat"].where(table["lat"].astype(str).str.strip() != "", exif_lat)
        else:
            table["lat"] = exif_lat
            columns.append("lat")
    table = table.sort_values("source", kind="stable").reset_index(drop=True)
    return table[columns]


# ---- writing and reporting -------------------------------------------------------

def write_outputs(folder: Path, table, rejected, vocab: Vocabulary, hemisphere: str, summary: str,
                  store: str = STORE, size: int = SIZE, progress: bool = False, workers: int = 1):
    manifest.write_manifest(folder, table)
    files.write_csv(folder / "rejected.csv", rejected)
    files.write_json(folder / "labels.json", {"biomes": vocab.biomes, "months": list(range(1, 13)),
                                              "hemisphere": hemisphere,
                                              "vocabulary": vocab.to_json()["biomes"]})
    files.write_text(folder / "summary.txt", summary + "\n")
    (folder / "images").mkdir(exist_ok=True)
    if store in ("npy", "both"):
        # At the stored size, capped: training at 96-128 px needs no more, and the
        # store of a million photos stays on a laptop's disk.
        stores.write_store(folder, short_side=min(size, stores.SHORT_SIDE), progress=progress, workers=workers)
    else:
        files.claim_dir(folder / "store")  # empty: training decodes images/ instead
    if store == "npy":
        # images/ goes; the store alone holds the pixels (manifest paths still name them).
        shutil.rmtree(folder / "images")
        (folder / "images").mkdir()


@contextlib.contextmanager
def _signals_held():
    """Hold Ctrl-C and kill for the few renames of the swap, so it is never left half done."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    held = {signal.SIGINT, signal.SIGTERM}
    before = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)


def swap_into_place(tmp: Path, out: Path, claim: bool):
    """Put the outputs built in tmp/ into out/, replacing only our own outputs there.

    A new out/ is tmp/ renamed (with our marker). In an existing out/, each of
    our outputs is moved aside into a marked folder, the new ones are moved
    in (manifest.csv last), and the old ones are then deleted; anything else
    in out/ is never touched. ``claim``: mark out/ as ours (it was new,
    empty, or ours already), never a user's folder written with --force.
    """
    if not out.exists():
        os.rename(tmp, out)
        return
    old = Path(tempfile.mkdtemp(prefix=f"{out.name}.old-{os.getpid()}-", dir=out.parent))
    files.mark_ours(old)
    moved_out, moved_in = [], []
    with _signals_held():
        try:
            for name in OUTPUTS:
                if os.path.lexists(out / name):
                    os.rename(out / name, old / name)
                    moved_out.append(name)
            for name in OUTPUTS:  # manifest.csv after images/: a reader never sees rows without images
                os.rename(tmp / name, out / name)
                moved_in.append(name)
            if claim:
                files.mark_ours(out)
        except BaseException:
            for name in moved_in:
                os.rename(out / name, tmp / name)
            for name in moved_out:
                os.rename(old / name, out / name)
            raise
    shutil.rmtree(old)


def reason_kind(reason: str) -> str:
    """The category of a rejection reason, for the summary table."""
    if reason.startswith("duplicate of"):
        return "duplicate (identical bytes)" if "(identical bytes)" in reason else "duplicate (near-identical)"
    return reason.split(":", 1)[0]


def make_summary(table, rejected, vocab: Vocabulary, n_files: int, raw: Path, out: Path,
                 size: int, notices: list[str] = ()) -> str:
    lines = [f"kept {len(table)} of {n_files} files: {raw} -> {out} (short side {size} px)", ""]
    counts = pd.crosstab(table["biome"].replace("", "(no biome)"), table["split"])
    counts = counts.reindex(columns=list(SPLITS), fill_value=0)
    order = [b for b in [*vocab.biomes, "(no biome)"] if b in counts.index]
    counts = counts.reindex(order)
    counts["total"] = counts.sum(axis=1)
    counts.loc["total"] = counts.sum(axis=0)
    width = max([len("biome"), *map(len, counts.index)])
    lines.append(f"{'biome':<{width}}  " + "  ".join(f"{c:>5}" for c in counts.columns))
    for name, row in counts.iterrows():
        lines.append(f"{name:<{width}}  " + "  ".join(f"{v:>5}" for v in row))
    sources = table.loc[table["month"].notna(), "month_source"].value_counts().sort_index()
    said = ", ".join(f"{k} {v}" for k, v in sources.items())
    lines.append(f"month known for {int(table['month'].notna().sum())} of {len(table)} images"
                 + (f" ({said})" if said else ""))
    sizes = table["group"].value_counts()
    shared = sizes[sizes > 1]
    if len(shared):
        lines.append(f"{len(shared)} groups of near duplicates or shared places hold {int(shared.sum())} "
                     "images; each group stays in one split")
    missing = [s for s in SPLITS if not (table["split"] == s).any()]
    if len(table) and missing:
        lines.append(f"warning: no {' or '.join(missing)} images")
    lines += notices
    noted = int((table["note"] != "").sum())
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
    from .__main__ import main as cli
    sys.exit(cli(["preprocess", *sys.argv[1:]]))
