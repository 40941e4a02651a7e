"""Prediction: biome, month and season of images, from a checkpoint alone.

    from biomeseason.predict import load_model
    predictor = load_model("models/best.pt")
    [result] = predictor.predict("photo.jpg", tta=True)
    result.biome, result.month, result.season      # 'tundra', 7, 'summer'

or, for a folder, a CSV with one row per image::

    python -m biomeseason predict data/raw photo.jpg --out predictions.csv

Without ``--model`` the model is ``models/best.pt`` if it exists, else the one
``make demo`` writes (``runs/demo/model/best.pt``); see ``default_model_path``.

The network is rebuilt from the checkpoint's metadata (architecture, class
lists, input size, normalisation); nothing of training is imported. Images are
read by ``biomeseason.images`` at reduced scale (a 12-megapixel JPEG is decoded
at 1/8 size straight from its DCT coefficients, so its full-size pixels are
never held in memory) and go through ``presets.eval_transform``, the code
training evaluates with. The CSV is written through ``biomeseason.files``:
never over an input or a file that is not ours, never replaced by an empty
result, and a Ctrl-C leaves the previous file as it was.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from . import files, images
from .checkpoint import CheckpointError, load_checkpoint
from .colors import check_paths_exist, find_images
from .images import ImageError
from .labels import MONTH_ABBR, SEASONS, season_of
from .model import build_model, select_device
from .presets import dihedral, eval_transform

# Where a model is looked for when none is named: the user's own, then the demo's.
MODEL_CANDIDATES = (Path("models/best.pt"), Path("runs/demo/model/best.pt"))
ROOT = Path(__file__).resolve().parents[1]   # the repository, for an editable install
TOP_K = 3
REQUIRED_META = ("arch", "biomes", "months", "hemisphere", "image_size", "mean", "std")
HOW_TO_TRAIN = ("train one with `python -m biomeseason train --data data/processed --out models`, "
                "or run `make demo` (synthetic data, a few minutes) and use runs/demo/model/best.pt")


class ModelNotFoundError(CheckpointError):
    """No checkpoint where one was expected; the message says how to make one."""


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
        """The CSV row (``COLUMNS``): the headline columns first, then the top-k of each head."""
        row = {"path": self.path, "biome": self.biome, "biome_p": round(self.biome_p, 4),
               "month": self.month, "month_p": round(self.month_p, 4), "season": self.season,
               "season_p": round(self.season_p, 4)}
        for head, top in (("biome", self.biome_top), ("month", self.month_top)):
            for rank, (label, p) in enumerate(top, start=1):
                row[f"{head}_top{rank}"] = label
                row[f"{head}_top{rank}_p"] = round(p, 4)
        return row


COLUMNS = ["path", "biome", "biome_p", "month", "month_p", "season", "season_p",
           *(f"{head}_top{rank}{p}" for head in ("biome", "month") for rank in range(1, TOP_K + 1)
             for p in ("", "_p"))]
OUR_HEADER = COLUMNS[:6]   # how a predictions CSV of ours begins, in every version


# --------------------------------------------------------------------------- model

def default_model_path() -> Path:
    """``models/best.pt`` if it exists, else ``runs/demo/model/best.pt`` (written by
    ``make demo``), looked for in the current folder and then in the repository.
    Raises ModelNotFoundError, one sentence saying how to make one, if neither exists."""
    for base in dict.fromkeys([Path(), ROOT]):
        for candidate in MODEL_CANDIDATES:
            if (base / candidate).is_file():
                return base / candidate
    raise ModelNotFoundError(f"no model at {MODEL_CANDIDATES[0]} nor at {MODEL_CANDIDATES[1]}: {HOW_TO_TRAIN}")


def load_model(path: str | Path | None = None, device: str | torch.device = "cpu") -> Predictor:
    """Rebuild the network from a checkpoint alone and return a Predictor.

    ``path`` None means ``default_model_path()``. Refuses, with a
    CheckpointError saying why, a file that is not ours, is damaged, lacks
    metadata, or whose weights do not fit the network its metadata describes;
    raises ModelNotFoundError if there is no file.
    """
    path = default_model_path() if path is None else Path(path)
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
    def open(self, source, max_pixels: int = images.MAX_PIXELS) -> Image.Image:
        """The RGB image as decoded for this model: upright, sRGB, reduced while its
        short side still covers the input size. Raises images.ImageError with the reason."""
        return images.read_image(source, min_size=self.image_size, reduce=True, max_pixels=max_pixels).image

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
                on_error: Callable[[object, ImageError], None] | None = None,
                progress: bool = False, max_pixels: int = images.MAX_PIXELS) -> list[Prediction]:
        """Predictions for a path, a PIL image, a uint8 array, or a list of them.

        An image that cannot be used raises images.ImageError, unless ``on_error``
        is given: then it is called with (source, error) and the image is skipped.
        """
        return list(self.iter_predict(sources, tta, batch_size, on_error, progress, max_pixels))

    def iter_predict(self, sources, tta: bool = False, batch_size: int = 32,
                     on_error: Callable[[object, ImageError], None] | None = None,
                     progress: bool = False, max_pixels: int = images.MAX_PIXELS) -> Iterator[Prediction]:
        """Like predict, yielding results batch by batch (memory stays bounded)."""
        if isinstance(sources, (str, Path, Image.Image, np.ndarray)):
            sources = [sources]
        sources = list(sources)
        bar = tqdm(total=len(sources), unit="img", disable=not progress, file=sys.stderr)
        names, tensors = [], []
        for source in sources:
            try:
                tensors.append(self.transform(self.open(source, max_pixels)))
                names.append(_name_of(source))
            except ImageError as e:
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
    """Dict rows to CSV, atomically (columns from the first row); returns the row count.
    Nothing is written for no rows: an empty result never replaces an existing file."""
    return files.write_rows(path, rows)


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Predict biome, month and season of images into a CSV.",
                                     add_help=add_help)
    parser.add_argument("paths", nargs="+", metavar="PATH",
                        help="image files and/or folders (searched recursively)")
    parser.add_argument("--model", default=None,
                        help=f"checkpoint (default: {MODEL_CANDIDATES[0]} if it exists, else {MODEL_CANDIDATES[1]})")
    parser.add_argument("--out", default="predictions.csv", help="CSV to write (default: %(default)s)")
    parser.add_argument("--force", action="store_true",
                        help="replace an existing --out that was not written by biomeseason (default: refuse)")
    parser.add_argument("--tta", action="store_true",
                        help="average over the 8 rotations/flips (8x slower; default: off)")
    parser.add_argument("--batch-size", type=int, default=32, help="images per forward pass (default: 32)")
    parser.add_argument("--max-pixels", type=int, default=images.MAX_PIXELS,
                        help=f"skip images with more pixels than this (default: {images.MAX_PIXELS:,})")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, mps (default: auto)")
    return parser


def check_args(args: argparse.Namespace) -> tuple[list[Path], list[Path]]:
    """Refuse bad settings before any work (files.UsageError, one sentence).
    Returns (images, ignored files) found in the input paths."""
    for flag, value in (("--batch-size", args.batch_size), ("--max-pixels", args.max_pixels)):
        if value < 1:
            raise files.UsageError(f"{flag} {value}: must be at least 1")
    check_paths_exist(args.paths)
    found, ignored = find_images(args.paths)
    model = [args.model] if args.model else []
    files.check_output_file(args.out, inputs=[*args.paths, *found, *model], force=args.force,
                            looks_ours=files.csv_header_is(OUR_HEADER), suffixes=[".csv"])
    return found, ignored


def main(args: argparse.Namespace) -> int:
    try:
        found, ignored = check_args(args)
        predictor = load_model(args.model, select_device(args.device))
    except (files.UsageError, CheckpointError, RuntimeError) as e:  # RuntimeError: the asked-for device is absent
        print(f"error: {e}", file=sys.stderr)
        return 2
    failed: list[str] = []

    def report(source, error: ImageError) -> None:
        failed.append(str(source))
        tqdm.write(f"skipped {error}", file=sys.stderr)

    with files.terminate_as_interrupt():  # kill as Ctrl-C: the temporary CSV is removed, --out kept
        results = predictor.iter_predict(found, tta=args.tta, batch_size=args.batch_size,
                                         on_error=report, progress=True, max_pixels=args.max_pixels)
        written = files.write_rows(args.out, (r.to_row() for r in results), COLUMNS)
    print(f"predicted {written} of {len(found)} images into {args.out}"
          + (f"; {len(failed)} unreadable, skipped: {', '.join(failed)}" if failed else "")
          + (f"; ignored {len(ignored)} non-image files" if ignored else ""), file=sys.stderr)
    if written == 0:
        kept = f"; {args.out} was left as it was" if Path(args.out).exists() else ""
        print(f"error: nothing could be predicted{kept}", file=sys.stderr)
        return 1
    return 0
