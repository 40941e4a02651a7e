"""Colours: the dominant colours of an image, with their share and a name.

    from biomeseason import colors
    palette = colors.dominant_colors("photo.jpg", k=5)
    palette[2]   # e.g. {'rgb': (121, 103, 78), 'hex': '#79674e', 'share': 18.01,
                 #       'name': 'dimgray', 'name_hex': '#696969',
                 #       'basic_name': 'brown', 'delta_e': 12.53}
    colors.analyze_colors("photo.jpg")   # Azure-style fields, see analyze_colors

From the command line (folders are searched recursively):

    python -m biomeseason colors photo.jpg data/raw --k 5 --out colors.csv

This module is the public face: ``dominant_colors``, ``plot_palette``, reading
folders and writing results, and the command line. The work is done by
- ``cluster``: the distinct colours of an image and how many pixels have
  each (decoded small, transparent and optionally frame pixels left out), and
  their k-means clusters in CIELAB;
- ``names``: the nearest name of a colour table (CSS4 or XKCD) and the
  basic colour term of each colour;
- ``analysis``: ``analyze_colors``, the fields of Azure's colour analysis.

Of the package these modules import only ``images`` (reading), ``files``
(writing) and ``workers`` (processes), so the colours command does not pay for importing torch.
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import sys
from pathlib import Path

from tqdm.auto import tqdm

from ..io import files, images
from ..io.workers import bounded_map, cap, process_pool
from .analysis import ANALYSIS_K, SALIENT_SHARE, analyze_colors
from .cluster import SEED, Palette, Pixels, one_thread, palette_of
from .names import BASIC_NAMES, TABLE, ColorNamer, basic_names, color_table, lab_of, load_namer, name_colors

__all__ = ["K", "ANALYSIS_K", "SEED", "TABLE", "BASIC_NAMES", "SALIENT_SHARE", "Palette", "ColorNamer",
           "dominant_colors", "analyze_colors", "plot_palette", "name_colors", "basic_names", "color_table",
           "load_namer", "colors_of_files", "write_results", "get_args_parser", "main"]

K = 5                    # colours per palette
MAX_K = 64               # more clusters than this is a typo, not a palette

# ---------------------------------------------------------------- palettes ---

def dominant_colors(image, k: int = K, *, seed: int = SEED, ignore_frame: bool = False,
                    table: str = TABLE, max_pixels: int = images.MAX_PIXELS) -> Palette:
    """The ``k`` most frequent colours of ``image``, largest share first.

    image: a path, a PIL image, or an (H, W[, 3|4]) uint8 or [0, 1] float array;
        a file that cannot be used raises ``images.ImageError`` with the reason.
    ignore_frame: leave out near-black pixels connected to the border; the
        returned palette's ``ignored_frame`` says how much of the image that was.
    Each record: ``rgb``, ``hex``, ``share`` (percent; the shares add up to
    100), ``name``, ``name_hex`` (the named colour), ``basic_name`` and
    ``delta_e`` (CIEDE2000 to the named colour). Fewer than ``k`` records come
    back when the image has fewer distinct colours.
    """
    pixels = Pixels(image, ignore_frame=ignore_frame, max_pixels=max_pixels)
    namer = load_namer(table)
    with one_thread():
        return palette_of(pixels, k, seed, namer)[0]


def plot_palette(palette, ax=None):
    """A horizontal bar split by share, each part labelled with name and percent."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(10, 1.8))
    left = 0.0
    for colour in palette:
        share = colour["share"]
        ax.barh(0, share, left=left, color=colour["hex"], edgecolor="white")
        text = "black" if lab_of(colour["rgb"])[0] > 55 else "white"
        label = f"{colour['name']}\n{share:.1f}%"
        ax.text(left + share / 2, 0, label, ha="center", va="center", color=text, fontsize=9)
        left += share
    ax.set_xlim(0, 100)
    ax.set_yticks([])
    ax.set_xlabel("share of pixels (%)")
    return ax


