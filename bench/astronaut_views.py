"""Astronaut views rendered from the REAL Blue Marble maps: a contact sheet of lenses x tilts, and random views.

    python bench/astronaut_views.py                  # bench/results/astronaut_views.jpg and .md
    python bench/astronaut_views.py --place 47.0 10.0 --month 1 --azimuth 0     # the Alps in winter, looking north

Data: the twelve REAL NASA Blue Marble Next Generation 2004 monthly maps (``data/bluemarble_maps``,
about 7.4 km a pixel), seen through ``biomeseason.earth.astronaut``: a perspective camera 400 km up
on a full-frame sensor, the Earth a sphere, the air's haze growing toward the horizon and the limb's
glow over black space. Nothing here is an astronaut photo: none is available on this machine (no
collection under ../shared/realdata or in the repository), so the sheet has no real photo beside
the rendered ones, and says so.

The sheet's first rows: one place (``--place``, default Cairo, looking south up the Nile) through
lenses of 50 to 1600 mm (columns) at tilts of 0, 30 and 60 degrees (rows), clean (no simulated
camera), each captioned with its lens, tilt and footprint (the ground width along the centre row,
computed by ray casting). Last rows: ``random_views`` with the astronaut camera and, in some, the
window frame, captioned with month, lens, tilt, footprint and nadir point.
It prints, and records in bench/results/astronaut_views.md, the render time per 256 px view.
"""
from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from _machine import pin_threads, record  # noqa: E402
from PIL import Image, ImageDraw, ImageFont  # noqa: E402

from biomeseason.earth import astronaut  # noqa: E402
from biomeseason.io import files  # noqa: E402

OUT = ROOT / "bench" / "results" / "astronaut_views.jpg"
LENSES = (50, 100, 200, 400, 800, 1600)
TILTS = (0, 30, 60)
SIZE = 256             # rendered side; shown at --cell
MAX_BYTES = 400_000    # the sheet is committed: JPEG quality is lowered until it fits
NOTE = ("REAL Blue Marble 2004 monthly maps (data/bluemarble_maps), rendered as ISS handheld views "
        "(biomeseason.earth.astronaut).", "No real astronaut photo is available on this machine to show beside them.")


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--place", type=float, nargs=2, default=(30.0, 31.2), metavar=("LAT", "LON"),
                   help="nadir point of the lens x tilt grid (default: 30.0 31.2, Cairo)")
    p.add_argument("--month", type=int, default=7, help="month of the grid (default: 7)")
    p.add_argument("--azimuth", type=float, default=180.0,
                   help="where the tilted views look, clockwise from north (default: 180, south)")
    p.add_argument("--random", type=int, default=12, help="random views with the camera (default: 12)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random views (default: 0)")
    p.add_argument("--cell", type=int, default=160, help="side of each view on the sheet (default: 160)")
    p.add_argument("--threads", type=int, default=1, help="torch and BLAS threads, pinned (default: 1)")
    return p


def caption_cell(image: np.ndarray, lines: list[str], cell: int, font) -> Image.Image:
    """The view at ``cell`` px with its caption lines below it."""
    out = Image.new("RGB", (cell, cell + 14 * len(lines) + 4), (255, 255, 255))
    out.paste(Image.fromarray(image).resize((cell, cell), Image.BILINEAR), (0, 0))
    draw = ImageDraw.Draw(out)
    for i, line in enumerate(lines):
        draw.text((3, cell + 2 + 14 * i), line, fill=(0, 0, 0), font=font)
    return out


def footprint(view) -> str:
    return "space at centre" if view.footprint_km is None else f"{view.footprint_km:,.1f} km across"


