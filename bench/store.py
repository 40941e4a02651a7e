"""Training memory with the memory-mapped store vs the in-memory cache, at scale.

    python bench/store.py                 # 100,000 images at 96 px
    python bench/store.py --n 5000        # a quick run

Builds a processed folder of N distinct 112x96 JPEG scenes (manifest and
images, as preprocessing writes them), writes the store at 96 px, then:

* ours: one full pass over the training split through a DataLoader with two
  worker processes reading the store (train transform at 96 px), followed by
  ``--steps`` training steps of ResNet-18 on batches from it;
* baseline: the in-memory cache that training used before the store
  (``ProcessedImages(cache=True)``: every image decoded into one process).

Prints the peak resident memory of the largest process and of all processes
together for each, and the ratio. Target: every process under 2 GB at 100,000
images. Resident memory is sampled every 50 ms with psutil. Torch and BLAS
threads are pinned (``--threads``); the report goes to bench/results/store.md,
newest run first.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _machine import Peak, pin_threads, record  # noqa: E402  (bench/ is on the path: the script's folder)

from biomeseason.io import files  # noqa: E402
from biomeseason.model.network import BiomeSeasonNet  # noqa: E402
from biomeseason.model.presets import eval_transform, train_transform  # noqa: E402
from biomeseason.prepare import store  # noqa: E402
from biomeseason.training.dataset import ClassLists, ProcessedImages, encode_targets  # noqa: E402

BIOMES = ["boreal_forest", "desert", "tundra"]


def make_processed(folder: Path, n: int) -> pd.DataFrame:
    """N distinct small scenes as JPEGs plus a manifest, the shape preprocessing gives."""
    from PIL import Image

    rng = np.random.default_rng(0)
    (folder / "images").mkdir(parents=True)
    base = rng.integers(0, 256, (64, 96, 112, 3), dtype=np.uint8)  # 64 textures, varied per image
    rows = []
    for i in range(n):
        arr = np.roll(base[i % 64], shift=(i // 64) % 96, axis=0) // 2 + (i * 7) % 128
        rel = f"images/{i:07d}.jpg"
        Image.fromarray(arr.astype(np.uint8)).save(folder / rel, quality=85)
        rows.append({"path": rel, "source": f"{i:07d}.png", "sha256": f"{i:064x}",
                     "biome": BIOMES[i % 3], "month": i % 12 + 1, "season": "", "split": "train",
                     "width": 112, "height": 96})
    df = pd.DataFrame(rows)
    df["month"] = df["month"].astype("Int64")
    files.write_csv(folder / "manifest.csv", df)
    files.write_json(folder / "labels.json", {"biomes": BIOMES, "months": list(range(1, 13))})
    return df


class FromStore(Dataset):
    def __init__(self, processed, df, classes, size):
        self.images = store.open_split(processed, "train", short_side=size)
        self.biome, self.month = encode_targets(df, classes)
        self.tf = train_transform(size)

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return self.tf(self.images[i]), self.biome[i], self.month[i]


def train_steps(loader, steps: int) -> int:
    model = BiomeSeasonNet("resnet18", len(BIOMES))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    seen = 0
    for step, (x, b, _) in enumerate(loader):
        if step >= steps:
            break
        loss = torch.nn.functional.cross_entropy(model(x)["biome"], b)
        opt.zero_grad()
        loss.backward()
        opt.step()
        seen += len(x)
    return seen


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="images (default: 100000)")
    parser.add_argument("--size", type=int, default=96, help="training input size (default: 96)")
    parser.add_argument("--steps", type=int, default=20, help="training steps after the pass (default: 20)")
    parser.add_argument("--threads", type=int, default=2, help="torch and BLAS threads, pinned (default: 2)")
    args = parser.parse_args()
    threads = pin_threads(args.threads)
    lines = []

    def show(line: str) -> None:
        print(line, flush=True)
        lines.append(line)

    classes = ClassLists(BIOMES, list(range(1, 13)))
    with tempfile.TemporaryDirectory() as tmp:
        processed = Path(tmp) / "processed"
        t = time.perf_counter()
        df = make_processed(processed, args.n)
        show(f"{args.n:,} JPEGs and manifest written in {time.perf_counter() - t:.0f} s")
        t = time.perf_counter()
        info = store.write_store(processed, short_side=args.size, progress=False)
        gb = info["splits"]["train"]["bytes"] / 1e9
        show(f"store written in {time.perf_counter() - t:.0f} s: {gb:.2f} GB on disk")

        with Peak() as ours:
            t = time.perf_counter()
            loader = DataLoader(FromStore(processed, df, classes, args.size), batch_size=256,
                                num_workers=2, shuffle=True)
            for _ in loader:
                pass
            read_s = time.perf_counter() - t
            seen = train_steps(DataLoader(FromStore(processed, df, classes, args.size), batch_size=64,
                                          num_workers=2, shuffle=True), args.steps)
        show(f"ours: a full pass in {read_s:.0f} s ({args.n / read_s:,.0f} img/s) and {seen} images trained")

        with Peak() as base:
            t = time.perf_counter()
            ds = ProcessedImages(processed, df, classes, args.size, eval_transform(args.size), cache=True,
                                 workers=2)
            seen = train_steps(DataLoader(ds, batch_size=64, shuffle=True), args.steps)
        show(f"baseline: cache filled and {seen} images trained in {time.perf_counter() - t:.0f} s")

    show("")
    show(f"{'':<28}{'largest process':>18}{'all processes':>16}")
    for name, peak in (("baseline (in-memory cache)", base), ("ours (memory-mapped store)", ours)):
        show(f"{name:<28}{peak.largest / 1e9:>15.2f} GB{peak.total / 1e9:>13.2f} GB")
    show(f"ratio (baseline / ours, largest process): {base.largest / max(ours.largest, 1):.2f}x; "
          f"target: every process under 2 GB at 100,000 images: "
          f"{'met' if ours.largest < 2e9 else 'missed'} at {args.n:,}")
    record("store", "Training memory: memory-mapped store against the in-memory cache",
           f"{args.n:,} images at {args.size} px, {args.steps} training steps of ResNet-18 after the pass\n\n"
           "```\n" + "\n".join(lines) + "\n```", threads)
    return 0


if __name__ == "__main__":
    sys.exit(main())
