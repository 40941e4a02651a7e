"""Synthetic overhead Earth scenes: 7 biomes x 12 months, labelled by file name.

    python -m biomeseason synth --out data/raw --per-class 4 --seed 0 --size 256

writes ``Boreal_Jan_0001.jpg`` ... ``USGrass_Dec_0004.jpg`` (the original
study's naming, one place per biome seen from orbit) and prints how many
images it wrote, where, and how fast.

One job a module:

- ``synthetic`` (this one): the writer, its list of scenes, the contact sheet and the command line.
- ``scene``: one scene, ``render_scene``, and how a scene is made.
- ``biomes``: file prefixes, colour anchors, each biome's month tables and their sources.
- ``season``: a scene's day and sun, the month tables read at that day, its palette.
- ``terrain``: noise fields, a river's course, farm fields, hill shading.
- ``features``: land cover, burn scars, washes, snow, lakes, rivers, ice and clouds.
- ``looks``: colours measured on real imagery, sky, view and sensor.
"""
from __future__ import annotations

import argparse
import pathlib
import time

import numpy as np
from PIL import Image

from ..io import files
from ..io.workers import cap, process_pool
from ..labels import MONTH_ABBR
from ..prepare import scan
from . import looks
from .biomes import FILE_PREFIX
from .scene import render_scene

__all__ = ["FILE_PREFIX", "render_scene", "check_settings", "write_scenes", "list_scenes", "contact_sheet",
           "get_args_parser", "main"]


def _file_name(biome: str, month: int, i: int) -> str:
    return f"{FILE_PREFIX[biome]}_{MONTH_ABBR[month - 1].capitalize()}_{i:04d}.jpg"


def _write_one(task) -> tuple[str, np.ndarray | None]:
    """Render and save one scene (atomically); returns its path and, for the first scene of
    its (biome, month), a thumbnail for the contact sheet."""
    out, biome, month, i, seed, size, quality, look = task
    ss = np.random.SeedSequence([seed, list(FILE_PREFIX).index(biome), month, i])
    scene_seed, file_seed = ss.spawn(2)
    arr = render_scene(biome, month, scene_seed, size, look)
    path = pathlib.Path(out) / _file_name(biome, month, i)
    files.save_image(path, Image.fromarray(arr), format="JPEG",
                     quality=looks.jpeg_quality(quality, np.random.default_rng(file_seed)))
    thumb = np.asarray(Image.fromarray(arr).resize((THUMB, THUMB), Image.BILINEAR)) if i == 1 else None
    return str(path), thumb


def check_settings(out, per_class=4, size=256, look="mixed", workers=1, quality=92, force=False) -> None:
    """Refuse bad settings and a foreign output folder, in one sentence, before any work."""
    if look not in looks.LOOKS:
        raise files.UsageError(f"--look must be one of {', '.join(looks.LOOKS)}, not {look!r}")
    if per_class < 1 or size < 16 or workers < 1 or not 1 <= quality <= 100:
        raise files.UsageError("--per-class and --workers must be >= 1, --size >= 16 and --quality 1..100")
    files.check_dir_target(out, force=force)
    listed = pathlib.Path(out) / scan.SCENES_LIST
    if listed.is_file() and tuple(listed.read_text(encoding="utf-8", errors="replace").splitlines()[:1]) != \
            (",".join(scan.SCENES_COLUMNS),):
        raise files.UsageError(f"{listed} is not a list of scenes written by biomeseason; move it out of "
                               f"{out} and run again")


