"""Prediction of real 12-megapixel photos: where the time goes, and ours against the original approach.

    python bench/predict.py [--n 21] [--batch 84] [--batch-repeat 3] [--threads 2] [--workers 2]
                            [--catalogue 100000] [--model models/earth.pt]

``--batch`` distinct 4000 x 3000 JPEGs made from REAL imagery (``bench/_photos.py``: twelve
Blue Marble places, one per month, and nine scikit-image sample photos, enlarged, with a
camera's grain) are written once into a temporary folder; the model is the shipped Earth
model (64 px) unless ``--model`` names another. Measured in the same run:

1. The profile of one photo as ``predict`` handles it, stage by stage, median over the photos
   (read and SHA-256, which ``predict`` does on another thread beside the decode; decode at
   reduced JPEG scale, scene finder, EXIF, crop and the eval transform, the forward pass of the
   network's inference copy, the familiarity score, turning probabilities into a row; the torch
   stages on one thread, as ``predict`` runs a few images), and
   the whole ``predictor.predict(path)`` of a loaded model: one photo in ``predict.ipynb`` (over the
   first ``--n`` photos: each of the 21 sources once).
2. The baselines, one photo at a time in this process: the original approach's decode and
   resize alone (``Image.open(path).convert("RGB")`` and ``transforms.Resize``), and its
   whole prediction (decode, resize, centre crop, the same model).
3. A batch as a user runs it: ``python -m biomeseason predict FOLDER --out preds.csv``
   (``--workers`` decoding processes, rows streamed into the CSV) on one photo and on ``--batch``,
   each in a fresh process, ``--batch-repeat`` times in turns; the cost per photo beyond the
   first is (t_n - t_1) / (n - 1) of the median times. The original script (one at a time, rows
   written at the end) is timed the same way.
   Peak resident memory of the largest process is sampled with psutil.
4. A catalogue: ``--catalogue`` images (100,000; 0 skips it) through the same command into
   ``--out rows.parquet`` (CSV where pyarrow is missing): its time, images a second and peak memory.
   They are 1,000 distinct small JPEGs (96 x 72 crops of the same real imagery) under as many
   names as needed (hard links, so making them takes seconds): the figure is of the run's
   bookkeeping at that scale (listing, streaming rows, the Parquet row groups), not of decoding
   big photos, which item 3 measures.

Ratios are against the original decode-and-resize alone (target: >= 4x for a single photo and
in a batch). The decode stage alone gives the most any approach that decodes the JPEG could reach
for one photo. Writes ``bench/results/predict.md`` (newest run first).
"""
import argparse
import hashlib
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchvision import transforms

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import pin_threads, report  # noqa: E402
from _photos import PHOTO_SIZE, photos  # noqa: E402

from biomeseason.io import images  # noqa: E402
from biomeseason.io.workers import one_thread  # noqa: E402
from biomeseason.predict import scene  # noqa: E402
from biomeseason.predict.predictor import FEW, load_model  # noqa: E402
from biomeseason.predict.rows import prediction_of  # noqa: E402
from biomeseason.prepare.clean import exif_month_and_place  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DECODE = "decode (JPEG draft)"   # the stage no approach can skip: the ceiling of a one-photo ratio

# The original approach, run in its own process: every pixel decoded, then shrunk.
ORIGINAL = """
import csv, sys
from pathlib import Path
import torch
from PIL import Image
from torchvision import transforms
from biomeseason.predict.predictor import load_model
checkpoint, folder, out = sys.argv[1:4]
predictor = load_model(checkpoint)
size = predictor.image_size
transform = transforms.Compose([transforms.Resize(size), transforms.CenterCrop(size), transforms.ToTensor(),
                                transforms.Normalize(predictor.meta["mean"], predictor.meta["std"])])
rows = []
for path in sorted(Path(folder).glob("*.jpg")):
    x = transform(Image.open(path).convert("RGB")).unsqueeze(0)
    with torch.inference_mode():
        out_ = predictor.model(x)
    rows.append([str(path), int(out_["biome"].argmax()), int(out_["month"].argmax()) + 1])
with open(out, "w", newline="") as f:
    csv.writer(f).writerows(rows)
"""