# ------------------------------------------------------------------- files ---

def colors_of_files(paths, k: int = K, *, progress: bool = True, workers: int = 0, **options):
    """Yield (path, Palette) for every image in ``paths``, in order, or (path, the error) for a file
    that cannot be used; such files are also reported on stderr. ``workers`` > 1: that many
    processes decode and cluster (``workers.process_pool``), a few images ahead of the results, when
    there are at least ``POOL_FROM`` images (fewer are quicker done here than the workers start)."""
    found, _ = images.find_images(paths)
    job = functools.partial(_palette_or_error, k=k, options=options)
    with contextlib.ExitStack() as stack:
        if workers > 1 and len(found) >= POOL_FROM:
            pool = stack.enter_context(process_pool(workers, preload=["biomeseason.colors.palette"]))
            results = bounded_map(pool, job, found)
        else:
            results = map(job, found)
        for path, result in tqdm(zip(found, results), total=len(found), desc="colours", unit="img",
                                 disable=not progress, file=sys.stderr):
            if isinstance(result, ValueError):   # the message names the file
                tqdm.write(f"skipped {result}", file=sys.stderr)
            yield path, result


def _palette_or_error(path, k: int, options: dict):
    """A Palette, or the error that kept it from being had (images.ImageError, or nothing left to analyse)."""
    try:
        return dominant_colors(path, k, **options)
    except ValueError as exc:
        return exc


SHOWN = 20                                   # up to this many images, the palettes are shown on screen
WORKERS = min(2, os.cpu_count() or 1)        # processes of a run over many images
POOL_FROM = 40                               # about what starting them costs (a second), in images
BATCH_OUT = Path("runs/colors/colors.csv")   # where more go without --out
NAME_FIELDS = ["share", "name", "name_hex", "basic_name", "delta_e"]
CSV_FIELDS = ["path", "rank", "hex", "r", "g", "b", *NAME_FIELDS, "ignored_frame", "ignored_transparent"]


def write_results(results, out) -> tuple[int, int]:
    """Write (path, Palette) pairs to CSV, one row per colour, or for a .json
    name to JSON, one object per image; pairs holding an error are skipped.
    Returns (images written, images skipped). With no image to write, nothing
    is written: an empty result never replaces an existing file."""
    results = list(results)
    good = [(path, p) for path, p in results if isinstance(p, Palette)]
    counts = len(good), len(results) - len(good)
    if not good:
        return counts
    if Path(out).suffix.lower() == ".json":
        files.write_json(out, [{"path": str(path), "ignored_frame": p.ignored_frame,
                                "ignored_transparent": p.ignored_transparent, "colors": list(p)}
                               for path, p in good])
    else:
        files.write_rows(out, ({"path": str(path), "rank": rank, "hex": c["hex"], **dict(zip("rgb", c["rgb"])),
                                **{key: c[key] for key in NAME_FIELDS},
                                "ignored_frame": palette.ignored_frame,
                                "ignored_transparent": palette.ignored_transparent}
                               for path, palette in good for rank, c in enumerate(palette, 1)), CSV_FIELDS)
    return counts


def _looks_like_our_json(path: Path) -> bool:
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    return isinstance(data, list) and all(isinstance(d, dict) and {"path", "colors"} <= d.keys() for d in data)


def _looks_ours(path: Path) -> bool:
    if path.suffix.lower() == ".json":
        return _looks_like_our_json(path)
    return files.csv_header_is(CSV_FIELDS)(path)


# --------------------------------------------------------------------- CLI ---