def write_scenes(out, per_class=4, seed=0, size=256, biomes=None, months=None, workers=1,
                 quality=92, progress=True, look="mixed", force=False) -> list[pathlib.Path]:
    """Write per_class scenes for every (biome, month) into `out`; returns the paths in task order.

    Image i (1-based, as in the file name) of (biome, month) is seeded from
    SeedSequence([seed, biome index in FILE_PREFIX, month, i]), so the files
    are the same whatever `workers` is. `out` is created with our marker; an
    existing folder that is not ours is refused unless `force`. A contact
    sheet of the first scene of each (biome, month), ``contact_sheet_<look>.png``,
    is written beside the scenes.
    """
    from tqdm.auto import tqdm

    biomes = list(FILE_PREFIX) if biomes is None else list(biomes)
    months = list(range(1, 13)) if months is None else [int(m) for m in months]
    bad = [b for b in biomes if b not in FILE_PREFIX] + [m for m in months if not 1 <= m <= 12]
    if bad:
        raise ValueError(f"unknown biome or month {bad}; biomes are {list(FILE_PREFIX)}, months 1..12")
    check_settings(out, per_class, size, look, workers, quality, force)
    out = files.claim_dir(out, force=force)
    tasks = [(str(out), b, m, i, int(seed), int(size), int(quality), look)
             for b in biomes for m in months for i in range(1, int(per_class) + 1)]
    paths, thumbs = [], {}
    with tqdm(total=len(tasks), unit="img", disable=not progress, desc="synth") as bar:
        def collect(results):
            for task, (p, thumb) in zip(tasks, results):
                paths.append(pathlib.Path(p))
                if thumb is not None:
                    thumbs[task[1], task[2]] = thumb
                bar.update()
        if workers > 1:
            with files.terminate_as_interrupt(), process_pool(int(workers)) as pool:
                collect(pool.map(_write_one, tasks, chunksize=max(1, len(tasks) // (8 * workers))))
        else:
            collect(map(_write_one, tasks))
    contact_sheet(thumbs, out / f"contact_sheet_{look}.png")
    list_scenes(out, paths, [(t[1], t[2]) for t in tasks])
    return paths


def list_scenes(out: pathlib.Path, paths: list[pathlib.Path], labels: list[tuple[str, int]]) -> pathlib.Path:
    """``scenes.csv`` beside the scenes (path relative to ``out``, biome, month), with the rows of an earlier
    run into the same folder kept: preprocessing labels the scenes from it when a labels CSV of the user's
    does not list them (``scan.with_synthetic_scenes``)."""
    import pandas as pd

    from ..prepare.scan import SCENES_LIST

    rows = pd.DataFrame({"path": [p.name for p in paths], "biome": [b for b, _ in labels],
                         "month": [str(m) for _, m in labels]})
    earlier = out / SCENES_LIST
    if earlier.is_file():   # check_settings made sure it is ours
        rows = pd.concat([pd.read_csv(earlier, dtype=str, keep_default_na=False), rows])
        rows = rows.drop_duplicates("path", keep="last").sort_values("path")
    return files.write_csv(earlier, rows)


THUMB = 64   # px per scene on the contact sheet


def contact_sheet(thumbs: dict, path) -> pathlib.Path | None:
    """A grid of thumbnails {(biome, month): (THUMB, THUMB, 3)}, biomes down and months across,
    labelled, so a person can see the scenes at a glance."""
    from PIL import ImageDraw

    if not thumbs:
        return None
    biomes = [b for b in FILE_PREFIX if any(k[0] == b for k in thumbs)]
    months = sorted({k[1] for k in thumbs})
    left, top, gap = 84, 16, 2
    sheet = Image.new("RGB", (left + len(months) * (THUMB + gap), top + len(biomes) * (THUMB + gap)), "white")
    draw = ImageDraw.Draw(sheet)
    for j, m in enumerate(months):
        draw.text((left + j * (THUMB + gap) + 4, 2), MONTH_ABBR[m - 1].capitalize(), fill="black")
    for i, b in enumerate(biomes):
        draw.text((4, top + i * (THUMB + gap) + THUMB // 2 - 6), FILE_PREFIX[b], fill="black")
        for j, m in enumerate(months):
            if (b, m) in thumbs:
                sheet.paste(Image.fromarray(thumbs[b, m]), (left + j * (THUMB + gap), top + i * (THUMB + gap)))
    return files.save_image(path, sheet)


def get_args_parser(add_help=True) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Write synthetic Earth scenes (7 biomes x 12 months).",
                                add_help=add_help)
    p.add_argument("--out", required=True, type=pathlib.Path,
                   help="output folder (created if missing; a folder not written by biomeseason needs --force)")
    p.add_argument("--per-class", type=int, default=4, help="images per (biome, month) (default: 4)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--size", type=int, default=256, help="image side in pixels (default: 256)")
    p.add_argument("--look", choices=looks.LOOKS, default="mixed",
                   help="nadir (straight down), orbital (oblique, with the horizon) or mixed (default: mixed)")
    p.add_argument("--workers", type=int, default=1, help="processes (default: 1)")
    p.add_argument("--quality", type=int, default=92, help="JPEG quality of most files (default: 92)")
    p.add_argument("--force", action="store_true",
                   help="add scenes to an existing folder not written by biomeseason (default: off)")
    return p


def main(args) -> int:
    check_settings(args.out, args.per_class, args.size, args.look, args.workers, args.quality, args.force)
    t0 = time.perf_counter()
    paths = write_scenes(args.out, args.per_class, args.seed, args.size, workers=cap(args.workers),
                         quality=args.quality, look=args.look, force=args.force)
    dt = time.perf_counter() - t0
    print(f"wrote {len(paths)} images to {args.out} ({len(paths) / max(dt, 1e-9):.1f} images/s); "
          f"contact sheet: {pathlib.Path(args.out) / f'contact_sheet_{args.look}.png'}; labels: "
          f"{pathlib.Path(args.out) / scan.SCENES_LIST}")
    return 0
