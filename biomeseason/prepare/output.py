"""Writing the processed set: the outputs built in a temporary folder (manifest.csv, rejected.csv,
labels.json, summary.txt, images/, store/), then swapped into --out replacing only our own outputs;
the summary printed and saved; a folder's entries that carry our names but are not ours; the
temporary folders a killed run left.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import tempfile
from pathlib import Path

import pandas as pd

from ..io import files
from ..io.workers import alive
from ..labels import Vocabulary
from . import manifest
from . import store as stores
from .splits import SPLITS

# Everything we put in --out; nothing else there is ever moved or deleted.
OUTPUTS = ("images", "store", "manifest.csv", "rejected.csv", "labels.json", "summary.txt")


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


# ---- writing and reporting -------------------------------------------------------

def write_outputs(folder: Path, table, rejected, vocab: Vocabulary, hemisphere: str, summary: str,
                  store: str, size: int, progress: bool = False, workers: int = 1):
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