# Runs a command and reports its time and the peak memory of its largest process (itself or a worker).
LAUNCHER = """
import subprocess, sys, time
sys.path.insert(0, sys.argv[1])
from _machine import Peak
start = time.perf_counter()
with Peak(include_self=False) as peak:
    code = subprocess.run(sys.argv[2:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
seconds = time.perf_counter() - start
print(code, seconds, peak.largest // 1024)
"""


def run(command: list[str]) -> tuple[float, float]:
    """(seconds, peak MB of the largest process) of a command in a fresh process tree."""
    out = subprocess.run([sys.executable, "-c", LAUNCHER, str(Path(__file__).resolve().parent), *command],
                         capture_output=True, text=True, check=True, cwd=ROOT)
    code, seconds, peak_kb = out.stdout.split()
    if code != "0":
        raise SystemExit(f"{command[:4]} failed with exit code {code}")
    return float(seconds), int(peak_kb) / 1024


def clock(fn, repeat: int = 3):
    """(best seconds of ``repeat`` calls, the last result): the file is in the page cache after the first."""
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def profile(predictor, path: Path) -> dict[str, float]:
    """Seconds of each stage of one photo, done as ``scene.prepare`` and ``Predictor`` do them."""
    size = max(predictor.image_size, scene.SCENE_SIZE)
    t = {}
    def read():
        data = path.read_bytes()
        hashlib.sha256(data).hexdigest()
        return data

    t["read and SHA-256 (beside the decode in predict)"], data = clock(read)
    t[DECODE], record_ = clock(lambda: images.read_image(data, min_size=size, reduce=True))
    t["scene finder"], (box, _) = clock(lambda: scene.find_scene(record_.image))
    t["EXIF (date, GPS)"], _ = clock(lambda: exif_month_and_place(record_.image))
    threads = torch.get_num_threads()
    torch.set_num_threads(1 if FEW > 1 else threads)   # as predict runs a few images (Predictor._batch_results)
    crop = np.array(record_.image.crop(box))
    t["crop and eval transform"], x = clock(lambda: predictor.transform(crop)[None])
    model = predictor._network()   # the copy predict runs (network.for_inference on a CPU)
    with torch.inference_mode():
        def forward():
            features = model.forward_features(x)
            model.forward_head(features)
            return features

        t["forward pass"], features = clock(forward)
        embedding = model.pool(features).flatten(1).float().numpy()
    if predictor.familiarity is not None:
        with one_thread("blas"):
            t["familiarity score"], _ = clock(lambda: predictor.familiarity.score(embedding, x.numpy()))
    prepared = scene.prepare(path, predictor.image_size)
    prepared.hemisphere = predictor.hemisphere
    probs, _ = predictor._forward(x)
    seasons = predictor.season_probabilities(probs["month"])
    t["probabilities to a row"], _ = clock(lambda: prediction_of(
        prepared, probs["biome"][0], probs["month"][0], seasons[0], False, 0.5, biomes=predictor.biomes,
        months=predictor.months, month_frame=predictor.month_frame, hemisphere=predictor.hemisphere,
        placed=bool(predictor.geo)).to_row())
    torch.set_num_threads(threads)
    return t


