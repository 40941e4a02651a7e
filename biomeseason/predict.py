"""Prediction: biome, month and season of images, from a checkpoint alone.

    from biomeseason.predict import load_model
    predictor = load_model("models/best.pt")
    [result] = predictor.predict("photo.jpg", tta=True)
    result.biome, result.month, result.season      # 'tundra', 7, 'summer'

or, for a folder, a CSV with one row per image::

    python -m biomeseason predict data/raw photo.jpg --model models/best.pt --out predictions.csv

The network is rebuilt from the checkpoint's metadata (architecture, class
lists, input size, normalisation); nothing of training is imported. Images go
through ``presets.eval_transform``, the code training evaluates with, after a
decode at reduced scale: a 12-megapixel JPEG is decoded at 1/8 size straight
from its DCT coefficients (``Image.draft``), so its full-size pixels are never
held in memory nor resized (``bench/predict.py`` measures the gain).
"""
from __future__ import annotations

import argparse
import csv
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from tqdm import tqdm

from .checkpoint import CheckpointError, load_checkpoint
from .images import to_rgb
from .labels import MONTH_ABBR, SEASONS, season_of
from .model import build_model, select_device
from .presets import dihedral, eval_transform

DEFAULT_MODEL = Path("models/best.pt")
TOP_K = 3
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".gif", ".webp"}
REQUIRED_META = ("arch", "biomes", "months", "hemisphere", "image_size", "mean", "std")
HOW_TO_TRAIN = ("train one with `python -m biomeseason train --data data/processed --out models`, "
                "or run `make demo` (synthetic data, a few minutes) and use runs/demo/model/best.pt")


class ModelNotFoundError(CheckpointError):
    """No checkpoint where one was expected; the message says how to make one."""


class ImageReadError(ValueError):
    """A file (or object) that cannot be read as an image; the message names it."""

    def __init__(self, source, reason: str):
        super().__init__(f"{source}: cannot read it as an image ({reason})")
        self.source = source


@dataclass
class Prediction:
    """What the model says about one image; probabilities are in [0, 1]."""

    path: str
    biome: str
    biome_p: float
    month: int                                   # 1..12
    month_p: float
    season: str                                  # from the predicted month
    season_p: float                              # sum of that season's month probabilities
    biome_top: list[tuple[str, float]]           # best TOP_K, most probable first
    month_top: list[tuple[int, float]]
    biome_probs: dict[str, float] = field(repr=False)
    month_probs: dict[int, float] = field(repr=False)
    season_probs: dict[str, float] = field(repr=False)

    @property
    def month_name(self) -> str:
        return MONTH_ABBR[self.month - 1].capitalize()

    def summary(self) -> str:
        """One line for people: 'tundra (0.91), Jul (0.62), summer (0.85)'."""
        return (f"{self.biome} ({self.biome_p:.2f}), {self.month_name} ({self.month_p:.2f}), "
                f"{self.season} ({self.season_p:.2f})")

    def to_row(self) -> dict:
        """The CSV row: the headline columns first, then the top-k of each head."""
        row = {"path": self.path, "biome": self.biome, "biome_p": round(self.biome_p, 4),
               "month": self.month, "month_p": round(self.month_p, 4), "season": self.season,
               "season_p": round(self.season_p, 4)}
        for head, top in (("biome", self.biome_top), ("month", self.month_top)):
            for rank, (label, p) in enumerate(top, start=1):
                row[f"{head}_top{rank}"] = label
                row[f"{head}_top{rank}_p"] = round(p, 4)
        return row


# --------------------------------------------------------------------------- images

