"""Reading ``data/processed/`` for training: manifest, class lists, images in memory.

Images are decoded once, resized so the short side is the training image size
(the same resize the eval transform uses), and kept as uint8 tensors; a
training step never decodes a JPEG. If they would not fit in the memory budget
they are read from processed/ on demand instead (still small files).

Targets are class indices, with -1 for a missing label: the loss masks that
head for that image rather than dropping the image.
"""
from __future__ import annotations

import copy
import functools
import json
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image
from sklearn.model_selection import StratifiedGroupKFold
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from ..io.files import UsageError
from ..io.images import ImageError, read_image
from ..io.workers import end_with
from ..labels import north_month
from ..model.presets import resize_short_side
from ..prepare import store
from ..prepare.manifest import SPLITS, manifest_sha256, read_manifest  # noqa: F401  (manifest_sha256: re-exported)

MISSING = -1


@dataclass(frozen=True)
class ClassLists:
    biomes: list[str]
    months: list[int]
    hemisphere: str = "north"


def read_class_lists(processed: str | Path) -> ClassLists:
    path = Path(processed) / "labels.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run `python dataset_preproc.py --out {processed}` first")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return ClassLists(list(raw["biomes"]), [int(m) for m in raw.get("months", range(1, 13))],
                          raw.get("hemisphere", "north"))
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{path} is not a class list we can read ({type(e).__name__}: {e}); "
                         "re-run the preprocessing") from None


def carve_validation(df: pd.DataFrame, share: float, seed: int) -> tuple[pd.DataFrame, int]:
    """Hold out about ``share`` of the training rows as ``val`` when there is no val split.

    Whole groups move together (the ``group`` column: near duplicates, one
    place in many months), stratified by biome so rare classes are represented.
    Returns the new table and the number of rows moved (0 if val already exists
    or there are too few groups to split).
    """
    train = df.index[df["split"] == "train"]
    if (df["split"] == "val").any() or len(train) < 2:
        return df, 0
    rows = df.loc[train]
    groups = rows["group"].astype(str) if "group" in rows else pd.Series(rows.index.astype(str), rows.index)
    n_folds = max(2, round(1 / share))
    if groups.nunique() < n_folds:
        return df, 0
    labels = rows["biome"].astype(str).to_numpy()
    folds = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    with warnings.catch_warnings():  # classes smaller than the fold count are expected in small data
        warnings.simplefilter("ignore", UserWarning)
        _, held = next(folds.split(np.zeros(len(rows)), labels, groups.to_numpy()))
    df = df.copy()
    df.loc[rows.index[held], "split"] = "val"
    return df, len(held)


def encode_targets(df: pd.DataFrame, classes: ClassLists) -> tuple[torch.Tensor, torch.Tensor]:
    """(biome index, month index) per row; -1 where the label is missing.

    The month target is the northern-equivalent month (``labels.north_month``):
    an image from south of the equator (the manifest's ``hemisphere``) is
    labelled six months on, so one look has one label in either hemisphere."""
    biome_index = {b: i for i, b in enumerate(classes.biomes)}
    month_index = {m: i for i, m in enumerate(classes.months)}
    unknown = sorted(set(df["biome"].dropna()) - set(biome_index) - {""})
    if unknown:
        raise ValueError(f"manifest has biomes not in labels.json: {unknown}")
    biome = [biome_index.get(b, MISSING) if isinstance(b, str) else MISSING for b in df["biome"]]
    hemispheres = df["hemisphere"] if "hemisphere" in df else pd.Series("north", index=df.index)
    month = [MISSING if pd.isna(m) else month_index[north_month(int(m), h or "north")]
             for m, h in zip(df["month"], hemispheres)]
    return torch.tensor(biome, dtype=torch.long), torch.tensor(month, dtype=torch.long)


def _load_resized(path: Path, short_side: int) -> torch.Tensor:
    try:
        image = read_image(path, min_size=short_side).image  # JPEG: decoded at a reduced scale
    except ImageError as e:
        raise UsageError(f"processed image {e.source} cannot be read ({e.reason}); "
                         "run the preprocessing again") from None
    tensor = v2.functional.pil_to_tensor(image)  # (3, H, W) uint8
    return resize_short_side(short_side)(tensor)


