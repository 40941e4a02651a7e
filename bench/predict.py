"""Batch prediction of full-size photos: the streaming command against the original approach.

    python bench/predict.py [--n 1000] [--workers 2] [--image-size 96]

N 4000 x 3000 (12-megapixel) JPEGs are written once into a temporary folder
(8 distinct photo-like images, copied), and a resnet18 checkpoint with random
weights is made. Each approach runs in a fresh process, and the figures are
its wall time (model load included), images/s and peak resident memory
(of the largest process, main or worker, sampled with psutil):

- ours: ``python -m biomeseason predict FOLDER --out preds.csv`` as a user runs
  it: worker processes decode at reduced JPEG scale and find the scene, the
  model runs in batches, rows are streamed into the CSV;
- original: one image at a time, full decode, resize of the short side, centre
  crop, the same model, rows collected and written at the end.

Prints both and the ratio. With ``--n`` small the figures are noisier; on a
2-core machine the original takes about half a second per photo.
"""
import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from biomeseason.checkpoint import save_checkpoint  # noqa: E402
from biomeseason.model import BiomeSeasonNet  # noqa: E402
from biomeseason.presets import IMAGENET_MEAN, IMAGENET_STD  # noqa: E402

PHOTO_SIZE = (4000, 3000)  # 12 megapixels
DISTINCT = 8
BIOMES = ["boreal_forest", "temperate_deciduous_forest", "desert", "tropical_rainforest",
          "tropical_grassland", "tundra", "temperate_grassland"]


def make_photo(path: Path, size: tuple[int, int], seed: int = 0) -> Path:
    """A photo-like JPEG: smooth colour regions plus sensor-like grain (pure noise would
    compress and decode unlike a photo; a flat image would decode unrealistically fast)."""
    rng = np.random.default_rng(seed)
    w, h = size
    coarse = Image.fromarray(rng.integers(0, 256, (h // 100 + 2, w // 100 + 2, 3), dtype=np.uint8))
    smooth = np.asarray(coarse.resize((w, h), Image.Resampling.BICUBIC), dtype=np.int16)
    grain = rng.normal(0, 6, (h, w, 1)).astype(np.int16)
    Image.fromarray(np.clip(smooth + grain, 0, 255).astype(np.uint8)).save(path, quality=90)
    return path


def make_checkpoint(path: Path, image_size: int) -> Path:
    torch.manual_seed(0)
    model = BiomeSeasonNet("resnet18", num_biomes=len(BIOMES))
    meta = {"arch": "resnet18", "biomes": BIOMES, "months": list(range(1, 13)), "hemisphere": "north",
            "image_size": image_size, "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)}
    return save_checkpoint(path, model.state_dict(), meta)


# The original approach, run in its own process: every pixel decoded, then shrunk.
ORIGINAL = """
import csv, sys
from pathlib import Path
import torch
from PIL import Image
from torchvision import transforms
from biomeseason.predict import load_model
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


def run(command: list[str], cwd: Path) -> tuple[float, float]:
    """(seconds, peak MB of the largest process) of a command in a fresh process tree."""
    out = subprocess.run([sys.executable, "-c", LAUNCHER, str(Path(__file__).resolve().parent), *command],
                         capture_output=True, text=True,
                         check=True, cwd=cwd)
    code, seconds, peak_kb = out.stdout.split()
    if code != "0":
        raise SystemExit(f"{command[:4]} failed with exit code {code}")
    return float(seconds), int(peak_kb) / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="photos (default: 1000)")
    parser.add_argument("--workers", type=int, default=2, help="decoding processes of ours (default: 2)")
    parser.add_argument("--image-size", type=int, default=96, help="model input, px (default: 96, the demo's)")
    parser.add_argument("--batch-size", type=int, default=32, help="batch size of ours (default: 32)")
    args = parser.parse_args()
    root = Path(__file__).resolve().parents[1]

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        folder = tmp / "photos"
        folder.mkdir()
        start = time.perf_counter()
        originals = [make_photo(tmp / f"src_{i}.jpg", PHOTO_SIZE, seed=i) for i in range(min(DISTINCT, args.n))]
        for i in range(args.n):
            shutil.copyfile(originals[i % len(originals)], folder / f"photo_{i:05d}.jpg")
        checkpoint = make_checkpoint(tmp / "model.pt", args.image_size)
        mb = sum(p.stat().st_size for p in folder.iterdir()) / 1e6
        print(f"{args.n} JPEGs of {PHOTO_SIZE[0]}x{PHOTO_SIZE[1]} ({mb:.0f} MB) written in "
              f"{time.perf_counter() - start:.0f} s; resnet18 at {args.image_size} px, "
              f"{torch.get_num_threads()} threads")

        ours = [sys.executable, "-m", "biomeseason", "predict", str(folder), "--model", str(checkpoint),
                "--out", str(tmp / "ours.csv"), "--workers", str(args.workers),
                "--batch-size", str(args.batch_size), "--device", "cpu"]
        original = [sys.executable, "-c", ORIGINAL, str(checkpoint), str(folder), str(tmp / "original.csv")]
        results = {"ours (streaming)": run(ours, root), "original (one at a time)": run(original, root)}

    print(f"{'approach':<28}{'seconds':>9}{'images/s':>10}{'peak MB':>9}")
    for name, (seconds, peak) in results.items():
        print(f"{name:<28}{seconds:>9.1f}{args.n / seconds:>10.1f}{peak:>9.0f}")
    (t_ours, m_ours), (t_orig, m_orig) = results.values()
    print(f"ratio: ours is {t_orig / t_ours:.1f}x faster; peak memory {m_ours:.0f} MB against {m_orig:.0f} MB "
          f"(largest single process)")
    return 0  # a report, not a gate: timings on a shared machine vary


if __name__ == "__main__":
    sys.exit(main())