def catalogue_run(tmp: Path, args) -> tuple[int, float, float, float, str]:
    """(images, seconds, peak MB of the largest process, output MB, format) of ``predict`` on a folder of
    ``args.catalogue`` small JPEGs: 1,000 distinct crops of the real sources under as many names as asked."""
    from _photos import sources

    folder = tmp / "catalogue"
    rng = np.random.default_rng(0)
    real, distinct = sources(), []
    for i in range(min(1000, args.catalogue)):
        source = real[i % len(real)]
        y, x = rng.integers(0, source.shape[0] - 72), rng.integers(0, source.shape[1] - 96)
        path = folder / "distinct" / f"{i:04d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.ascontiguousarray(source[y:y + 72, x:x + 96])).save(path, quality=90)
        distinct.append(path)
    for i in range(len(distinct), args.catalogue):
        path = folder / f"{i // 1000:03d}" / f"{i:07d}.jpg"
        path.parent.mkdir(exist_ok=True)
        os.link(distinct[i % len(distinct)], path)
    fmt = "parquet" if importlib.util.find_spec("pyarrow") else "csv"
    out = tmp / f"rows.{fmt}"
    seconds, peak = run([sys.executable, "-m", "biomeseason", "predict", str(folder), "--model", str(args.model),
                         "--out", str(out), "--workers", str(args.workers), "--batch-size", str(args.batch_size),
                         "--device", "cpu"])
    return args.catalogue, seconds, peak, out.stat().st_size / 1e6, fmt