class ProcessedImages(Dataset):
    """The rows of one split as (image tensor, biome target, month target).

    Images come from the memory-mapped store (``store.py``) when processed/
    holds a current one at least ``short_side`` large: nothing is decoded and
    worker processes share the pages. Otherwise ``cache=True`` decodes every
    image once into memory (threads: PIL releases the GIL while decoding) and
    ``cache=False`` reads each from disk when asked. ``found``: what
    ``store.locate`` returned, so the splits of one run look it up once.
    """

    def __init__(self, processed: str | Path, df: pd.DataFrame, classes: ClassLists,
                 short_side: int, transform=None, cache: bool = True, workers: int = 4,
                 progress: bool = False, found=None):
        self.root = Path(processed)
        self.paths = [self.root / p for p in df["path"]]
        self.sources = list(df["source"])
        self.hemispheres = list(df["hemisphere"]) if "hemisphere" in df else ["north"] * len(df)
        # Degrees north, NaN where unknown (the labels CSV's lat column, carried in the manifest).
        self.lats = (pd.to_numeric(df["lat"], errors="coerce").to_numpy(dtype=float) if "lat" in df
                     else np.full(len(df), np.nan))
        self.lons = (pd.to_numeric(df["lon"], errors="coerce").to_numpy(dtype=float) if "lon" in df
                     else np.full(len(df), np.nan))   # degrees east, likewise
        self.biome, self.month = encode_targets(df, classes)
        self.short_side = short_side
        self.transform = transform
        self.images = None
        self.stored = self.where = None
        if found is None and len(self.paths):
            found = store.locate(processed, short_side)
        if found is not None and all(p in found[1] for p in df["path"]):
            self.stored = found[0]
            self.where = [found[1][p] for p in df["path"]]
        elif cache and len(self.paths):
            from tqdm.auto import tqdm
            with ThreadPoolExecutor(max(1, workers)) as pool:
                jobs = pool.map(lambda p: _load_resized(p, short_side), self.paths)
                self.images = list(tqdm(jobs, total=len(self.paths), desc="loading images",
                                        disable=not progress, leave=False))

    def __len__(self) -> int:
        return len(self.paths)

    def with_transform(self, transform) -> ProcessedImages:
        """The same images (and cache) under another transform, e.g. the eval one for the train split."""
        other = copy.copy(self)
        other.transform = transform
        return other

    def image(self, i: int) -> torch.Tensor:
        """uint8 (3, H, W) with short side = short_side, before the transform."""
        if self.stored is not None:
            split, position = self.where[i]
            img = self.stored[split][position]
            return img if min(img.shape[1:]) == self.short_side else resize_short_side(self.short_side)(img)
        return self.images[i] if self.images is not None else _load_resized(self.paths[i], self.short_side)

    def __getitem__(self, i: int):
        img = self.image(i)
        if self.transform is not None:
            img = self.transform(img)
        return img, self.biome[i], self.month[i]


def estimate_cache_bytes(df: pd.DataFrame, short_side: int) -> int:
    """Memory the uint8 cache would take, from the manifest's width/height."""
    w, h = df["width"].astype(float), df["height"].astype(float)
    scale = short_side / w.where(w < h, h)
    return int((w * scale).round().mul((h * scale).round()).mul(3).sum())


def open_processed(processed: str | Path, rel_path: str) -> Image.Image:
    """One processed image as RGB PIL (for showing; training uses ProcessedImages)."""
    return read_image(Path(processed) / rel_path).image


def preview(processed: str | Path, split: str = "train", n: int = 16, seed: int = 0):
    """A random sample of a split: (PIL images, 'biome / month' titles)."""
    df = read_manifest(processed)
    rows = df[df["split"] == split]
    rows = rows.sample(n=min(n, len(rows)), random_state=seed)
    titles = [f"{b or '?'} / {'?' if pd.isna(m) else int(m)}" for b, m in zip(rows["biome"], rows["month"])]
    return [open_processed(processed, p) for p in rows["path"]], titles


def make_loader(ds, batch_size, workers, sampler=None, shuffle=False, device=None) -> DataLoader:
    """The DataLoader of one split: worker processes kept between epochs (and ended with this
    process however it dies), pinned memory on CUDA."""
    return DataLoader(ds, batch_size=batch_size, sampler=sampler, shuffle=shuffle,
                      num_workers=workers, persistent_workers=workers > 0,
                      worker_init_fn=functools.partial(end_with, os.getpid()) if workers else None,
                      pin_memory=device is not None and device.type == "cuda")