def open_image(source, min_size: int | None = None) -> Image.Image:
    """An RGB, upright PIL image from a path, a PIL image or a uint8 array (H, W[, C]).

    With ``min_size``, the image is decoded (JPEG) or reduced (others) by an
    integer factor while its short side stays >= min_size: the final resize
    to the model's input then works on a small image. Raises ImageReadError
    naming the source for anything PIL cannot decode, including truncated files.
    """
    name = _name_of(source)
    if isinstance(source, np.ndarray):
        source = Image.fromarray(source)
    try:
        if isinstance(source, Image.Image):
            # Not ours to draft: that would shrink the caller's image in place.
            return _decoded(source, min_size, draft=False)
        with Image.open(source) as img:
            return _decoded(img, min_size, draft=True)
    except FileNotFoundError:
        raise ImageReadError(name, "no such file") from None
    except IsADirectoryError:
        raise ImageReadError(name, "it is a folder") from None
    except UnidentifiedImageError:
        raise ImageReadError(name, "not an image format PIL knows") from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise ImageReadError(name, str(e) or type(e).__name__) from None


def _decoded(img: Image.Image, min_size: int | None, draft: bool) -> Image.Image:
    """Decode (at reduced scale if allowed), turn upright, make RGB, reduce."""
    if draft and min_size and img.format == "JPEG":
        img.draft("RGB", (min_size, min_size))  # must come before the pixels are loaded
    img = ImageOps.exif_transpose(img)          # a loaded copy; raises on truncated data
    img = to_rgb(img)
    if min_size:
        factor = min(img.size) // min_size
        if factor >= 2:
            img = img.reduce(factor)  # box average: cheap and alias-free
    return img


def find_images(paths: Iterable[str | Path]) -> tuple[list[Path], list[Path]]:
    """Files named directly, plus image files found recursively in folders.

    Returns (images, ignored): in folders, files whose suffix is not an
    image's and hidden files (``.DS_Store``) are ignored, not tried. A file
    named directly is always tried, so a mislabelled one is reported.
    """
    images, ignored = [], []
    for p in map(Path, paths):
        if not p.is_dir():
            images.append(p)
            continue
        for f in sorted(q for q in p.rglob("*") if q.is_file()):
            hidden = any(part.startswith(".") for part in f.relative_to(p).parts)
            (images if f.suffix.lower() in IMAGE_SUFFIXES and not hidden else ignored).append(f)
    return images, ignored


# --------------------------------------------------------------------------- model

def load_model(path: str | Path = DEFAULT_MODEL, device: str | torch.device = "cpu") -> "Predictor":
    """Rebuild the network from a checkpoint alone and return a Predictor.

    Refuses, with a CheckpointError saying why, a file that is not ours, is
    damaged, lacks metadata, or whose weights do not fit the network its
    metadata describes; raises ModelNotFoundError if there is no file.
    """
    path = Path(path)
    if not path.exists():
        raise ModelNotFoundError(f"no model at {path}: {HOW_TO_TRAIN}")
    payload = load_checkpoint(path)  # safe: weights_only, digest checked
    meta, state_dict = payload["meta"], payload["model"]
    missing = [k for k in REQUIRED_META if k not in meta]
    if missing:
        raise CheckpointError(f"{path} lacks metadata {missing}: it was written by another "
                              f"version of biomeseason; retrain ({HOW_TO_TRAIN})")
    try:
        model = build_model(meta)
    except (ValueError, TypeError, KeyError) as e:
        raise CheckpointError(f"{path}: cannot build the network it describes: {e}") from None
    _check_fits(path, model, meta, state_dict)
    model.load_state_dict(state_dict, strict=True)
    return Predictor(model.to(device).eval(), meta, torch.device(device), path)


def _check_fits(path: Path, model: torch.nn.Module, meta: dict, state_dict: dict) -> None:
    """A short, readable refusal when weights and architecture disagree.

    ``load_state_dict`` would also refuse, but with hundreds of key names.
    """
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    given = {k: tuple(v.shape) for k, v in state_dict.items()}
    problems = []
    for label, keys in (("missing", sorted(expected.keys() - given.keys())),
                        ("unexpected", sorted(given.keys() - expected.keys())),
                        ("wrong shape", sorted(k for k in expected.keys() & given.keys()
                                               if expected[k] != given[k]))):
        if keys:
            more = f" and {len(keys) - 3} more" if len(keys) > 3 else ""
            problems.append(f"{len(keys)} {label} ({', '.join(keys[:3])}{more})")
    if problems:
        raise CheckpointError(
            f"{path}: its weights do not fit the {meta['arch']} with {len(meta['biomes'])} biomes "
            f"and {len(meta['months'])} months that its metadata describes: {'; '.join(problems)}. "
            "Was it written by another architecture or version?")