def sheet(cells: list[Image.Image], columns: int, title: list[str], font, gap: int = 6) -> Image.Image:
    w, h = cells[0].width, max(c.height for c in cells)
    rows = (len(cells) + columns - 1) // columns
    top = 16 * len(title) + 8
    out = Image.new("RGB", (columns * (w + gap) + gap, top + rows * (h + gap)), (255, 255, 255))
    draw = ImageDraw.Draw(out)
    for i, line in enumerate(title):
        draw.text((gap, 4 + 16 * i), line, fill=(0, 0, 0), font=font)
    for i, c in enumerate(cells):
        out.paste(c, (gap + (i % columns) * (w + gap), top + (i // columns) * (h + gap)))
    return out


def fitting_jpeg(image: Image.Image) -> tuple[bytes, int]:
    for quality in (88, 82, 76, 70, 64, 58, 50):
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=quality, optimize=True)
        if buffer.tell() <= MAX_BYTES:
            break
    return buffer.getvalue(), quality


def main() -> int:
    args = get_args_parser().parse_args()
    threads = pin_threads(args.threads)
    font = ImageFont.load_default(size=11)
    lat, lon = args.place
    start = time.perf_counter()
    astronaut.month_levels(args.month, astronaut._folder(None))    # the maps' first read is not a render
    astronaut.hidden_levels(astronaut._folder(None))
    load = time.perf_counter() - start

    grid, times = [], []
    for tilt in TILTS:
        for lens in LENSES:
            start = time.perf_counter()
            view = astronaut.render_view(args.month, lat, lon, lens, tilt, args.azimuth, size=SIZE)
            times.append(time.perf_counter() - start)
            if view.hidden_share > 0:
                print(f"error: the {lens} mm view tilted {tilt} deg from {lat}, {lon} touches the hidden mask: "
                      "choose another --place or --azimuth", file=sys.stderr)
                return 2
            grid.append((view, [f"{lens} mm, tilt {tilt} deg", footprint(view)]))
    start = time.perf_counter()
    randoms = astronaut.random_views(args.random, rng=args.seed, size=SIZE, camera="astronaut", frame_p=0.3)
    random_time = time.perf_counter() - start

    cells = [caption_cell(v.image, lines, args.cell, font) for v, lines in grid]
    cells += [caption_cell(v.image, [f"{v.month:02d}: {v.focal_mm:.0f} mm, tilt {v.tilt_deg:.0f} deg",
                                     f"{footprint(v)}; at {v.lat:.1f}, {v.lon:.1f}"], args.cell, font)
              for v in randoms]
    title = [*NOTE,
             f"Rows 1-3: nadir {lat:.1f}, {lon:.1f}, month {args.month}, looking toward azimuth {args.azimuth:g}; "
             f"lenses {', '.join(map(str, LENSES))} mm x tilts {', '.join(map(str, TILTS))} deg; 400 km up; no camera.",
             f"Below: {args.random} random views (seed {args.seed}) with the simulated astronaut camera, "
             "some behind a window frame; none touches the hidden mask."]
    data, quality = fitting_jpeg(sheet(cells, len(LENSES), title, font))
    files.atomic_write(OUT, data)

    per_view = np.median(times) * 1000
    rows = [f"| {v.focal_mm:.0f} mm | {v.tilt_deg:.0f} | {footprint(v)} | {v.earth_share:.2f} |" for v, _ in grid]
    text = "\n".join([
        f"- data: {' '.join(NOTE)}",
        f"- sheet: `{OUT.relative_to(ROOT)}` ({len(data) / 1000:.0f} KB, JPEG quality {quality}): "
        f"{len(grid)} views of one place ({lat:.1f}, {lon:.1f}, month {args.month}) over lenses x tilts, "
        f"then {len(randoms)} random views with the astronaut camera (seed {args.seed}).",
        f"- render time per {SIZE} px view (no camera): median {per_view:.0f} ms, max {max(times) * 1000:.0f} ms "
        f"over {len(times)} views; the month's map read once: {load:.1f} s; "
        f"{len(randoms)} random views with the camera (maps read as needed): {random_time:.1f} s.",
        "", "| lens | tilt (deg) | footprint | share of Earth |", "| --- | --- | --- | --- |", *rows, ""])
    print(text)
    record("astronaut_views", "Astronaut views rendered from the Blue Marble maps", text, threads)
    return 0


if __name__ == "__main__":
    sys.exit(main())