def original_decode_resize(path: Path, size: int):
    return transforms.Resize(size)(Image.open(path).convert("RGB"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=21, help="photos profiled one at a time (default: 21)")
    parser.add_argument("--batch", type=int, default=84, help="photos of the batch, all distinct (default: 84)")
    parser.add_argument("--threads", type=int, default=2, help="torch and BLAS threads, pinned (default: 2)")
    parser.add_argument("--batch-repeat", type=int, default=3,
                        help="runs of each batch command, taking turns; medians (default: 3)")
    parser.add_argument("--workers", type=int, default=2, help="decoding processes of ours (default: 2)")
    parser.add_argument("--batch-size", type=int, default=32, help="batch size of ours (default: 32)")
    parser.add_argument("--catalogue", type=int, default=100_000,
                        help="images of the catalogue run, 0 to skip it (default: 100000)")
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "earth.pt",
                        help="checkpoint (default: the shipped models/earth.pt)")
    args = parser.parse_args()
    if args.batch < 2 or args.n < 1 or args.batch_repeat < 1:
        parser.error("--batch must be at least 2 (its figure is per photo beyond the first), --n and "
                     "--batch-repeat at least 1")
    threads = pin_threads(args.threads)
    predictor = load_model(args.model)
    size = predictor.image_size

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        folder, one = tmp / "photos", tmp / "one"
        folder.mkdir()
        one.mkdir()
        start = time.perf_counter()
        made = photos(folder, max(args.n, args.batch))
        (one / made[0][0].name).write_bytes(made[0][0].read_bytes())
        mb = [p.stat().st_size / 1e6 for p, _ in made]
        head = (f"{len(made)} REAL photos (`bench/_photos.py`: Blue Marble places and scikit-image samples, "
                f"{PHOTO_SIZE[0]}x{PHOTO_SIZE[1]} JPEG, {min(mb):.1f}-{max(mb):.1f} MB, made in "
                f"{time.perf_counter() - start:.0f} s); model `{args.model.name}` ({predictor.meta['arch']}, "
                f"{size} px)")
        print(head, flush=True)

        # 1 and 2: one photo at a time, in this process, the photos in the page cache.
        stages, single, decode_resize, original_whole = [], [], [], []
        original_tf = transforms.Compose([transforms.Resize(size), transforms.CenterCrop(size), transforms.ToTensor(),
                                          transforms.Normalize(predictor.meta["mean"], predictor.meta["std"])])
        for path, _ in made[:args.n]:
            stages.append(profile(predictor, path))
            single.append(clock(lambda p=path: predictor.predict(p))[0])
            decode_resize.append(clock(lambda p=path: original_decode_resize(p, size))[0])
            with torch.inference_mode():
                original_whole.append(clock(lambda p=path: predictor.model(original_tf(
                    Image.open(p).convert("RGB")).unsqueeze(0)))[0])

        # 3: batches, each command in a fresh process.
        def ours(src: Path, out: str):
            return [sys.executable, "-m", "biomeseason", "predict", str(src), "--model", str(args.model),
                    "--out", str(tmp / out), "--workers", str(args.workers), "--batch-size", str(args.batch_size),
                    "--device", "cpu"]

        def original(src: Path, out: str):
            return [sys.executable, "-c", ORIGINAL, str(args.model), str(src), str(tmp / out)]

        # Each size and command takes turns, --batch-repeat times; medians: a single pair's difference
        # varied by several ms a photo with the start-up time.
        runs = {name: ([], []) for name in ("ours (streaming)", "original (one at a time)")}
        for i in range(args.batch_repeat):
            for name, make in zip(runs, (ours, original)):
                for times, source in zip(runs[name], (one, folder)):
                    times.append(run(make(source, f"{name[:4]}-{source.name}-{i}.csv")))
        batch = {}
        for name, (singles, alls) in runs.items():
            t1, tn = (statistics.median(s for s, _ in r) for r in (singles, alls))
            batch[name] = (t1, tn, (tn - t1) / (len(made) - 1), max(m for _, m in alls))

        # 4: a catalogue.
        catalogue = catalogue_run(tmp, args) if args.catalogue else None

    ms = lambda values: 1000 * statistics.median(values)  # noqa: E731
    base = ms(decode_resize)
    lines = [head, "", f"### Where one photo's time goes (ours, median over {args.n} photos, ms)", "",
             "| stage | ms | share |", "|---|---|---|"]
    staged = {k: ms([s[k] for s in stages]) for k in stages[0]}
    for k, v in staged.items():
        lines.append(f"| {k} | {v:.1f} | {v / sum(staged.values()):.0%} |")
    lines += [f"| sum of the stages | {sum(staged.values()):.1f} | |",
              f"| `predictor.predict(path)`, whole (one photo in predict.ipynb) | {ms(single):.1f} | |", "",
              f"### One photo at a time (median ms per photo, {args.n} photos)", "",
              "| approach | ms | original decode-and-resize / this |", "|---|---|---|",
              f"| original: decode and resize alone | {base:.1f} | 1.0 |",
              f"| original: whole prediction (decode, resize, crop, model) | {ms(original_whole):.1f} | "
              f"{base / ms(original_whole):.2f} |",
              f"| ours: `predictor.predict(path)` | {ms(single):.1f} | **{base / ms(single):.1f}x** |",
              f"| the floor of any approach that decodes the JPEG: the decode alone (stage above) | "
              f"{staged[DECODE]:.1f} | {base / staged[DECODE]:.1f}x |", "",
              f"### A batch of {len(made)} photos, each command in a fresh process "
              f"(median of {args.batch_repeat} runs)", "",
              "| command | s, 1 photo | s, all | ms per photo beyond the first | original decode-and-resize / this "
              "| peak MB (largest process) |", "|---|---|---|---|---|---|"]
    for name, (t1, tn, per, peak) in batch.items():
        lines.append(f"| {name} | {t1:.1f} | {tn:.1f} | {1000 * per:.1f} | **{base / (1000 * per):.1f}x** | "
                     f"{peak:.0f} |")
    ours_per = batch["ours (streaming)"][2]
    if catalogue:
        n, seconds, peak, out_mb, fmt = catalogue
        lines += ["", f"### A catalogue of {n:,} images, one command in a fresh process", "",
                  "| command | s | images a second | peak MB (largest process) | output |", "|---|---|---|---|---|",
                  f"| `predict FOLDER --out rows.{fmt} --workers {args.workers}` | {seconds:.0f} | {n / seconds:.0f} | "
                  f"{peak:.0f} | {out_mb:.1f} MB {fmt} |"]
    lines += ["", f"ratio: ours is {base / ms(single):.1f}x the original decode-and-resize alone for one photo "
              f"and {base / (1000 * ours_per):.1f}x in a batch ({args.workers} workers); target >= 4x."]
    report("predict", "Prediction of real 12-megapixel photos", lines, threads)
    return 0  # a report, not a gate: timings on a shared machine vary


if __name__ == "__main__":
    sys.exit(main())
