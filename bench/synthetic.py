"""Speed (and, on request, learnability) of the synthetic scene generator.

    python bench/synthetic.py [--size 256] [--n 336] [--probe 20]

Speed: images/s on one process for rendering alone (each look: nadir,
orbital, mixed), JPEG encoding and writing alone, and both together (as
``write_scenes`` does, default look), by wall clock and by CPU time of this
process. The machine may be shared, so the CPU figure is the one that
measures one core. The baseline, measured in the same run, is JPEG
encoding and writing alone (the floor of any generator); each line prints
its cost as a multiple of it. Target: at least 50 images/s at 256 x 256,
render + JPEG.

--probe N: a cheap learnability check. N scenes per (biome, month) are
rendered at 256 px and shrunk to 96 px (as training sees them); simple
per-image features (CIELAB mean/std/percentiles, white and dark shares,
gradient energy, excess green) feed a gradient-boosting classifier with a
30% held-out split. Prints biome accuracy and month accuracy, exact and
within +-1 month (circular), overall and per biome. A CNN should do better
than these hand-made features.

Torch and BLAS/OpenMP threads are pinned (``--threads``, printed); the report
goes to bench/results/synthetic.md, newest run first.
"""
import argparse
import io
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from _machine import pin_threads, record  # noqa: E402  (bench/ is on the path: the script's folder)
from PIL import Image  # noqa: E402

from biomeseason.synthetic import generate as synthetic  # noqa: E402

TARGET = 50.0  # images/s at 256 px, one core, render + JPEG


class Timer:
    """Wall-clock and process CPU seconds of a block."""

    def __enter__(self):
        self._wall, self._cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self._wall
        self.cpu = time.process_time() - self._cpu


def speed(size: int, n: int) -> list[str]:
    pairs = [(b, m) for b in synthetic.FILE_PREFIX for m in range(1, 13)]
    rows = []
    for look in synthetic.looks.LOOKS:
        synthetic.render_scene(*pairs[0], 0, size, look)          # warm caches
        with Timer() as t:
            arrays = [synthetic.render_scene(*pairs[i % len(pairs)], i, size, look) for i in range(n)]
        rows.append((f"render only, {look}", t, n))
    with tempfile.TemporaryDirectory() as tmp, Timer() as jpeg:
        for i, a in enumerate(arrays):
            buf = io.BytesIO()
            Image.fromarray(a).save(buf, format="JPEG", quality=92)
            Path(tmp, f"{i}.jpg").write_bytes(buf.getvalue())
    per_class = max(1, n // len(pairs))
    with tempfile.TemporaryDirectory() as tmp, Timer() as both:
        paths = synthetic.write_scenes(Path(tmp) / "out", per_class=per_class, size=size, progress=False)
    rows += [("JPEG encode + write (baseline)", jpeg, n), ("render + JPEG (write_scenes)", both, len(paths))]

    base = jpeg.cpu / n
    lines = [f"size {size}, one process                wall clock   CPU time   CPU per image / baseline"]
    lines += [f"{label:31s} images/s: {k / t.wall:8.1f} {k / t.cpu:10.1f} {t.cpu / k / base:10.1f}x"
              for label, t, k in rows]
    if size == 256:
        ok = len(paths) / both.cpu >= TARGET
        lines.append(f"target {TARGET:.0f} images/s per core (render + JPEG, CPU time): {'met' if ok else 'NOT met'}")
    return lines


def features(img: np.ndarray) -> list:
    """Colour and texture statistics a classifier can use without learning filters."""
    from skimage.color import rgb2lab

    lab = rgb2lab(img)
    out = []
    for ch in np.moveaxis(lab, -1, 0):
        out += [ch.mean(), ch.std(), *np.percentile(ch, [5, 25, 50, 75, 95])]
    L, chroma = lab[..., 0], np.hypot(lab[..., 1], lab[..., 2])
    gy, gx = np.gradient(L)
    grad = np.hypot(gx, gy)
    x = img.astype(float)
    exg = 2 * x[..., 1] - x[..., 0] - x[..., 2]
    out += [((L > 75) & (chroma < 12)).mean(), ((L > 60) & (chroma < 12)).mean(), (L < 25).mean(),
            chroma.mean(), grad.mean(), np.percentile(grad, 90), exg.mean(), np.percentile(exg, 90),
            (x[..., 0] - x[..., 1]).mean(), (x[..., 2] - x[..., 0]).mean()]
    return out


def probe(per_class: int, seed: int = 12345) -> list[str]:
    from sklearn.ensemble import HistGradientBoostingClassifier

    biomes = list(synthetic.FILE_PREFIX)
    X, yb, ym = [], [], []
    with Timer() as t:
        for bi, b in enumerate(biomes):
            for m in range(1, 13):
                for i in range(per_class):
                    img = synthetic.render_scene(b, m, np.random.SeedSequence([seed, bi, m, i]), 256)
                    X.append(features(np.asarray(Image.fromarray(img).resize((96, 96), Image.BILINEAR))))
                    yb.append(bi)
                    ym.append(m - 1)
    X, yb, ym = np.asarray(X), np.asarray(yb), np.asarray(ym)
    test = np.random.default_rng(0).random(len(X)) < 0.3
    model = lambda: HistGradientBoostingClassifier(max_iter=300, learning_rate=0.08, random_state=0)  # noqa: E731
    biome_pred = model().fit(X[~test], yb[~test]).predict(X[test])
    # Month: one model per biome, as a network conditions on what it sees.
    month_pred = np.zeros(test.sum(), int)
    for bi in range(len(biomes)):
        fit, use = ~test & (yb == bi), yb[test] == bi
        month_pred[use] = model().fit(X[fit], ym[fit]).predict(X[test][use])
    d = np.abs(month_pred - ym[test])
    d = np.minimum(d, 12 - d)
    lines = [f"probe: {len(X)} scenes ({per_class} per biome-month, 96 px) in {t.wall:.0f} s; {test.sum()} held out",
             f"biome accuracy {np.mean(biome_pred == yb[test]):.3f}; "
             f"month exact {np.mean(d == 0):.3f}, within +-1 {np.mean(d <= 1):.3f}"]
    for bi, b in enumerate(biomes):
        s = yb[test] == bi
        lines.append(f"  {b:28s} biome {np.mean(biome_pred[s] == bi):.2f}  month exact {np.mean(d[s] == 0):.2f}"
                     f"  within +-1 {np.mean(d[s] <= 1):.2f}")
    return lines


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=256, help="image side (default: 256)")
    p.add_argument("--n", type=int, default=336, help="images to time (default: 336 = 4 per biome-month)")
    p.add_argument("--probe", type=int, default=0, metavar="N",
                   help="also run the learnability probe with N scenes per biome-month (default: off)")
    p.add_argument("--threads", type=int, default=2, help="torch and BLAS/OpenMP threads, pinned (default: 2)")
    args = p.parse_args()
    threads = pin_threads(args.threads)
    lines = speed(args.size, args.n)
    print("\n".join(lines), flush=True)
    if args.probe:
        learnt = probe(args.probe)
        print("\n".join(learnt), flush=True)
        lines += ["", *learnt]
    record("synthetic", "Synthetic scene generator: speed (and, with --probe, learnability)",
           f"{args.n} images of {args.size} px; the baseline is JPEG encoding and writing alone, measured in this "
           "run\n\n```\n" + "\n".join(lines) + "\n```", threads)
    return 0


if __name__ == "__main__":
    sys.exit(main())
