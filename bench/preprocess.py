"""Benchmark preprocessing: how it scales with the image count, and 12-megapixel photos.

    python bench/preprocess.py scale [--sizes 10000 100000 1000000] [--workers 2]
    python bench/preprocess.py photos [--n 12] [--size 256] [--workers N] [--repeat 3]

scale: writes --sizes[-1] distinct 40x40 PNGs named by the convention
(``Boreal_Jan_0000001.png``) into one folder (kept between runs in --data),
then preprocesses the first 10k, 100k, ... of them, each run in a fresh
process into a fresh folder (removed after), and prints images/s, the peak
resident memory of the main process and of the largest worker, and how time
and memory grow per step. For the near-duplicate search alone it times 10k,
100k and 1M random fingerprints against the all-pairs reference it replaces
(up to 100k).
Targets: 1,000,000 images in <= 20 minutes on 2 cores, every process <= 2 GB.

photos: --n photo-like 4000x3000 JPEGs (about 2-3 MB each), ours
(``preprocess`` end to end: JPEG draft decoding, a process pool, hashing,
grouping, manifest) against the original approach in one process (open, full
decode, orient, convert, Lanczos resize, save). Target: ours >= 5x on 2 cores.

Both pin torch and BLAS/OpenMP threads in every process (``--threads``,
printed) and put their report at the top of bench/results/preprocess.md.
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _machine import pin_threads, record  # noqa: E402  (bench/ is on the path: the script's folder)

from biomeseason.io import files  # noqa: E402
from biomeseason.prepare.preprocess import preprocess  # noqa: E402

MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
BIOMES = ["Boreal", "Deciduous", "DV", "Rainforest", "TropGrass", "Tundra", "USGrass"]
SCALE_MINUTES, SCALE_GB = 20.0, 2.0
PHOTO_TARGET = 5.0


# ---- scale ------------------------------------------------------------------------------

def tiny_name(i: int) -> str:
    return f"{BIOMES[i % 7]}_{MONTHS[(i // 7) % 12]}_{i:07d}.png"


def _write_tiny(args):
    folder, start, stop = args
    for i in range(start, stop):
        rng = np.random.default_rng(i)
        blocks = rng.integers(0, 256, (5, 5, 3), dtype=np.uint8)
        Image.fromarray(blocks).resize((40, 40), Image.Resampling.BILINEAR).save(
            os.path.join(folder, tiny_name(i)), compress_level=1)


def make_tiny(folder: Path, n: int, workers: int) -> None:
    """n distinct 40x40 PNGs, written once and reused (the first n of a larger set are the same)."""
    folder.mkdir(parents=True, exist_ok=True)
    have = len(os.listdir(folder))
    if have >= n:
        return
    from concurrent.futures import ProcessPoolExecutor
    step = 5000
    with ProcessPoolExecutor(workers) as pool:
        list(pool.map(_write_tiny, [(str(folder), s, min(n, s + step)) for s in range(have, n, step)]))


RUN_ONE = """
import json, resource, sys, time
sys.path.insert(0, sys.argv[4])
from _machine import Peak
from biomeseason.prepare.preprocess import preprocess

start = time.perf_counter()
# Workers are started by a fork server, so they are grandchildren: sampled, not RUSAGE_CHILDREN.
with Peak(every=0.2, include_self=False) as workers:
    r = preprocess(sys.argv[1], sys.argv[2], size=32, min_side=16, workers=int(sys.argv[3]), progress=False,
                   labels_csv=None)
seconds = time.perf_counter() - start
# This process's own peak (VmHWM): on Linux ru_maxrss keeps the parent's peak across exec, torch and all.
try:
    main_mb = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:")) / 1024
except (OSError, StopIteration):
    main_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": seconds, "kept": len(r.manifest), "rejected": len(r.rejected),
                  "groups": int(r.manifest["group"].duplicated(keep=False).sum()),
                  "main_mb": main_mb,
                  "worker_mb": workers.largest / 2**20}))
