"""Command line of prediction: the answers on screen for a few images, a CSV (or Parquet) with
one row per image for a folder (``--json`` prints JSON lines for scripts)::

    python -m biomeseason predict photo.jpg --lat 49.9 --lon 21.2
    python -m biomeseason predict data/raw --out predictions.csv
    torchrun --nproc_per_node=4 -m biomeseason predict catalogue/ --out predictions.parquet

The model and how it predicts are ``predict`` (``load_model``, ``Predictor``); this module
reads the settings, the places of a ``--meta`` CSV, and writes the rows.

A folder is predicted as a stream: worker processes read and decode (JPEG at
reduced scale), the model runs in batches, and rows are appended to
``<out>.partial`` as they come, then renamed to ``--out`` when complete. So
``--out`` is always the previous file or a complete new one; an interrupted run
keeps its rows in the partial file and ``--resume`` continues from it,
skipping images already there (same path and content hash). Nothing is written
over an input or a file that is not ours, and an empty result replaces nothing.

Under ``torchrun`` (``--nnodes`` too, with ``--out`` and the images on a file system every
machine sees) each process predicts a contiguous share of the images into a partial file of
its own and the first joins them into one output, the rows one process would have written;
``--resume`` continues any run, in as many processes as it likes. Where the rows go, and
Parquet (``--out FILE.parquet``: converted from the partial CSV row group by row group), is
``output``.

The files a run with ``--out`` did not answer are listed, with the reason, in
``<out stem>.skipped.csv`` beside it (``skipped_path``; columns ``path, reason``):
the unreadable ones and those ignored as not images by name. It is written
whole, with ``--out``: a resumed run tries every skipped file again (it may
have been mended), so its list is the whole run's. The last line on screen gives
the counts, a few examples and that file's name.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

from tqdm.auto import tqdm

from ..io import distributed, files, images
from ..io.images import ImageError, check_paths_exist, find_images
from ..labels import HEMISPHERES
from ..model.checkpoint import CheckpointError
from ..model.kinds import KINDS
from ..model.network import select_device
from . import output
from .output import partial_path
from .predictor import MODEL_CANDIDATES, Predictor, load_model
from .rows import COLUMNS, UNFAMILIAR_WARNING, Prediction, SettingError

SHOWN = 20                                   # up to this many images, predict shows every answer on screen
BATCH_OUT = Path("runs/predict/predictions.csv")   # where more go without --out
WORKERS = min(4, os.cpu_count() or 1)   # decoding processes of a batch run
SKIPPED_COLUMNS = ["path", "reason"]
IGNORED = "ignored: not an image by its name (or a hidden file)"
EXAMPLES = 3                             # skipped files the last line names; the CSV has them all


def skipped_path(out: str | Path) -> Path:
    """Where a run lists the files it skipped, with why: ``<out stem>.skipped.csv`` beside ``out``."""
    out = Path(out)
    return out.with_name(f"{out.stem}.skipped.csv")


def skipped_summary(failed: list[tuple[str, str]]) -> str:
    """'352 unreadable, skipped (340 truncated, 12 not an image; e.g. a.jpg, b.jpg, c.jpg)' for
    (path, reason) pairs: counts by kind of reason, at most ``EXAMPLES`` file names."""
    from collections import Counter

    kinds = Counter(reason.split(":", 1)[0] for _, reason in failed)
    names = [Path(path).name for path, _ in failed[:EXAMPLES]]
    more = ", ..." if len(failed) > EXAMPLES else ""
    return (f"{len(failed)} unreadable, skipped ({', '.join(f'{n} {k}' for k, n in kinds.most_common())}; "
            f"e.g. {', '.join(names)}{more})")


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Predict biome, month and season of images into a CSV.",
                                     add_help=add_help)
    parser.add_argument("paths", nargs="+", metavar="PATH",
                        help="image files and/or folders (searched recursively)")
    parser.add_argument("--model", default=None,
                        help=f"checkpoint (default: {MODEL_CANDIDATES[0]} if it exists, else the shipped "
                             f"{MODEL_CANDIDATES[1]})")
    parser.add_argument("--out", default=None,
                        help="CSV, or Parquet if it ends in .parquet, to write (default: none for up to "
                             f"{SHOWN} images, whose answers are on screen; {BATCH_OUT} for more, or under torchrun)")
    parser.add_argument("--format", choices=("table", "json"), default="table",
                        help="what goes to standard output: a table for people (default; for more than "
                             f"{SHOWN} images a summary) or JSON lines, one object per image, for scripts")
    parser.add_argument("--json", dest="format", action="store_const", const="json", help="same as --format json")
    parser.add_argument("--force", action="store_true",
                        help="replace an existing --out that was not written by biomeseason (default: refuse)")
    parser.add_argument("--resume", action="store_true",
                        help="keep the rows of an interrupted run (or of --out) and predict only the "
                             "images not in them, by path and content hash (default: start afresh)")
    parser.add_argument("--tta", action="store_true",
                        help="average over the flips (and, for overhead views, rotations) the model was "
                             "trained with (default: off)")
    parser.add_argument("--no-scene", dest="scene", action="store_false",
                        help="predict on the whole image, without cropping to the Earth part (default: crop)")
    parser.add_argument("--hemisphere", choices=HEMISPHERES, default=None,
                        help="where the images were taken, for their months and seasons (a southern "
                             "January looks like a northern July); default: each image's EXIF GPS "
                             "latitude, else the hemisphere of the model's training data")
    parser.add_argument("--lat", type=float, default=None,
                        help="latitude of the images in degrees north (south negative): the biome is given "
                             "the latitude too (the model's geographic prior), and the hemisphere follows it; "
                             "default: each image's EXIF GPS latitude, else none")
    parser.add_argument("--lon", type=float, default=None,
                        help="longitude of the images in degrees east (west negative), with --lat: the biome "
                             "is given the place (the label map around it); default: EXIF GPS, else none")
    parser.add_argument("--meta", default=None, metavar="CSV",
                        help="per-image places: a CSV with path, lat, lon (an astronaut photo catalogue's "
                             "nadir points); a path is matched as written, relative to the CSV's folder, or "
                             "by file name; images it does not list keep their EXIF GPS")
    parser.add_argument("--footprint-km", default=None, metavar="KM",
                        help="the ground the images cover, km across: each is first brought to the scale the "
                             "model learnt (the Earth model: 7.4 km a pixel, views of 185 km and more); 'auto' "
                             "averages the answers over the image as it is and 240, 120 and 60 km (those finer "
                             "than the model's smallest view once, at it); default: a --meta footprint_km column, "
                             "else the EXIF focal length with --altitude-km, else the image as it is")
    parser.add_argument("--altitude-km", type=float, default=None, metavar="KM",
                        help="the height the photos were taken from (the ISS: about 400), which with each "
                             "photo's EXIF focal length (35 mm terms) gives its footprint; default: none")
    parser.add_argument("--camera", choices=tuple(KINDS), default=None,
                        help="for a model that reads two kinds of camera (the shipped Earth model): 'photo' for "
                             "astronaut photos, satellite scenes and aerial photos (default), 'composite' for "
                             "cloud-free monthly composites like the Blue Marble maps it trained on; other models "
                             "read every image one way")
    parser.add_argument("--batch-size", type=int, default=32, help="images per forward pass (default: 32)")
    parser.add_argument("--workers", type=int, default=WORKERS,
                        help=f"processes that decode images; 0 or 1: this one (default: {WORKERS})")
    parser.add_argument("--max-pixels", type=int, default=images.MAX_PIXELS,
                        help=f"skip images with more pixels than this (default: {images.MAX_PIXELS:,})")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, mps (default: auto)")
    return parser


def _answer_on_screen(predictor: Predictor, found: list[Path], ignored: list[Path], fmt: str, options: dict) -> int:
    """A few images: predict them and print the answers (a table, or JSON lines); nothing is written."""
    failed: list[str] = []

    def report(path, error: ImageError) -> None:
        failed.append(str(path))
        print(f"skipped {error}", file=sys.stderr)

    with files.terminate_as_interrupt():
        results = predictor.predict(found, on_error=report, progress=len(found) > 1, **options)
    if fmt == "json":
        _print_json(results)
    elif results:
        print(format_table(results))
    if ignored:
        print(f"ignored {len(ignored)} non-image files", file=sys.stderr)
    if not results:
        print("error: nothing could be predicted" + (f" ({', '.join(failed)})" if failed else ""), file=sys.stderr)
        return 1
    if fmt == "table":
        others = " or ".join(c for c in predictor.cameras if c != predictor.camera)
        kind = f", its {predictor.camera} kind (--camera {others} reads them the other way)" if predictor.camera else ""
        print(f"(answers of {predictor.path}{kind}; --out FILE.csv writes them with every probability, "
              "--json prints them for scripts)", file=sys.stderr)
    return 0


def _print_json(results) -> None:
    import json

    for r in results:
        print(json.dumps({**r.to_row(), "unfamiliar": r.unfamiliar}), flush=True)


def format_table(results: list[Prediction]) -> str:
    """The answers as a table for people: one line an image."""
    import pandas as pd

    rows = [{"image": Path(r.path).name,
             "biome": f"{r.biome} ({r.biome_p:.2f})",
             "month": f"{r.month_name} ({r.month_p:.2f})",
             "season": f"{r.season} ({r.season_p:.2f})",
             "unfamiliar": {True: "YES", False: "no", None: "?"}[r.unfamiliar],
             "given": (f"{r.lat:.2f}, {r.lon:.2f}" if r.lon is not None else f"lat {r.lat:.2f}" if r.lat is not None
                       else "image only"),
             "scene box": ",".join(map(str, r.scene_box)) if r.scene_box and r.image_size
             and tuple(r.scene_box) != (0, 0, *r.image_size) else "whole image"} for r in results]
    text = pd.DataFrame(rows).to_string(index=False)
    if any(r.unfamiliar for r in results):
        text += f"\nYES under unfamiliar: {UNFAMILIAR_WARNING}"
    return text


def summary_of(csv_path: Path) -> str:
    """Many images: how many of each biome, and how many flagged unfamiliar."""
    table = output.read_columns(csv_path, ["biome", "unfamiliar"])
    counts = table["biome"].value_counts()
    flagged = (table["unfamiliar"].astype(str) == "True").sum()
    return ("biomes: " + ", ".join(f"{b} {n}" for b, n in counts.items())
            + f"; flagged unfamiliar: {flagged} of {len(table)}")


def check_args(args: argparse.Namespace, world: int = 1) -> tuple[list[Path], list[Path]]:
    """Refuse bad settings before any work (files.UsageError, one sentence).
    Returns (images, ignored files) found in the input paths; ``world``: processes of the run."""
    for flag, value in (("--batch-size", args.batch_size), ("--max-pixels", args.max_pixels)):
        if value < 1:
            raise files.UsageError(f"{flag} {value}: must be at least 1")
    if args.workers < 0:
        raise files.UsageError(f"--workers {args.workers}: must be 0 or more")
    if args.lat is not None and not -90 <= args.lat <= 90:
        raise files.UsageError(f"--lat {args.lat}: must be within -90..90 degrees")
    if args.lon is not None and not -180 <= args.lon <= 180:
        raise files.UsageError(f"--lon {args.lon}: must be within -180..180 degrees")
    if args.lon is not None and args.lat is None:
        raise files.UsageError("--lon needs --lat: a longitude alone places nothing")
    if args.meta and args.lat is not None:
        raise files.UsageError("--meta and --lat both give the places: use one of them")
    args.footprint_km = footprint_setting(args.footprint_km)
    if args.altitude_km is not None and not 0 < args.altitude_km < 100000:
        raise files.UsageError(f"--altitude-km {args.altitude_km}: must be a height above 0 km")
    check_paths_exist(args.paths)
    found, ignored = find_images(args.paths)
    if args.out is None and (len(found) > SHOWN or args.resume or world > 1):
        args.out = str(BATCH_OUT)   # many images: their rows stream to a CSV of ours, never into the current folder
    if args.out is None:
        return found, ignored
    inputs = [*args.paths, *found, *([args.model] if args.model else [])]
    output.check_engine(args.out)   # first: an existing Parquet --out is read to see whether it is ours
    files.check_output_file(args.out, inputs=inputs, force=args.force, looks_ours=output.looks_ours,
                            suffixes=output.SUFFIXES)
    parts = [partial_path(args.out), *output.other_parts(args.out)]
    for part in parts:
        files.check_output_file(part, inputs=inputs, force=args.force, looks_ours=output.looks_ours)
    files.check_output_file(skipped_path(args.out), inputs=inputs, force=args.force, suffixes=[".csv"],
                            looks_ours=files.csv_header_is(SKIPPED_COLUMNS))
    if args.resume:
        for path in (*parts, Path(args.out)):
            if path.is_file() and "sha256" not in output.columns_of(path):
                raise files.UsageError(f"--resume: {path} has no sha256 column (an older version wrote it); "
                                       "run without --resume")
    return found, ignored


def footprint_setting(value) -> float | str | None:
    """--footprint-km as the predictor takes it: None, 'auto' or a number of km above 0."""
    if value is None or value == "auto":
        return value
    try:
        km = float(value)
    except ValueError:
        km = float("nan")
    if not 0 < km < 20000:
        raise files.UsageError(f"--footprint-km {value}: must be a number of km above 0, or auto")
    return km


def places_of(images_: list[Path], meta_csv) -> tuple[list[float | None], list[float | None], list[float | None]]:
    """(latitudes, longitudes, footprints in km) of ``images_`` from a CSV of path, lat, lon and, optionally,
    footprint_km; None where it lists an image not. A row's path matches an image as written, relative to the
    CSV's folder, or by file name if that is unique."""
    import pandas as pd

    meta_csv = Path(meta_csv)
    try:
        table = pd.read_csv(meta_csv, dtype={"path": str})
    except (OSError, ValueError) as e:
        raise files.UsageError(f"--meta {meta_csv}: cannot be read as CSV ({str(e).strip().splitlines()[0]})") from None
    missing = [c for c in ("path", "lat", "lon") if c not in table.columns]
    if "path" in missing or (missing and "footprint_km" not in table.columns):
        raise files.UsageError(f"--meta {meta_csv} lacks the column(s) {', '.join(missing)} (it needs path, lat, "
                               "lon, and may add footprint_km; or path and footprint_km)")
    for column in ("lat", "lon", "footprint_km"):
        if column not in table.columns:
            table[column] = float("nan")
    for column, low, high in (("lat", -90, 90), ("lon", -180, 180), ("footprint_km", 1e-9, 20000)):
        values = pd.to_numeric(table[column], errors="coerce")
        bad = table[(values < low) | (values > high) | (values.isna() & table[column].notna())]
        if len(bad):
            within = "a number of km above 0" if column == "footprint_km" else f"a number within {low}..{high}"
            raise files.UsageError(f"--meta {meta_csv}: {column} of {bad['path'].iloc[0]} is "
                                   f"{bad[column].iloc[0]!r}, not {within}")
        table[column] = values
    by_path = {}
    for row in table.itertuples():
        for key in (Path(row.path), meta_csv.parent / row.path):
            by_path.setdefault(str(key.resolve()), (row.lat, row.lon, row.footprint_km))
    names = table["path"].map(lambda p: Path(p).name)
    unique = {n: (r.lat, r.lon, r.footprint_km) for n, r in zip(names, table.itertuples()) if (names == n).sum() == 1}
    nothing = (math.nan, math.nan, math.nan)
    found = [by_path.get(str(Path(p).resolve()), unique.get(Path(p).name)) or nothing for p in images_]
    placed = [f for f in found if not math.isnan(f[0])]
    sized = [f for f in found if not math.isnan(f[2])]
    sizes = f" (footprints for {len(sized)})" if sized else ""
    print(f"--meta: places for {len(placed)} of {len(images_)} images{sizes} from {meta_csv}", file=sys.stderr)
    lats = [None if math.isnan(f[0]) else float(f[0]) for f in found]
    lons = [None if math.isnan(f[0]) or math.isnan(f[1]) else float(f[1]) for f in found]
    return lats, lons, [None if math.isnan(f[2]) else float(f[2]) for f in found]


