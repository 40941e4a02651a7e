"""Benchmark: dominant colours of 12-megapixel photos, ours against the original approach.

    python bench/colors.py [--k 5] [--n 21] [--batch 84] [--repeat 3] [--seed 0] [--threads 2] [--agreement-only]

- ours: ``biomeseason.colors.palette.dominant_colors(path, k)``, from the file path, so
  decoding is timed too (the colour names are fitted once beforehand, as in
  a batch);
- original: the approach this replaces: decode, resize to 600x400, scikit-learn
  ``KMeans(n_clusters=k)`` with default settings on all 240,000 pixels in RGB;
- reference: k-means in CIELAB on all 12 million pixels of the photo (ten
  restarts; exactly, as k-means over its distinct colours weighted by their
  counts): the same clustering as ours without decoding small and pooling
  colours for the restarts, so the distance of ours to it is what those
  shortcuts cost. It is also run with another seed: on a photo whose colours
  allow two near-equal optima the reference disagrees with itself, a floor no
  shortcut can beat.

REAL photos: ``--n`` 12-megapixel JPEGs of ``bench/_photos.py`` (Blue Marble places and
scikit-image's sample photos), one row each; a batch of ``--batch`` such photos through the
colours command with two worker processes (per photo of the second half; each half run ``--repeat``
times in turns, medians); the decode alone, at the scale ours reads the JPEG: the most any approach
that decodes it could reach. Then SYNTHETIC: the land-cover texture
``photo_like`` with the original on one thread and colorthief as well. Colours are matched
one to one by the Hungarian algorithm on their CIEDE2000 distances. Threads are pinned
(``--threads``, printed). Target: ours >= 10x faster than the original on real photos, and
mean dE2000 <= 1 against the reference. Writes ``bench/results/colors.md`` (newest run first).
``--agreement-only``: the real photos' dE alone (ours once, no timing, no batch, no synthetic
texture), printed and not recorded: a quick check of a change to the clustering.
"""
import argparse
import itertools
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from colorthief import ColorThief
from PIL import Image
from scipy.optimize import linear_sum_assignment
from skimage.color import deltaE_ciede2000, lab2rgb, rgb2lab
from sklearn.cluster import KMeans
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import pin_threads, report  # noqa: E402
from _photos import SOURCES, photos  # noqa: E402

from biomeseason.colors import palette as colors  # noqa: E402
from biomeseason.colors.cluster import _read as decode  # noqa: E402  (the JPEG at the scale ours reads it)

WIDTH, HEIGHT = 4000, 3000
JPEG_QUALITY = 90
# Land cover seen from above: forest, grass, dry grass, bare soil, water, snow.
COVER = np.array([[38, 70, 36], [96, 128, 58], [170, 160, 100],
                  [128, 96, 70], [46, 84, 120], [236, 238, 242]], dtype=np.float32)


def smooth_field(rng, cells_x: int, cells_y: int) -> np.ndarray:
    """(HEIGHT, WIDTH) float32 noise in about [0, 1], smooth over WIDTH / cells_x pixels."""
    small = rng.random((cells_y, cells_x), dtype=np.float32)
    return np.asarray(Image.fromarray(small, mode="F").resize((WIDTH, HEIGHT), Image.BICUBIC))


def photo_like(path: Path, seed: int) -> None:
    """Regions of land cover with soft edges, shading, texture and grain, as JPEG."""
    rng = np.random.default_rng(seed)
    # Region weights: a sharpened softmax of smooth fields, so regions have
    # organic shapes and edges a few dozen pixels wide.
    logits = np.stack([smooth_field(rng, 7, 5) for _ in COVER], axis=-1)
    weights = np.exp(25 * logits)
    weights /= weights.sum(axis=-1, keepdims=True)
    image = weights @ COVER                                       # (H, W, 3)
    shade = 0.85 + 0.3 * smooth_field(rng, 40, 30)                # hills, haze
    texture = 14 * (smooth_field(rng, 800, 600) - 0.5)            # canopy, furrows
    image = image * shade[..., None] + texture[..., None]
    image += rng.normal(0, 3, image.shape).astype(np.float32)     # sensor grain
    Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(path, quality=JPEG_QUALITY)