"""


def run_scale(args, show) -> int:
    data = Path(args.data)
    sizes = sorted(args.sizes)
    start = time.perf_counter()
    make_tiny(data / "all", sizes[-1], args.workers)
    show(f"{sizes[-1]:,} 40x40 PNGs in {data / 'all'} (written or reused in {time.perf_counter() - start:.0f} s); "
         f"{os.cpu_count()} CPUs, {args.workers} workers")
    names = sorted(os.listdir(data / "all"))
    results = []
    for n in sizes:
        raw = data / f"raw{n}"
        if not raw.exists():  # the first n files, linked, so one folder holds exactly n
            raw.mkdir()
            for name in names[:n]:
                os.link(data / "all" / name, raw / name)
        out = data / f"out{n}"
        files.remove_ours(out)   # an earlier run's output: replacing it would be timed with the run
        done = subprocess.run([sys.executable, "-c", RUN_ONE, str(raw), str(out), str(args.workers),
                               str(Path(__file__).resolve().parent)],
                              capture_output=True, text=True, cwd=ROOT)
        if done.returncode:
            raise SystemExit(f"preprocessing {n:,} images failed:\n{done.stderr[-2000:]}")
        r = json.loads(done.stdout.strip().splitlines()[-1])
        files.remove_ours(out)
        results.append((n, r))
        show(f"{n:>9,} images: {r['seconds']:7.1f} s  {n / r['seconds']:7.0f} images/s  "
             f"main {r['main_mb']:6.0f} MB  largest worker {r['worker_mb']:5.0f} MB  "
             f"kept {r['kept']:,} rejected {r['rejected']:,} in shared groups {r['groups']:,}")
    show("")
    show("growth per step (x10 images): " + ", ".join(
        f"{a:,}->{b:,}: time x{rb['seconds'] / ra['seconds']:.1f}, main memory x{rb['main_mb'] / ra['main_mb']:.1f}"
        for (a, ra), (b, rb) in zip(results, results[1:])))
    search_growth(sizes, show)
    n, r = results[-1]
    minutes = r["seconds"] / 60 * 1_000_000 / n
    gb = max(r["main_mb"], r["worker_mb"]) / 1024
    show("")
    show(f"1,000,000 images {'measured' if n >= 1_000_000 else 'extrapolated linearly from ' + f'{n:,}'}: "
         f"{minutes:.1f} min (target <= {SCALE_MINUTES:.0f}), largest process {gb:.2f} GB at {n:,} "
         f"(target <= {SCALE_GB:.0f})")
    return 0 if minutes <= SCALE_MINUTES and gb <= SCALE_GB else 1


def search_growth(sizes: list[int], show) -> None:
    """The near-duplicate search alone on random fingerprints with planted copies: fast against all pairs.

    The thumbnails are zeros allocated lazily, so memory is the search's own: the peak above what this
    process held before (torch among it, loaded by the thread pinning).
    """
    import psutil

    from biomeseason.prepare.dedupe import near_duplicate_pairs, near_duplicate_pairs_all

    before = psutil.Process().memory_info().rss / 2**20

    show("")
    show("near-duplicate search alone (random 64-bit hashes, 1% planted copies within 8 bits):")
    previous = None
    for n in sorted(set(sizes) | {10_000, 100_000, 1_000_000}):
        rng = np.random.default_rng(n)
        hashes = rng.integers(0, 2**63, n, dtype=np.int64).astype(np.uint64) * np.uint64(2)
        copies = rng.integers(0, n, n // 100)
        flips = [sum(1 << int(b) for b in rng.choice(64, int(k), replace=False)) for k in rng.integers(0, 9, n // 100)]
        hashes[copies[::-1][: len(copies) // 2]] = hashes[copies[: len(copies) // 2]] ^ np.array(
            flips[: len(copies) // 2], dtype=np.uint64)
        thumbs = np.zeros((n, 16, 16, 3), np.uint8)
        start = time.perf_counter()
        fast = near_duplicate_pairs(hashes, thumbs)
        seconds = time.perf_counter() - start
        line = f"  {n:>9,}: fast {seconds:6.2f} s ({len(fast):,} pairs)"
        if n <= 100_000:
            start = time.perf_counter()
            same = near_duplicate_pairs_all(hashes, thumbs) == fast
            slow = time.perf_counter() - start
            line += f", all pairs {slow:6.2f} s ({slow / seconds:.1f}x the fast one), same pairs: {same}"
        if previous:
            line += f"; time x{seconds / previous:.1f} for x10 images"
        previous = seconds
        show(line)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    show(f"  peak memory of this process: {peak:.0f} MB, {peak - before:.0f} MB above the {before:.0f} MB "
         "it held before the search")


# ---- photos ------------------------------------------------------------------------------

WIDTH, HEIGHT = 4000, 3000


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


def run_photos(args, show) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        raw = tmp / "raw"
        raw.mkdir()
        paths = []
        for i in range(args.n):
            path = raw / f"{BIOMES[i % 7]}_{MONTHS[i % 12]}_{i:04d}.jpg"
            photo(i).save(path, "JPEG", quality=90)
            paths.append(path)
        show(f"{args.n} photos of {WIDTH}x{HEIGHT}; short side -> {args.size} px; {os.cpu_count()} CPUs")

        def ours(workers):
            return lambda: preprocess(raw, tmp / f"ours{workers}", size=args.size, workers=workers,
                                      progress=False)

        t_orig = best_time(lambda: original(paths, tmp / "original", args.size), args.repeat)
        t_one = best_time(ours(1), args.repeat)
        t_ours = best_time(ours(args.workers), args.repeat)
    rows = [("original: full decode + resize, 1 process", t_orig),
            ("ours, 1 process (JPEG draft decoding)", t_one),
            (f"ours, {args.workers} processes (draft + pool)", t_ours)]
    show("")
    show(f"{'method':<46}{'seconds':>9}{'images/s':>10}{'x original':>12}")
    for label, seconds in rows:
        show(f"{label:<46}{seconds:>9.2f}{args.n / seconds:>10.1f}{t_orig / seconds:>12.1f}")
    ratio = t_orig / t_ours
    show("")
    show(f"target >= {PHOTO_TARGET:.0f}x: {'met' if ratio >= PHOTO_TARGET else 'NOT met'} ({ratio:.1f}x)")
    return 0 if ratio >= PHOTO_TARGET else 1


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="mode", required=True)
    threads = argparse.ArgumentParser(add_help=False)
    threads.add_argument("--threads", type=int, default=2,
                         help="torch and BLAS/OpenMP threads of every process, pinned (default: 2)")
    s = sub.add_parser("scale", parents=[threads], help="many small images: images/s and peak memory per size")
    s.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000],
                   help="image counts to run (default: 10000 100000)")
    s.add_argument("--workers", type=int, default=os.cpu_count(), help="processes (default: the CPU count)")
    s.add_argument("--data", default=os.path.join(tempfile.gettempdir(), "biomeseason-bench-scale"),
                   help="folder for the generated images, kept for reuse (default: %(default)s)")
    ph = sub.add_parser("photos", parents=[threads], help="12-megapixel JPEGs against the original approach")
    ph.add_argument("--n", type=int, default=12, help="photos to process (default: 12)")
    ph.add_argument("--size", type=int, default=256, help="short side of the output (default: 256)")
    ph.add_argument("--workers", type=int, default=os.cpu_count(), help="processes (default: the CPU count)")
    ph.add_argument("--repeat", type=int, default=3, help="runs of each; the best counts (default: 3)")
    args = p.parse_args()
    pin_threads(args.threads)   # workers and the processes of `scale` inherit it through the environment
    lines = []

    def show(line: str) -> None:
        print(line, flush=True)
        lines.append(line)

    code = (run_scale if args.mode == "scale" else run_photos)(args, show)
    what = ("scale: many small images, time and memory per size" if args.mode == "scale" else
            "photos: 12-megapixel JPEGs, ours against the original approach measured in this run")
    record("preprocess", "Preprocessing: scale and 12-megapixel photos",
           f"{what}\n\n```\n" + "\n".join(lines).strip("\n") + "\n```", args.threads)
    return code


if __name__ == "__main__":
    sys.exit(main())