def _footprints(told, from_meta: list | None):
    """--footprint-km for every image, else the --meta column's (None where it has none)."""
    if told is not None or from_meta is None:
        return told
    return from_meta


def main(args: argparse.Namespace) -> int:
    ddp = distributed.setup(args.device)   # under torchrun: this process's rank among how many
    try:
        return _main(args, ddp)
    finally:
        distributed.teardown(ddp)


def _main(args: argparse.Namespace, ddp: distributed.Dist) -> int:
    try:
        found, ignored = check_args(args, ddp.world)
        predictor = load_model(args.model, select_device(args.device, ddp.local_rank), camera=args.camera)
    except (files.UsageError, CheckpointError, SettingError, RuntimeError) as e:  # RuntimeError: no such device
        print(f"error: {e}", file=sys.stderr)
        return 2
    from ..io.workers import cap, usable_cpus
    args.workers = cap(args.workers, quiet=not ddp.main)
    if ddp.local_world > 1:   # this machine's CPUs are shared by its processes of the run
        args.workers = min(args.workers, usable_cpus() // ddp.local_world)
    if args.workers > 1:      # the decoding processes have their cores: PyTorch's threads would only wait for them
        import torch
        torch.set_num_threads(max(1, min(torch.get_num_threads(), usable_cpus() - args.workers)))
    try:
        lats, lons, footprints = places_of(found, args.meta) if args.meta else (args.lat, args.lon, None)
    except files.UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    options = dict(tta=args.tta, batch_size=args.batch_size, scene=args.scene, max_pixels=args.max_pixels,
                   workers=args.workers, hemisphere=args.hemisphere, lat=lats, lon=lons,
                   footprint_km=_footprints(args.footprint_km, footprints), altitude_km=args.altitude_km)
    if args.out is None:   # a few images: the answers on screen, no file written
        return _answer_on_screen(predictor, found, ignored, args.format, options)
    return _predict_into_csv(predictor, found, ignored, args, options, ddp)


def _predict_into_csv(predictor: Predictor, found: list[Path], ignored: list[Path], args: argparse.Namespace,
                      options: dict, ddp: distributed.Dist | None = None) -> int:
    """Rows stream into ``<out>.partial`` (under torchrun, a partial file a process, each predicting a
    contiguous share of the images), which becomes --out when complete (``output``); with --resume,
    the rows of before are kept and their images skipped. Prints the table (a few images) or a summary."""
    ddp = ddp or distributed.Dist()
    if args.out == str(BATCH_OUT) and ddp.main:
        files.claim_dir(BATCH_OUT.parent)
    out, partial = Path(args.out), partial_path(args.out)
    failed: list[tuple[str, str]] = []
    skipped = skipped_path(out)
    with files.terminate_as_interrupt(), files.output_lock(out, hold=ddp.main):   # one run at a time into --out
        previous = output.Previous(out, args.resume)
        why = previous.mixing(predictor.camera)
        if why:   # every process read the same rows: all stop here, before anything is written
            print(f"error: --resume: {out}: {why}; give --camera as that run did, or run without --resume",
                  file=sys.stderr)
            return 2
        distributed.barrier(ddp)      # every process has read the rows of before...
        if ddp.main:                  # ...before the first puts them into its partial file, the parts' with them
            output.start_part(partial, previous)
            output.remove_parts(output.other_parts(out))
        distributed.barrier(ddp)
        part = output.part_path(out, ddp.rank)
        if not ddp.main:
            output.start_part(part, None)
        seen = previous.paths   # the images likely done weigh nothing in the shares
        mine = distributed.share(len(found), ddp, [str(p) not in seen for p in found])
        share = {k: v[mine] if isinstance(v, list) else v for k, v in options.items()}   # --meta: one place an image
        new, shown = _stream_rows(predictor, found[mine], out, part, previous, failed, args.format, share,
                                  show=len(found) <= SHOWN, progress=ddp.main)
        gathered = distributed.gather(ddp, (new, failed, shown))
        new = sum(n for n, _, _ in gathered)
        failed = [f for _, fs, _ in gathered for f in fs]
        shown = [r for _, _, rs in gathered for r in rs]
        total = previous.count + new
        parts = [output.part_path(out, r) for r in range(1, ddp.world)]
        if ddp.main and (total == 0 or (new == 0 and previous.from_output_alone)):
            partial.unlink(missing_ok=True)   # nothing new: --out stays as it was
            output.remove_parts(parts)
        elif ddp.main:
            output.join_parts(partial, parts)
            output.publish(partial, out)      # a rename, or the conversion to Parquet
            output.remove_parts(parts)
        listed = ddp.main and total > 0 and _write_skipped(skipped, failed, ignored)
        distributed.barrier(ddp)
    if not ddp.main:
        return 0 if total else 1
    if shown:
        print(format_table(shown))
    elif args.format == "table" and total:
        print(summary_of(out))
    print(f"predicted {new} of {len(found)} images into {out}"
          + (f" ({previous.count} rows kept from before)" if previous.count else "")
          + (f"; {skipped_summary(failed)}" if failed else "")
          + (f"; ignored {len(ignored)} non-image files" if ignored else "")
          + (f"; every skipped file and why: {skipped}" if listed else ""), file=sys.stderr)
    if total == 0:
        kept = f"; {out} was left as it was" if out.exists() else ""
        print(f"error: nothing could be predicted{kept}", file=sys.stderr)
        return 1
    return 0


def _write_skipped(path: Path, failed: list[tuple[str, str]], ignored: list[Path]) -> bool:
    """The files skipped beside --out, with why; returns whether there were any. With none, a list of
    ours from an earlier run is emptied (its header kept), so it never names files this run answered."""
    rows = [{"path": p, "reason": reason} for p, reason in failed]
    rows += [{"path": str(p), "reason": IGNORED} for p in ignored]
    if rows:
        files.write_rows(path, rows, SKIPPED_COLUMNS)
    elif path.is_file():
        files.write_text(path, ",".join(SKIPPED_COLUMNS) + "\n")
    return bool(rows)


def _stream_rows(predictor: Predictor, found: list[Path], out: Path, partial: Path, previous: output.Previous,
                 failed: list[tuple[str, str]], fmt: str, options: dict, show: bool = True,
                 progress: bool = True) -> tuple[int, list[Prediction]]:
    """Append a row per image to ``partial`` (begun by ``output.start_part``) as its batch is done;
    (rows new, results to ``show``). Unreadable images go into ``failed`` as (path, reason). Interrupted, the partial
    file keeps the rows so far."""
    kept = previous.count if partial == partial_path(out) else 0

    def report(path, error: ImageError) -> None:
        failed.append((str(path), error.reason))
        tqdm.write(f"skipped {error}", file=sys.stderr)

    new, shown = 0, []
    try:
        with files.appending_rows(partial, COLUMNS) as append:
            for batch in predictor.iter_batches(found, on_error=report, progress=progress, done=previous.done,
                                                **options):
                append(r.to_row() for r in batch)
                new += len(batch)
                if fmt == "json":
                    _print_json(batch)
                elif show:
                    shown.extend(batch)
    except BaseException:
        if kept or new:
            print(f"\n{kept + new} rows kept in {partial}; run the same command with --resume "
                  f"to continue; {out} was left as it was", file=sys.stderr)
        else:
            partial.unlink(missing_ok=True)
        raise
    return new, shown
