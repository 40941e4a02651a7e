"""Training throughput: our in-memory pipeline vs decoding the originals every step.

    python bench/train.py [--images 32] [--steps 6] [--megapixels 12]

Both loops train the same ResNet-18 at the same input size and batch size.
The baseline reads the original photos from disk and decodes them in full at
every step (as the original notebook's ImageFolder loader did); ours decodes
each image once at preprocessing time and trains from uint8 tensors in memory.
Prints images/s of each, the ratio, and the share of step time spent waiting
for data. Target: ratio >= 3. Torch and BLAS threads are pinned (``--threads``,
printed); the report goes to bench/results/train.md, newest run first.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _machine import pin_threads, record  # noqa: E402  (bench/ is on the path: the script's folder)

from biomeseason.io.images import open_rgb  # noqa: E402
from biomeseason.labels import MONTH_ABBR  # noqa: E402
from biomeseason.model.network import BiomeSeasonNet  # noqa: E402
from biomeseason.model.presets import IMAGENET_MEAN, IMAGENET_STD  # noqa: E402
from biomeseason.prepare.preprocess import preprocess  # noqa: E402
from biomeseason.synthetic.generate import FILE_PREFIX, render_scene  # noqa: E402
from biomeseason.training.dataset import read_class_lists, read_manifest  # noqa: E402
from biomeseason.training.loop import TrainConfig, _datasets, masked_losses  # noqa: E402


def write_originals(folder: Path, n: int, megapixels: float) -> None:
    """Large photo-like JPEGs: a synthetic scene upscaled, plus grain (so JPEG has work to do)."""
    width = int((megapixels * 1e6 * 4 / 3) ** 0.5)
    height = width * 3 // 4
    rng = np.random.default_rng(0)
    biomes = list(FILE_PREFIX)
    for i in range(n):
        biome, month = biomes[i % len(biomes)], i % 12 + 1
        small = Image.fromarray(render_scene(biome, month, i, 256)).resize((width, height), Image.BICUBIC)
        arr = np.asarray(small).astype(np.int16) + rng.integers(-6, 7, (height, width, 1), dtype=np.int16)
        name = f"{FILE_PREFIX[biome]}_{MONTH_ABBR[month - 1].title()}_{i:04d}.jpg"
        Image.fromarray(arr.clip(0, 255).astype(np.uint8)).save(folder / name, quality=90)


class DecodeEveryStep(Dataset):
    """The original approach: open and fully decode the original file each time."""

    def __init__(self, paths, size):
        self.paths = paths
        self.tf = v2.Compose([v2.ToImage(), v2.Resize(size, antialias=True), v2.RandomCrop(size),
                              v2.RandomHorizontalFlip(), v2.ToDtype(torch.float32, scale=True),
                              v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)])

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        img = open_rgb(self.paths[i])  # the whole file, decoded at full size
        return self.tf(img), torch.tensor(i % 7), torch.tensor(i % 12)


def run_steps(loader, model, optimizer, steps: int) -> tuple[float, float, int]:
    """Train ``steps`` batches (after one warm-up batch); returns (seconds, data wait, images)."""
    model.train()
    it = iter(loader)
    done = seen = 0
    total = wait = 0.0
    while done < steps + 1:
        t0 = time.perf_counter()
        try:
            images, biome, month = next(it)
        except StopIteration:
            it = iter(loader)
            continue
        t1 = time.perf_counter()
        out = model(images)
        loss_b, loss_m = masked_losses(out, biome, month, 1.0)
        optimizer.zero_grad()
        (loss_b + loss_m).backward()
        optimizer.step()
        t2 = time.perf_counter()
        if done > 0:  # the first batch warms up allocators and caches
            total += t2 - t0
            wait += t1 - t0
            seen += images.shape[0]
        done += 1
    return total, wait, seen


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=32, help="originals to generate (default 32)")
    p.add_argument("--steps", type=int, default=6, help="timed batches per loop (default 6)")
    p.add_argument("--batch-size", type=int, default=16, help="(default 16)")
    p.add_argument("--image-size", type=int, default=96, help="(default 96)")
    p.add_argument("--megapixels", type=float, default=12.0, help="size of each original (default 12)")
    p.add_argument("--threads", type=int, default=2, help="torch and BLAS threads, pinned (default 2)")
    args = p.parse_args()
    threads = pin_threads(args.threads)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        raw, processed = Path(tmp) / "raw", Path(tmp) / "processed"
        raw.mkdir()
        print(f"writing {args.images} originals of {args.megapixels:g} MP ...", flush=True)
        write_originals(raw, args.images, args.megapixels)

        def fresh():
            model = BiomeSeasonNet("resnet18", 7)
            return model, torch.optim.AdamW(model.parameters(), lr=1e-3)

        base_loader = DataLoader(DecodeEveryStep(sorted(raw.glob("*.jpg")), args.image_size),
                                 batch_size=args.batch_size, shuffle=True)
        model, opt = fresh()
        b_time, b_wait, b_seen = run_steps(base_loader, model, opt, args.steps)

        t = time.perf_counter()
        preprocess(raw, processed, size=256, seed=0, progress=False)
        prep = time.perf_counter() - t
        cfg = TrainConfig(data=str(processed), image_size=args.image_size, progress=False)
        ds = _datasets(cfg, read_class_lists(processed), read_manifest(processed), False)["train"]
        ours_loader = DataLoader(ds, batch_size=args.batch_size, shuffle=True)
        model, opt = fresh()
        o_time, o_wait, o_seen = run_steps(ours_loader, model, opt, args.steps)

    base, ours = b_seen / b_time, o_seen / o_time
    lines = [f"ResNet-18, {args.image_size} px, batch {args.batch_size}, {torch.get_num_threads()} threads",
             f"{'loop':<34}{'images/s':>10}{'waiting for data':>18}",
             f"{'decode originals every step':<34}{base:>10.1f}{b_wait / b_time:>17.0%}",
             f"{'ours (decoded once, in memory)':<34}{ours:>10.1f}{o_wait / o_time:>17.0%}",
             f"ratio ours/baseline: {ours / base:.1f}x (target >= 3x)",
             f"one-off preprocessing of the {args.images} originals: {prep:.1f} s"]
    print("\n" + "\n".join(lines))
    record("train", "Training throughput: decoded once, in memory, against decoding the originals every step",
           f"{args.images} originals of {args.megapixels:g} MP, {args.steps} timed batches per loop; the baseline "
           "is measured in this run\n\n```\n" + "\n".join(lines) + "\n```", threads)


if __name__ == "__main__":
    main()