def original(path: Path, k: int):
    """(k, 3) RGB centres and their shares in percent, the way the original
    notebook computed them."""
    image = Image.open(path).convert("RGB").resize((600, 400))
    pixels = np.asarray(image).reshape(-1, 3)
    km = KMeans(n_clusters=k).fit(pixels)
    return km.cluster_centers_, 100 * np.bincount(km.labels_, minlength=k) / len(pixels)


def ours(path: Path, k: int, seed: int):
    """(k, 3) RGB colours and their shares in percent."""
    palette = colors.dominant_colors(path, k, seed=seed)
    return np.array([c["rgb"] for c in palette], dtype=float), np.array([c["share"] for c in palette])


def lab_reference(path: Path, k: int, seed: int) -> np.ndarray:
    """(k, 3) RGB centres of k-means in CIELAB on every pixel of the full-size photo.

    k-means on the distinct colours weighted by their pixel counts has the
    same objective as on all pixels, at a fraction of the memory."""
    pixels = np.asarray(Image.open(path).convert("RGB")).reshape(-1, 3)
    codes = pixels.astype(np.int32) @ np.array([1 << 16, 1 << 8, 1])
    distinct, counts = np.unique(codes, return_counts=True)
    rgb = np.stack([distinct >> 16, (distinct >> 8) & 255, distinct & 255], 1)
    lab = rgb2lab(rgb / 255.0)
    centres = KMeans(n_clusters=k, n_init=10, random_state=seed).fit(lab, sample_weight=counts).cluster_centers_
    return np.clip(lab2rgb(centres), 0, 1) * 255


def colorthief(path: Path, k: int) -> np.ndarray:
    # MMCQ may return one colour more or less than asked; matching copes
    return np.array(ColorThief(str(path)).get_palette(color_count=k), dtype=float)


def hexes(rgb: np.ndarray) -> str:
    return " ".join("#{:02x}{:02x}{:02x}".format(*c) for c in np.round(rgb).astype(int))


def timed(methods: dict, repeat: int):
    """{name: (median seconds, results)}; the methods take turns, so that a
    change in the machine's load falls on all of them alike."""
    times = {name: [] for name in methods}
    results = {name: [] for name in methods}
    for _ in range(repeat):
        for name, (fn, threads) in methods.items():
            with threadpool_limits(limits=threads):
                start = time.perf_counter()
                results[name].append(fn())
                times[name].append(time.perf_counter() - start)
    return {name: (statistics.median(times[name]), results[name]) for name in methods}


def matched(a_rgb: np.ndarray, b_rgb: np.ndarray):
    """(rows, cols, distances): colours of a and b matched one to one (Hungarian)
    so that the total CIEDE2000 is smallest."""
    a, b = rgb2lab(a_rgb / 255.0), rgb2lab(b_rgb / 255.0)
    cost = deltaE_ciede2000(a[:, None, :], b[None, :, :])        # (len(a), len(b))
    rows, cols = linear_sum_assignment(cost)
    return rows, cols, cost[rows, cols]


def mean_delta_e(a_rgb: np.ndarray, b_rgb: np.ndarray) -> float:
    return float(matched(a_rgb, b_rgb)[2].mean())


def per_photo(path: Path, k: int, seed: int, repeat: int) -> dict:
    """One photo: median seconds of ours and of the original, the palettes' distance to CIELAB k-means
    on all its pixels, and that reference's own distance to itself with another seed."""
    ours(path, k, seed)    # names fitted once, outside the timing
    runs = timed({"ours": (lambda: ours(path, k, seed), None),
                  "original": (lambda: original(path, k), None),
                  "decode": (lambda: decode(path), None)}, repeat)
    reference = lab_reference(path, k, seed)
    return {"ours": runs["ours"][0], "original": runs["original"][0], "decode": runs["decode"][0],
            "dE": mean_delta_e(reference, runs["ours"][1][0][0]),
            "dE original": statistics.mean(mean_delta_e(reference, o[0]) for o in runs["original"][1]),
            "floor": mean_delta_e(reference, lab_reference(path, k, seed + 1)),
            "palette": runs["ours"][1][0], "mb": path.stat().st_size / 1e6}


