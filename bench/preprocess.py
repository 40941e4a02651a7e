"""Benchmark: preprocessing 12-megapixel photos, ours against the original approach.

    python bench/preprocess.py [--n 12] [--size 256] [--workers N] [--repeat 3]

Writes --n photo-like 4000x3000 JPEGs (smooth colour fields with fine grain,
about 2-3 MB each, like camera output) into a temporary folder, then times

- ours: ``biomeseason.preprocess.preprocess`` end to end (JPEG draft decoding,
  a process pool, hashing, duplicate search, manifest), with --workers
  processes and again with one, to show what each part brings;
- original: the approach it replaces, in one process: open, decode the full
  image, orient, convert to RGB, Lanczos-resize the short side to --size, save
  a JPEG. It does less than ours (no hash, no duplicate search, no manifest).

Prints images/s of each (best of --repeat runs) and the ratio.
Target: ours >= 5x the original on a 2-core machine.
"""
import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from biomeseason.preprocess import preprocess  # noqa: E402

TARGET = 5.0
WIDTH, HEIGHT = 4000, 3000
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
BIOMES = ["Boreal", "Deciduous", "DV", "Rainforest", "TropGrass", "Tundra", "USGrass"]


def photo(seed: int) -> Image.Image:
    """A 4000x3000 photo-like image: landscape-scale colour fields, texture and sensor grain."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(40, 220, (9, 12, 3)).astype(np.uint8)
    detail = rng.normal(0, 18, (300, 400, 3))
    field = np.asarray(Image.fromarray(coarse).resize((400, 300), Image.Resampling.BICUBIC), np.float32)
    small = Image.fromarray(np.clip(field + detail, 0, 255).astype(np.uint8))
    big = np.asarray(small.resize((WIDTH, HEIGHT), Image.Resampling.BICUBIC), np.int16)
    grain = rng.integers(-6, 7, big.shape, dtype=np.int16)
    return Image.fromarray(np.clip(big + grain, 0, 255).astype(np.uint8))


def write_photos(folder: Path, n: int) -> list[Path]:
    paths = []
    for i in range(n):
        path = folder / f"{BIOMES[i % 7]}_{MONTHS[i % 12]}_{i:04d}.jpg"
        photo(i).save(path, "JPEG", quality=90)
        paths.append(path)
    return paths


def original(paths: list[Path], out: Path, size: int) -> None:
    """Full decode, then resize, one image after another."""
    out.mkdir(parents=True, exist_ok=True)
    for path in paths:
        with Image.open(path) as im:
            im = ImageOps.exif_transpose(im.convert("RGB"))
            scale = size / min(im.size)
            im = im.resize((round(im.width * scale), round(im.height * scale)), Image.Resampling.LANCZOS)
            im.save(out / path.name, "JPEG", quality=95)


def best_time(run, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=12, help="photos to process (default: 12)")
    p.add_argument("--size", type=int, default=256, help="short side of the output (default: 256)")
    p.add_argument("--workers", type=int, default=os.cpu_count(),
                   help=f"processes for ours (default: the CPU count, {os.cpu_count()})")
    p.add_argument("--repeat", type=int, default=3, help="runs of each; the best counts (default: 3)")
    args = p.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        raw = tmp / "raw"
        raw.mkdir()
        start = time.perf_counter()
        paths = write_photos(raw, args.n)
        megabytes = sum(p.stat().st_size for p in paths) / len(paths) / 1e6
        print(f"{args.n} photos of {WIDTH}x{HEIGHT} ({megabytes:.1f} MB each on average), "
              f"written in {time.perf_counter() - start:.1f} s; short side -> {args.size} px; "
              f"{os.cpu_count()} CPUs")

        def ours(workers):
            return lambda: preprocess(raw, tmp / f"ours{workers}", size=args.size, workers=workers,
                                      progress=False)

        t_orig = best_time(lambda: original(paths, tmp / "original", args.size), args.repeat)
        t_one = best_time(ours(1), args.repeat)
        t_ours = best_time(ours(args.workers), args.repeat)

    rows = [("original: full decode + resize, 1 process", t_orig),
            ("ours, 1 process (JPEG draft decoding)", t_one),
            (f"ours, {args.workers} processes (draft + pool)", t_ours)]
    print(f"\n{'method':<46}{'seconds':>9}{'images/s':>10}{'x original':>12}")
    for label, seconds in rows:
        print(f"{label:<46}{seconds:>9.2f}{args.n / seconds:>10.1f}{t_orig / seconds:>12.1f}")
    ratio = t_orig / t_ours
    print(f"\ntarget >= {TARGET:.0f}x: {'met' if ratio >= TARGET else 'NOT met'} ({ratio:.1f}x)")
    return 0 if ratio >= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