class Predictor:
    """A loaded model with its metadata; turns images into Predictions."""

    def __init__(self, model: torch.nn.Module, meta: dict, device: torch.device, path: Path | None = None):
        self.model, self.meta, self.device, self.path = model, meta, device, path
        self.biomes: list[str] = list(meta["biomes"])
        self.months: list[int] = [int(m) for m in meta["months"]]
        self.hemisphere: str = meta["hemisphere"]
        self.image_size: int = int(meta["image_size"])
        self.transform = eval_transform(self.image_size, meta["mean"], meta["std"])
        # Which season each month-head output belongs to, for season probabilities.
        self._season_of_output = torch.tensor(
            [SEASONS.index(season_of(m, self.hemisphere)) for m in self.months])

    def __repr__(self) -> str:
        metrics = self.meta.get("metrics") or {}
        shown = ", ".join(f"{k}={v:.3f}" for k, v in metrics.items() if isinstance(v, (int, float)))
        return (f"Predictor({self.meta['arch']}, {len(self.biomes)} biomes: {', '.join(self.biomes)}; "
                f"input {self.image_size}px; from {self.path}" + (f"; {shown}" if shown else "") + ")")

    # -- images to tensors
    def open(self, source) -> Image.Image:
        """The RGB image as decoded for this model (reduced scale for big JPEGs)."""
        return open_image(source, min_size=self.image_size)

    def to_tensor(self, source) -> torch.Tensor:
        """(3, S, S) normalised float tensor, exactly as the model sees it."""
        return self.transform(self.open(source))

    # -- tensors to probabilities
    @torch.inference_mode()
    def probabilities(self, batch: torch.Tensor, tta: bool = False) -> dict[str, torch.Tensor]:
        """Softmax of each head for a (B, 3, S, S) batch: {"biome": (B, nb), "month": (B, 12)}.

        With ``tta``, the mean softmax over the 8 rotations/flips; overhead
        views have no "up", so each is an equally valid view of the scene.
        """
        batch = batch.to(self.device)
        views = range(8) if tta else range(1)
        total = None
        for k in views:
            logits = self.model(dihedral(batch, k))
            probs = {task: out.float().softmax(dim=1).cpu() for task, out in logits.items()}
            total = probs if total is None else {t: total[t] + probs[t] for t in total}
        return {task: p / len(views) for task, p in total.items()}

    def season_probabilities(self, month_probs: torch.Tensor) -> torch.Tensor:
        """(B, 12) month probabilities -> (B, 4) in SEASONS order."""
        seasons = torch.zeros(month_probs.shape[0], len(SEASONS), dtype=month_probs.dtype)
        return seasons.index_add_(1, self._season_of_output, month_probs)

    # -- the public entry points
    def predict(self, sources, tta: bool = False, batch_size: int = 32,
                on_error: Callable[[object, ImageReadError], None] | None = None,
                progress: bool = False) -> list[Prediction]:
        """Predictions for a path, a PIL image, a uint8 array, or a list of them.

        An unreadable image raises ImageReadError, unless ``on_error`` is given:
        then it is called with (source, error) and the image is skipped.
        """
        return list(self.iter_predict(sources, tta, batch_size, on_error, progress))

    def iter_predict(self, sources, tta: bool = False, batch_size: int = 32,
                     on_error: Callable[[object, ImageReadError], None] | None = None,
                     progress: bool = False) -> Iterator[Prediction]:
        """Like predict, yielding results batch by batch (memory stays bounded)."""
        if isinstance(sources, (str, Path, Image.Image, np.ndarray)):
            sources = [sources]
        sources = list(sources)
        bar = tqdm(total=len(sources), unit="img", disable=not progress, file=sys.stderr)
        names, tensors = [], []
        for source in sources:
            try:
                tensors.append(self.to_tensor(source))
                names.append(_name_of(source))
            except ImageReadError as e:
                if on_error is None:
                    bar.close()
                    raise
                on_error(source, e)
                bar.update(1)
            if len(tensors) == batch_size:
                yield from self._results(names, tensors, tta)
                bar.update(len(tensors))
                names, tensors = [], []
        if tensors:
            yield from self._results(names, tensors, tta)
            bar.update(len(tensors))
        bar.close()

    def _results(self, names: list[str], tensors: list[torch.Tensor], tta: bool) -> list[Prediction]:
        probs = self.probabilities(torch.stack(tensors), tta)   # (B, nb), (B, 12)
        seasons = self.season_probabilities(probs["month"])     # (B, 4)
        return [self._prediction(name, probs["biome"][i], probs["month"][i], seasons[i])
                for i, name in enumerate(names)]

    def _prediction(self, name: str, biome_p: torch.Tensor, month_p: torch.Tensor,
                    season_p: torch.Tensor) -> Prediction:
        biome_probs = dict(zip(self.biomes, biome_p.tolist()))
        month_probs = dict(zip(self.months, month_p.tolist()))
        season_probs = dict(zip(SEASONS, season_p.tolist()))
        biome_top = _top(biome_probs)
        month_top = _top(month_probs)
        month = month_top[0][0]
        season = season_of(month, self.hemisphere)
        return Prediction(name, biome_top[0][0], biome_top[0][1], month, month_top[0][1],
                          season, season_probs[season], biome_top, month_top,
                          biome_probs, month_probs, season_probs)