def agreement_only(made, k: int, seed: int) -> int:
    """Print each real photo's dE of ours to the reference and of the reference to itself, and the means."""
    rows = []
    print("| photo | shows | dE ours vs all-pixel CIELAB k-means | dE of that k-means against itself, other seed |")
    print("|---|---|---|---|")
    for path, what in made:
        reference = lab_reference(path, k, seed)
        rows.append((mean_delta_e(reference, ours(path, k, seed)[0]),
                     mean_delta_e(reference, lab_reference(path, k, seed + 1))))
        print(f"| {path.name} | {what} | {rows[-1][0]:.2f} | {rows[-1][1]:.2f} |", flush=True)
    d_e = [r[0] for r in rows]
    print(f"mean dE {statistics.mean(d_e):.2f} (median {statistics.median(d_e):.2f}, target <= 1: "
          f"{'met' if statistics.mean(d_e) <= 1 else 'NOT met'}); the reference against itself "
          f"{statistics.mean(r[1] for r in rows):.2f}; not recorded (--agreement-only)")
    return 0


def batch_run(tmp: Path, n: int, k: int, repeat: int) -> tuple[float, float, float]:
    """(median seconds on n / 2 photos, on ``n``, and seconds per photo between the two) of the colours
    command with two worker processes, each run in a fresh process, the two sizes taking turns
    ``repeat`` times: both runs start the workers, so the difference is the cost of n / 2 photos
    more (a single pair varied by a few ms a photo with the start-up time)."""
    folder, half = tmp / "batch", tmp / "half"
    folder.mkdir()
    half.mkdir()
    made = photos(folder, n)
    for path, _ in made[:n // 2]:
        (half / path.name).write_bytes(path.read_bytes())
    seconds = {half: [], folder: []}
    for i, source in itertools.product(range(repeat), (half, folder)):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "biomeseason", "colors", str(source), "--k", str(k), "--out",
                        str(tmp / f"{source.name}-{i}.csv"), "--workers", "2"], check=True, capture_output=True)
        seconds[source].append(time.perf_counter() - start)
    few, many = statistics.median(seconds[half]), statistics.median(seconds[folder])
    return few, many, (many - few) / (n - n // 2)


def synthetic_report(path: Path, k: int, seed: int, repeat: int) -> list[str]:
    """The synthetic land-cover texture: ours, the original on one and all threads, colorthief."""
    ours(path, k, seed)
    runs = timed({"ours": (lambda: ours(path, k, seed), None),
                  "original (KMeans defaults)": (lambda: original(path, k), None),
                  "original, one thread": (lambda: original(path, k), 1)}, max(repeat, 2))   # 2: its runs compared
    runs.update(timed({"colorthief": (lambda: colorthief(path, k), None)}, 1))
    reference = lab_reference(path, k, seed)
    t_ours, mine = runs["ours"]
    orig = [centres for centres, _ in runs["original (KMeans defaults)"][1]]
    lines = [f"SYNTHETIC: a land-cover texture (`photo_like`), {WIDTH}x{HEIGHT} JPEG, "
             f"{path.stat().st_size / 1e6:.1f} MB", "", "| method | median s | x ours |", "|---|---|---|"]
    lines += [f"| {label} | {seconds:.3f} | {seconds / t_ours:.1f} |" for label, (seconds, _) in runs.items()]
    lines += ["", "| palette agreement, mean dE2000 of matched colours | |", "|---|---|",
              f"| ours vs original | {statistics.mean(mean_delta_e(o, mine[0][0]) for o in orig):.2f} |",
              "| original vs original (its runs) | "
              f"{statistics.mean(mean_delta_e(a, b) for a, b in itertools.combinations(orig, 2)):.2f} |",
              "| colorthief vs original | "
              f"{statistics.mean(mean_delta_e(o, runs['colorthief'][1][0]) for o in orig):.2f} |",
              f"| ours vs CIELAB k-means, all pixels | {mean_delta_e(reference, mine[0][0]):.2f} |"]
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, default=colors.K, help=f"colours (default {colors.K})")
    parser.add_argument("--n", type=int, default=len(SOURCES), help=f"real photos (default {len(SOURCES)})")
    parser.add_argument("--batch", type=int, default=84, help="photos of the batch run (default 84)")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of ours and the original (default 3)")
    parser.add_argument("--seed", type=int, default=0, help="image and palette seed (default 0)")
    parser.add_argument("--threads", type=int, default=2, help="BLAS/OpenMP and torch threads, pinned (default 2)")
    parser.add_argument("--agreement-only", action="store_true",
                        help="only the real photos' dE to the reference, printed, not recorded (no timing)")
    args = parser.parse_args()
    if args.batch < 2 * colors.POOL_FROM:
        parser.error(f"--batch must be at least {2 * colors.POOL_FROM}: both halves must start the workers")
    threads = pin_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        made = photos(Path(tmp), args.n)
        print(f"{len(made)} REAL photos made (bench/_photos.py); measuring each", flush=True)
        if args.agreement_only:
            return agreement_only(made, args.k, args.seed)
        real = {}
        for path, what in tqdm(made, unit="photo"):
            real[path.name] = {"what": what, **per_photo(path, args.k, args.seed, args.repeat)}
        batch = batch_run(Path(tmp), args.batch, args.k, args.repeat)
        synthetic = Path(tmp) / "texture.jpg"
        photo_like(synthetic, args.seed)
        texture = synthetic_report(synthetic, args.k, args.seed, args.repeat)

    rows = list(real.values())
    total_ratio = sum(r["original"] for r in rows) / sum(r["ours"] for r in rows)
    median_ratio = statistics.median(r["original"] / r["ours"] for r in rows)
    d_e = [r["dE"] for r in rows]
    lines = [f"REAL: {len(rows)} photos of `bench/_photos.py` (Blue Marble places and scikit-image samples, "
             f"enlarged to {WIDTH}x{HEIGHT}, camera grain, JPEG quality 90), k={args.k}. Times are medians of "
             f"{args.repeat} runs from the file; dE is the mean CIEDE2000 of colours matched one to one.", "",
             "| photo | shows | MB | ours ms | original ms | original / ours | dE ours vs all-pixel CIELAB "
             "k-means | dE original vs it | dE of that k-means against itself, other seed | ours |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in real.items():
        lines.append(f"| {name} | {r['what']} | {r['mb']:.1f} | {1000 * r['ours']:.0f} | {1000 * r['original']:.0f} | "
                     f"{r['original'] / r['ours']:.1f} | {r['dE']:.2f} | {r['dE original']:.2f} | {r['floor']:.2f} | "
                     f"{hexes(r['palette'][0])} |")
    lines += ["", f"Real photos: ours is **{total_ratio:.1f}x** the original over all of them (median per photo "
              f"{median_ratio:.1f}x; ours {1000 * statistics.median(r['ours'] for r in rows):.0f} ms, the original "
              f"{1000 * statistics.median(r['original'] for r in rows):.0f} ms per photo); mean dE to the all-pixel "
              f"CIELAB k-means **{statistics.mean(d_e):.2f}** (median {statistics.median(d_e):.2f}); that k-means "
              f"differs from itself with another seed by {statistics.mean(r['floor'] for r in rows):.2f} on "
              f"average (photos with two near-equal optima); the original's palette lies "
              f"{statistics.mean(r['dE original'] for r in rows):.2f} from it.",
              f"Decoding the JPEG alone, at the 1/8 scale ours reads it, takes "
              f"{1000 * statistics.median(r['decode'] for r in rows):.1f} ms (median): no approach that decodes "
              f"the photo can be more than {sum(r['original'] for r in rows) / sum(r['decode'] for r in rows):.1f}x "
              f"the original over all of them.",
              f"ratio: {total_ratio:.1f}x on real photos (target >= 10x: {'met' if total_ratio >= 10 else 'NOT met'}); "
              f"mean dE {statistics.mean(d_e):.2f} (target <= 1: {'met' if statistics.mean(d_e) <= 1 else 'NOT met'})",
              "", f"A batch as a user runs it, each command in a fresh process: `python -m biomeseason colors "
              f"FOLDER --out colors.csv --workers 2` took (median of {args.repeat} runs) "
              f"{batch[0]:.1f} s on {args.batch // 2} photos and "
              f"{batch[1]:.1f} s on {args.batch} (distinct REAL photos of the same kind): {1000 * batch[2]:.1f} ms "
              f"per photo more, **{statistics.median(r['original'] for r in rows) / batch[2]:.1f}x** the original's "
              f"median per photo (target >= 10x: "
              f"{'met' if statistics.median(r['original'] for r in rows) / batch[2] >= 10 else 'NOT met'}).",
              "", *texture]
    report("colors", "Dominant colours of 12-megapixel photos", lines, threads)
    return 0


if __name__ == "__main__":
    sys.exit(main())