def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Dominant colours of images, named.", add_help=add_help)
    parser.add_argument("paths", nargs="+", metavar="PATH", help="image files or folders (searched recursively)")
    parser.add_argument("--k", type=int, default=K, help=f"colours per image, 1 to {MAX_K} (default {K})")
    parser.add_argument("--out", default=None,
                        help=f"output file, .csv or .json (default: none for up to {SHOWN} images, whose palettes "
                             f"are on screen; {BATCH_OUT} for more)")
    parser.add_argument("--json", action="store_true", help="print JSON lines, one object per image, for scripts")
    parser.add_argument("--table", choices=["css4", "xkcd"], default=TABLE, help=f"colour names (default {TABLE})")
    parser.add_argument("--seed", type=int, default=SEED, help=f"k-means seed (default {SEED})")
    parser.add_argument("--ignore-frame", action="store_true",
                        help="leave out near-black pixels connected to the border (default: keep them)")
    parser.add_argument("--max-pixels", type=int, default=images.MAX_PIXELS,
                        help=f"skip images with more pixels than this (default {images.MAX_PIXELS:,})")
    parser.add_argument("--force", action="store_true",
                        help="replace an existing --out that was not written by biomeseason (default: refuse)")
    parser.add_argument("--workers", type=int, default=WORKERS,
                        help=f"processes that analyse images; 0 or 1: this one (default: {WORKERS})")
    return parser


def format_palette(palette: Palette) -> str:
    """A palette as a table for people: share, hex, name, basic name, one line a colour."""
    return "\n".join(f"  {c['share']:5.1f}%  {c['hex']}  {c['name']:<22} {c['basic_name']:<8} "
                     f"(delta E {c['delta_e']:.1f})" for c in palette)


def check_args(args) -> list[Path]:
    """Refuse bad settings before any work (files.UsageError, one sentence); returns the images."""
    if not 1 <= args.k <= MAX_K:
        raise files.UsageError(f"--k {args.k}: the number of colours must be between 1 and {MAX_K}")
    if args.max_pixels < 1:
        raise files.UsageError(f"--max-pixels {args.max_pixels}: must be a positive number of pixels")
    if args.workers < 0:
        raise files.UsageError(f"--workers {args.workers}: must be 0 or more")
    args.workers = cap(args.workers)
    images.check_paths_exist(args.paths)
    found, _ = images.find_images(args.paths)
    if args.out is None and len(found) > SHOWN:
        args.out = str(BATCH_OUT)   # many images: a file of ours, never one in the current folder
    if args.out is not None:
        files.check_output_file(args.out, inputs=[*args.paths, *found], force=args.force,
                                looks_ours=_looks_ours, suffixes=[".csv", ".json"])
    return found


def main(args) -> int:
    """Exit status 0 if at least one image was written, 1 if none could be, 2 for a bad setting."""
    try:
        check_args(args)
    except files.UsageError as e:   # the command line also catches it; a direct call gets the same
        print(f"error: {e}", file=sys.stderr)
        return 2
    options = dict(seed=args.seed, ignore_frame=args.ignore_frame, table=args.table, max_pixels=args.max_pixels)
    # A few images: this process (starting workers would cost more); more: the worker processes.
    pool = dict(workers=args.workers if args.out is not None else 0)
    load_namer(args.table)          # fit once, before the progress bar starts
    if args.out is None:            # a few images: the palettes on screen, nothing written
        with files.terminate_as_interrupt():
            results = [(path, p) for path, p in colors_of_files(args.paths, args.k, **pool, **options)
                       if isinstance(p, Palette)]
        for path, palette in results:
            print(json.dumps({"path": str(path), "colors": list(palette)}) if args.json
                  else f"{path}\n{format_palette(palette)}\n")
        if not results:
            print("error: no image could be analysed", file=sys.stderr)
        return 0 if results else 1
    if args.out == str(BATCH_OUT):
        files.claim_dir(BATCH_OUT.parent)
    with files.terminate_as_interrupt():
        written, skipped = write_results(colors_of_files(args.paths, args.k, **pool, **options), args.out)
    if not written:
        kept = f"; {args.out} was left as it was" if Path(args.out).exists() else ""
        print(f"error: no image could be analysed ({skipped} skipped){kept}", file=sys.stderr)
        return 1
    print(f"{written} images -> {args.out}" + (f"; {skipped} skipped" if skipped else ""), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args()))