def _top(probs: dict, k: int = TOP_K) -> list[tuple]:
    return sorted(probs.items(), key=lambda kv: kv[1], reverse=True)[:k]


def _name_of(source) -> str:
    if isinstance(source, (str, Path)):
        return str(source)
    return getattr(source, "filename", "") or "<image>"


# --------------------------------------------------------------------------- CSV and CLI

def write_csv(rows: Iterable[dict], path: str | Path) -> int:
    """Write dict rows (columns from the first row) to CSV; returns the row count."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = None
        for row in rows:
            if writer is None:
                writer = csv.DictWriter(f, fieldnames=list(row))
                writer.writeheader()
            writer.writerow(row)
            count += 1
    return count


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Predict biome, month and season of images into a CSV.",
                                     add_help=add_help)
    parser.add_argument("paths", nargs="+", metavar="PATH",
                        help="image files and/or folders (searched recursively)")
    parser.add_argument("--model", default=str(DEFAULT_MODEL), help="checkpoint (default: %(default)s)")
    parser.add_argument("--out", default="predictions.csv", help="CSV to write (default: %(default)s)")
    parser.add_argument("--tta", action="store_true",
                        help="average over the 8 rotations/flips (8x slower; default: off)")
    parser.add_argument("--batch-size", type=int, default=32, help="images per forward pass (default: 32)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, mps (default: auto)")
    return parser


def main(args: argparse.Namespace) -> int:
    try:
        predictor = load_model(args.model, select_device(args.device))
    except (CheckpointError, RuntimeError) as e:  # RuntimeError: the asked-for device is absent
        print(f"error: {e}", file=sys.stderr)
        return 2
    images, ignored = find_images(args.paths)
    failed: list[str] = []

    def report(source, error: ImageReadError) -> None:
        failed.append(str(source))
        tqdm.write(f"skipped {error}", file=sys.stderr)

    results = predictor.iter_predict(images, tta=args.tta, batch_size=args.batch_size,
                                     on_error=report, progress=True)
    written = write_csv((r.to_row() for r in results), args.out)
    print(f"predicted {written} of {len(images)} images into {args.out}"
          + (f"; {len(failed)} unreadable, skipped: {', '.join(failed)}" if failed else "")
          + (f"; ignored {len(ignored)} non-image files" if ignored else ""), file=sys.stderr)
    if written == 0:
        Path(args.out).unlink(missing_ok=True)  # an empty file would look like a result
        print("error: nothing could be predicted", file=sys.stderr)
        return 1
    return 0
