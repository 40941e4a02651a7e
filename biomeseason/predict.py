"""Prediction: biome, month and season of images, from a checkpoint alone.

    from biomeseason.predict import load_model
    predictor = load_model("models/best.pt")
    [result] = predictor.predict("photo.jpg", tta=True)
    result.biome, result.month, result.season      # 'tundra', 7, 'summer'

or from the command line: the answers on screen for a few images, a CSV with one row
per image for a folder (``--json`` prints JSON lines for scripts)::

    python -m biomeseason predict photo.jpg --lat 49.9 --lon 21.2
    python -m biomeseason predict data/raw --out predictions.csv

Without ``--model`` the model is ``models/best.pt`` (one the user trained) if it
exists, else the shipped Earth model ``models/earth.pt``; see ``default_model_path``.

The network is rebuilt from the checkpoint's metadata (architecture, class
lists, input size, normalisation); nothing of training is imported. Images are
read by ``biomeseason.images`` at reduced scale (a 12-megapixel JPEG is decoded
at 1/8 size straight from its DCT coefficients, so its full-size pixels are
never held in memory) and go through ``presets.eval_transform``, the code
training evaluates with. Before that, ``scene.find_scene`` crops a whole photo to its Earth part (no
margins, caption, window frame or space); the box goes into the CSV.

Every prediction carries calibrated probabilities (the temperature per head
stored in the checkpoint) and an ``unfamiliar`` flag (the familiarity score
stored beside it; None for checkpoints written before these existed). Where
an image's place is known (``lat=``/``lon=``, ``--lat``/``--lon``, a ``--meta``
CSV of path, lat, lon, or EXIF GPS), the biome is given it too: the Earth's
prior from the label map stored in the checkpoint (``geoprior``).

A folder is predicted as a stream: worker processes read and decode (JPEG at
reduced scale), the model runs in batches, and rows are appended to
``<out>.partial`` as they come, then renamed to ``--out`` when complete. So
``--out`` is always the previous file or a complete new one; an interrupted run
keeps its rows in the partial file and ``--resume`` continues from it,
skipping images already there (same path and content hash). Nothing is written
over an input or a file that is not ours, and an empty result replaces nothing.
"""
from __future__ import annotations

import argparse
import csv
import functools
import math
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from . import calibration as C
from . import files, geoprior, images, presets
from .checkpoint import CheckpointError, load_checkpoint
from .images import ImageError, check_paths_exist, find_images
from .labels import HEMISPHERES, MONTH_ABBR, SEASONS, north_month, season_of
from .model import build_model, select_device
from .presets import dihedral, eval_transform
from .scene import Prepared, ordered_map, prepare

# Where a model is looked for when none is named: the user's own, then the shipped Earth model (trained on
# the whole Earth's Blue Marble tiles; models/README.md), then the demo's (should the shipped one be gone).
MODEL_CANDIDATES = (Path("models/best.pt"), Path("models/earth.pt"), Path("runs/demo/model/best.pt"))
ROOT = Path(__file__).resolve().parents[1]   # the repository, for an editable install
TOP_K = 3
SHOWN = 20                                   # up to this many images, predict shows every answer on screen
BATCH_OUT = Path("runs/predict/predictions.csv")   # where more go without --out
WORKERS = min(4, os.cpu_count() or 1)   # decoding processes of a batch run
UNFAMILIAR_WARNING = ("this image does not look like anything the model was trained on; "
                      "treat the answer with care")
REQUIRED_META = ("arch", "biomes", "months", "hemisphere", "image_size", "mean", "std")
HOW_TO_TRAIN = ("train one with `python -m biomeseason train --data data/processed --out models`, "
                "or run `make demo` (synthetic data, a few minutes) and use runs/demo/model/best.pt")


class ModelNotFoundError(CheckpointError):
    """No checkpoint where one was expected; the message says how to make one."""


@dataclass
class Prediction:
    """What the model says about one image; probabilities are in [0, 1] and calibrated."""

    path: str
    biome: str
    biome_p: float
    month: int                                   # 1..12
    month_p: float
    season: str                                  # of the predicted month in the image's hemisphere
    season_p: float                              # sum of that season's month probabilities
    biome_top: list[tuple[str, float]]           # best TOP_K, most probable first
    month_top: list[tuple[int, float]]
    biome_probs: dict[str, float] = field(repr=False)
    month_probs: dict[int, float] = field(repr=False)
    season_probs: dict[str, float] = field(repr=False)
    unfamiliar: bool | None = None               # None: the checkpoint has no familiarity score
    familiarity_score: float | None = None       # higher = less like the training data
    scene_box: tuple[int, int, int, int] | None = None   # (l, t, r, b) of the part predicted on
    image_size: tuple[int, int] | None = None    # (w, h) of the upright image the box refers to
    sha256: str = ""                             # of the file's bytes (files only)
    notes: list[str] = field(default_factory=list, repr=False)
    hemisphere: str = "north"                    # the image's, which its months and season are in
    lat: float | None = None                     # degrees north the biome was given (geoprior); None: image alone
    lon: float | None = None                     # degrees east, likewise

    @property
    def month_name(self) -> str:
        return MONTH_ABBR[self.month - 1].capitalize()

    def summary(self) -> str:
        """One line for people: 'tundra (0.91), Jul (0.62), summer (0.85)', and ', southern
        hemisphere' when the months and season are a southern image's."""
        return (f"{self.biome} ({self.biome_p:.2f}), {self.month_name} ({self.month_p:.2f}), "
                f"{self.season} ({self.season_p:.2f})" + (", southern hemisphere" if self.hemisphere == "south"
                                                          else "")
                + (f", given latitude {self.lat:.1f}°" if self.lat is not None and self.lon is None else "")
                + (f", given the place {self.lat:.1f}°, {self.lon:.1f}°" if self.lon is not None else ""))

    def to_row(self) -> dict:
        """The CSV row (``COLUMNS``)."""
        row = {"path": self.path, "biome": self.biome, "biome_p": round(self.biome_p, 4),
               "month": self.month, "month_p": round(self.month_p, 4), "season": self.season,
               "season_p": round(self.season_p, 4), "hemisphere": self.hemisphere,
               "lat": "" if self.lat is None else round(self.lat, 4),
               "lon": "" if self.lon is None else round(self.lon, 4),
               "unfamiliar": "" if self.unfamiliar is None else self.unfamiliar,
               "familiarity": "" if self.familiarity_score is None else round(self.familiarity_score, 3),
               "scene_box": ",".join(map(str, self.scene_box)) if self.scene_box else "",
               "sha256": self.sha256}
        for head, top in (("biome", self.biome_top), ("month", self.month_top)):
            for rank, (label, p) in enumerate(top, start=1):
                row[f"{head}_top{rank}"] = label
                row[f"{head}_top{rank}_p"] = round(p, 4)
        return row


COLUMNS = ["path", "biome", "biome_p", "month", "month_p", "season", "season_p", "hemisphere", "lat", "lon",
           "unfamiliar", "familiarity", "scene_box",
           *(f"{head}_top{rank}{p}" for head in ("biome", "month") for rank in range(1, TOP_K + 1)
             for p in ("", "_p")), "sha256"]
OUR_HEADER = COLUMNS[:6]   # how a predictions CSV of ours begins, in every version


# --------------------------------------------------------------------------- model

def default_model_path() -> Path:
    """The first of ``MODEL_CANDIDATES`` that exists: ``models/best.pt`` (the user's), else the shipped
    ``models/earth.pt``, else ``runs/demo/model/best.pt``, looked for in the current folder and then in
    the repository. Raises ModelNotFoundError, one sentence saying how to make one, if none exists."""
    for base in dict.fromkeys([Path(), ROOT]):
        for candidate in MODEL_CANDIDATES:
            if (base / candidate).is_file():
                return base / candidate
    raise ModelNotFoundError(f"no model at {', '.join(map(str, MODEL_CANDIDATES))}: {HOW_TO_TRAIN}")


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
    return Predictor(model.to(device).eval(), meta, torch.device(device), path, _familiarity(payload),
                     geoprior.GeoPrior.from_checkpoint(payload))


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

    def __init__(self, model: torch.nn.Module, meta: dict, device: torch.device, path: Path | None = None,
                 familiarity=None, geo: geoprior.GeoPrior | None = None):
        self.model, self.meta, self.device, self.path = model, meta, device, path
        self.familiarity = familiarity
        self.biomes: list[str] = list(meta["biomes"])
        self.months: list[int] = [int(m) for m in meta["months"]]
        # The hemisphere of an image that does not say (EXIF GPS) and is not told (``hemisphere=``).
        self.hemisphere: str = meta["hemisphere"]
        # "north": the month head answers northern-equivalent months (labels.north_month), turned
        # into each image's calendar months; older models answer calendar months of self.hemisphere.
        self.month_frame: str | None = meta.get("month_frame")
        self.image_size: int = int(meta["image_size"])
        self.transform = eval_transform(self.image_size, meta["mean"], meta["std"])
        calibration = meta.get("calibration") or {}
        self.calibration = {head: dict(calibration.get(head) or {}) for head in ("biome", "month")}
        self.temperatures = {head: C.temperature_at(c) for head, c in self.calibration.items()}   # nearby images
        # Where a photo was taken, as evidence on its biome (geoprior); None: a vocabulary the map does not know.
        self.geo: geoprior.GeoPrior | None = geo
        # Test-time views follow training: an upright photo is never seen upside down.
        self.view = meta.get("view") or (meta.get("config") or {}).get("view") or "overhead"
        self.tta_views = _tta_views(self.view)
        # Which season each month-head output belongs to, for season probabilities.
        self._season_of_output = torch.tensor(
            [SEASONS.index(season_of(m, self.month_frame or self.hemisphere)) for m in self.months])

    def __repr__(self) -> str:
        metrics = self.meta.get("metrics") or {}
        shown = ", ".join(f"{k}={v:.3f}" for k, v in metrics.items() if isinstance(v, (int, float)))
        return (f"Predictor({self.meta['arch']}, {len(self.biomes)} biomes: {', '.join(self.biomes)}; "
                f"input {self.image_size}px; from {self.path}" + (f"; {shown}" if shown else "") + ")")

    # -- images to tensors
    def prepare(self, source, scene: bool = True, max_pixels: int = images.MAX_PIXELS) -> Prepared:
        """The image as this model sees it, before the tensor: decoded small, cropped to the scene."""
        return prepare(source, self.image_size, scene, max_pixels, done=())

    def open(self, source, scene: bool = True, max_pixels: int = images.MAX_PIXELS) -> Image.Image:
        """The RGB image as decoded for this model: upright, sRGB, reduced while its short
        side still covers the input size, cropped to the scene. Raises images.ImageError."""
        prepared = self.prepare(source, scene, max_pixels)
        if prepared.error:
            raise ImageError(prepared.name, prepared.error)
        return Image.fromarray(prepared.image)

    def to_tensor(self, source, scene: bool = True) -> torch.Tensor:
        """(3, S, S) normalised float tensor, exactly as the model sees it."""
        return self.transform(self.open(source, scene))

    # -- tensors to probabilities
    @torch.inference_mode()
    def _forward(self, batch: torch.Tensor, tta: bool = False) -> tuple[dict[str, torch.Tensor], np.ndarray | None]:
        """(calibrated softmax of each head {"biome": (B, nb), "month": (B, 12)}, familiarity scores (B,)).

        The temperature of each image grows with its familiarity score (see the
        calibration module). With ``tta``, the mean softmax over the views valid
        for the model's training view (``presets.tta_views``); the familiarity
        is of the plain view. Scores are None when the checkpoint has none.
        """
        batch = batch.to(self.device)
        views = self.tta_views if tta else [0]
        total, scores, temperatures = None, None, self.temperatures
        for k in views:
            features = self.model.forward_features(dihedral(batch, k))          # (B, C, h, w)
            if k == views[0] and self.familiarity is not None:
                # Features and plain image statistics: a black frame or a bare wall can
                # land near a class in feature space, never in image statistics.
                embedding = self.model.pool(features).flatten(1).float().cpu().numpy()   # = model.embed
                scores = self.familiarity.score(embedding, batch.cpu().numpy())
                distances = self.familiarity.relative(scores)
                temperatures = {head: C.temperature_at(c, distances) for head, c in self.calibration.items()}
            logits = self.model.forward_head(features)
            probs = {task: (out.float() / _per_row(temperatures.get(task, 1.0), out)).softmax(dim=1).cpu()
                     for task, out in logits.items()}
            total = probs if total is None else {t: total[t] + probs[t] for t in total}
        return {task: p / len(views) for task, p in total.items()}, scores

    def probabilities(self, batch: torch.Tensor, tta: bool = False) -> dict[str, torch.Tensor]:
        """Calibrated softmax of each head for a (B, 3, S, S) batch."""
        return self._forward(batch, tta)[0]

    def season_probabilities(self, month_probs: torch.Tensor) -> torch.Tensor:
        """(B, 12) month probabilities -> (B, 4) in SEASONS order."""
        seasons = torch.zeros(month_probs.shape[0], len(SEASONS), dtype=month_probs.dtype)
        return seasons.index_add_(1, self._season_of_output, month_probs)

    # -- the public entry points
    def predict(self, sources, tta: bool = False, batch_size: int = 32,
                on_error: Callable[[object, ImageError], None] | None = None,
                progress: bool = False, **options) -> list[Prediction]:
        """Predictions for a path, a PIL image, a uint8 array, or a list of them.

        An image that cannot be used raises images.ImageError, unless ``on_error``
        is given: then it is called with (source, error) and the image is skipped.
        ``options``: scene (crop to the Earth part, default True), max_pixels,
        workers (decoding processes, default 0: this one), done (see iter_batches),
        hemisphere ("north" or "south" for every image, or one per source; default:
        each image's EXIF GPS latitude, else the model's ``hemisphere``), lat (degrees
        north for every image, or one per source, None where unknown; default: each
        image's EXIF GPS latitude): with a model that has a latitude prior
        (``geoprior``), the biome is given the latitude too, and the hemisphere follows it.
        """
        return [r for batch in self.iter_batches(sources, tta, batch_size, on_error, progress, **options)
                for r in batch]

    def iter_batches(self, sources, tta: bool = False, batch_size: int = 32,
                     on_error: Callable[[object, ImageError], None] | None = None,
                     progress: bool = False, scene: bool = True, max_pixels: int = images.MAX_PIXELS,
                     workers: int = 0, done=(), hemisphere=None, lat=None,
                     lon=None) -> Iterator[list[Prediction]]:
        """Like predict, yielding one list of results per batch (memory stays bounded).

        Files whose (path, sha256) is in ``done`` are skipped unread beyond their bytes.
        """
        if isinstance(sources, (str, Path, Image.Image, np.ndarray)):
            sources = [sources]
        sources = list(sources)
        told = _hemispheres(hemisphere, len(sources))
        lats = _coordinates(lat, len(sources), "lat", 90)
        lons = _coordinates(lon, len(sources), "lon", 180)
        job = functools.partial(prepare, image_size=self.image_size, scene=scene, max_pixels=max_pixels,
                                done=None if workers > 1 else frozenset(done))
        bar = tqdm(total=len(sources), unit="img", disable=not progress, file=sys.stderr, smoothing=0.1)
        batch: list[Prepared] = []
        stream = ordered_map(job, sources, workers, 4 * batch_size, done)
        try:
            for source, ready, given, given_lat, given_lon in zip(sources, stream, told, lats, lons):
                if given_lat is not None:   # a place told overrides the file's own GPS, both parts of it
                    ready.lat, ready.lon = given_lat, given_lon
                ready.hemisphere = given or _hemisphere_of(ready.lat) or self.hemisphere
                if ready.error:
                    bar.update(1)
                    error = ImageError(ready.name, ready.error)
                    if on_error is None:
                        raise error
                    on_error(source, error)
                elif ready.done:
                    bar.update(1)
                else:
                    batch.append(ready)
                if len(batch) == batch_size:
                    yield self._results(batch, tta)
                    bar.update(len(batch))
                    batch = []
            if batch:
                yield self._results(batch, tta)
                bar.update(len(batch))
        finally:
            stream.close()   # an interrupt between two images still stops the workers at once
            bar.close()

    def iter_predict(self, sources, *args, **kwargs) -> Iterator[Prediction]:
        """Like predict, yielding results one by one as their batch is done."""
        for batch in self.iter_batches(sources, *args, **kwargs):
            yield from batch

    def _results(self, batch: list[Prepared], tta: bool) -> list[Prediction]:
        tensors = torch.stack([self.transform(p.image) for p in batch])   # (B, 3, S, S)
        probs, scores = self._forward(tensors, tta)
        seasons = self.season_probabilities(probs["month"])      # (B, 4)
        if self.geo:   # where the place is known, the biome is given it too (geoprior)
            lats = [np.nan if p.lat is None else p.lat for p in batch]
            lons = [np.nan if p.lon is None else p.lon for p in batch]
            biome = self.geo.apply(probs["biome"].numpy(), lats, lons)
            probs = {**probs, "biome": torch.from_numpy(biome).to(probs["biome"].dtype)}
        flags = [None] * len(batch)
        if scores is None:
            scores = flags
        else:
            flags = self.familiarity.flags(scores)
        return [self._prediction(p, probs["biome"][i], probs["month"][i], seasons[i],
                                 None if flags[i] is None else bool(flags[i]),
                                 None if scores[i] is None else float(scores[i]))
                for i, p in enumerate(batch)]

    def _prediction(self, prepared: Prepared, biome_p: torch.Tensor, month_p: torch.Tensor,
                    season_p: torch.Tensor, unfamiliar: bool | None, score: float | None) -> Prediction:
        biome_probs = dict(zip(self.biomes, biome_p.tolist()))
        hemisphere = prepared.hemisphere if self.month_frame else self.hemisphere
        months = [north_month(m, hemisphere) for m in self.months] if self.month_frame else self.months
        month_probs = dict(sorted(zip(months, month_p.tolist())))
        season_probs = dict(zip(SEASONS, season_p.tolist()))
        biome_top = _top(biome_probs)
        month_top = _top(month_probs)
        month = month_top[0][0]
        season = season_of(month, hemisphere)
        return Prediction(prepared.name, biome_top[0][0], biome_top[0][1], month, month_top[0][1],
                          season, season_probs[season], biome_top, month_top,
                          biome_probs, month_probs, season_probs, unfamiliar, score,
                          prepared.box, prepared.size, prepared.sha256, prepared.notes, hemisphere,
                          prepared.lat if self.geo else None,
                          prepared.lon if self.geo and prepared.lat is not None else None)


class SettingError(ValueError):
    """A ``hemisphere=`` or ``lat=`` value that cannot be used; ``setting`` says which."""

    def __init__(self, setting: str, message: str):
        super().__init__(message)
        self.setting = setting


def _hemispheres(hemisphere, n: int) -> list[str | None]:
    """The ``hemisphere=`` option as one entry per source (None: the image's own, else the model's)."""
    given = [hemisphere] * n if hemisphere is None or isinstance(hemisphere, str) else list(hemisphere)
    if len(given) != n:
        raise SettingError("hemisphere", f"hemisphere: {len(given)} values for {n} images")
    bad = sorted({h for h in given if h is not None and h not in HEMISPHERES})
    if bad:
        raise SettingError("hemisphere", f"hemisphere must be one of {HEMISPHERES}, not {bad[0]!r}")
    return given


def _coordinates(values, n: int, name: str, limit: float) -> list[float | None]:
    """The ``lat=`` or ``lon=`` option as one entry per source (None: the image's own EXIF GPS, if any)."""
    given = [values] * n if values is None or isinstance(values, (int, float)) else list(values)
    if len(given) != n:
        raise SettingError(name, f"{name}: {len(given)} values for {n} images")
    out = [None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v) for v in given]
    bad = [v for v in out if v is not None and not -limit <= v <= limit]
    if bad:
        word = "latitude" if name == "lat" else "longitude"
        raise SettingError(name, f"{name}: a {word} must be within -{limit:g}..{limit:g} degrees, not {bad[0]}")
    return out


def _hemisphere_of(lat: float | None) -> str | None:
    return None if lat is None else ("south" if lat < 0 else "north")


def _per_row(temperature, like: torch.Tensor) -> torch.Tensor:
    """A temperature (float) or one per row ((B,) array) as a tensor that divides (B, C) logits."""
    t = torch.as_tensor(np.asarray(temperature), dtype=like.dtype, device=like.device)
    return t[:, None] if t.ndim == 1 else t


def _tta_views(view: str) -> list[int]:
    if hasattr(presets, "tta_views"):
        return presets.tta_views(view)
    return list(range(8)) if view == "overhead" else [0, 4]   # 4: the horizontal flip


def _familiarity(payload: dict):
    """The familiarity score stored in a checkpoint, or None (older checkpoints)."""
    try:
        from .familiarity import Familiarity
    except ImportError:
        return None
    return Familiarity.from_checkpoint(payload)


def _top(probs: dict, k: int = TOP_K) -> list[tuple]:
    return sorted(probs.items(), key=lambda kv: kv[1], reverse=True)[:k]


# --------------------------------------------------------------------------- CSV and CLI

def partial_path(out: str | Path) -> Path:
    """Where a run appends its rows until it is complete: ``<out>.partial``."""
    out = Path(out)
    return out.with_name(out.name + ".partial")


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Predict biome, month and season of images into a CSV.",
                                     add_help=add_help)
    parser.add_argument("paths", nargs="+", metavar="PATH",
                        help="image files and/or folders (searched recursively)")
    parser.add_argument("--model", default=None,
                        help=f"checkpoint (default: {MODEL_CANDIDATES[0]} if it exists, else the shipped "
                             f"{MODEL_CANDIDATES[1]})")
    parser.add_argument("--out", default=None,
                        help="CSV to write (default: none for up to "
                             f"{SHOWN} images, whose answers are on screen; {BATCH_OUT} for more)")
    parser.add_argument("--format", choices=("table", "json"), default="table",
                        help="what goes to standard output: a table for people (default; for more than "
                             f"{SHOWN} images a summary) or JSON lines, one object per image, for scripts")
    parser.add_argument("--json", dest="format", action="store_const", const="json", help="same as --format json")
    parser.add_argument("--force", action="store_true",
                        help="replace an existing --out that was not written by biomeseason (default: refuse)")
    parser.add_argument("--resume", action="store_true",
                        help="keep the rows of an interrupted run (or of --out) and predict only the "
                             "images not in them, by path and content hash (default: start afresh)")
    parser.add_argument("--tta", action="store_true",
                        help="average over the flips (and, for overhead views, rotations) the model was "
                             "trained with (default: off)")
    parser.add_argument("--no-scene", dest="scene", action="store_false",
                        help="predict on the whole image, without cropping to the Earth part (default: crop)")
    parser.add_argument("--hemisphere", choices=HEMISPHERES, default=None,
                        help="where the images were taken, for their months and seasons (a southern "
                             "January looks like a northern July); default: each image's EXIF GPS "
                             "latitude, else the hemisphere of the model's training data")
    parser.add_argument("--lat", type=float, default=None,
                        help="latitude of the images in degrees north (south negative): the biome is given "
                             "the latitude too (the model's geographic prior), and the hemisphere follows it; "
                             "default: each image's EXIF GPS latitude, else none")
    parser.add_argument("--lon", type=float, default=None,
                        help="longitude of the images in degrees east (west negative), with --lat: the biome "
                             "is given the place (the label map around it); default: EXIF GPS, else none")
    parser.add_argument("--meta", default=None, metavar="CSV",
                        help="per-image places: a CSV with path, lat, lon (an astronaut photo catalogue's "
                             "nadir points); a path is matched as written, relative to the CSV's folder, or "
                             "by file name; images it does not list keep their EXIF GPS")
    parser.add_argument("--batch-size", type=int, default=32, help="images per forward pass (default: 32)")
    parser.add_argument("--workers", type=int, default=WORKERS,
                        help=f"processes that decode images; 0 or 1: this one (default: {WORKERS})")
    parser.add_argument("--max-pixels", type=int, default=images.MAX_PIXELS,
                        help=f"skip images with more pixels than this (default: {images.MAX_PIXELS:,})")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, mps (default: auto)")
    return parser


def _answer_on_screen(predictor: Predictor, found: list[Path], ignored: list[Path], fmt: str, options: dict) -> int:
    """A few images: predict them and print the answers (a table, or JSON lines); nothing is written."""
    failed: list[str] = []

    def report(path, error: ImageError) -> None:
        failed.append(str(path))
        print(f"skipped {error}", file=sys.stderr)

    with files.terminate_as_interrupt():
        results = predictor.predict(found, on_error=report, progress=len(found) > 1, **options)
    if fmt == "json":
        _print_json(results)
    elif results:
        print(format_table(results))
    if ignored:
        print(f"ignored {len(ignored)} non-image files", file=sys.stderr)
    if not results:
        print("error: nothing could be predicted" + (f" ({', '.join(failed)})" if failed else ""), file=sys.stderr)
        return 1
    if fmt == "table":
        print(f"(answers of {predictor.path}; --out FILE.csv writes them with every probability, "
              "--json prints them for scripts)", file=sys.stderr)
    return 0


def _print_json(results) -> None:
    import json

    for r in results:
        print(json.dumps({**r.to_row(), "unfamiliar": r.unfamiliar}), flush=True)


def format_table(results: list[Prediction]) -> str:
    """The answers as a table for people: one line an image."""
    import pandas as pd

    rows = [{"image": Path(r.path).name,
             "biome": f"{r.biome} ({r.biome_p:.2f})",
             "month": f"{r.month_name} ({r.month_p:.2f})",
             "season": f"{r.season} ({r.season_p:.2f})",
             "unfamiliar": {True: "YES", False: "no", None: "?"}[r.unfamiliar],
             "given": (f"{r.lat:.2f}, {r.lon:.2f}" if r.lon is not None else f"lat {r.lat:.2f}" if r.lat is not None
                       else "image only"),
             "scene box": ",".join(map(str, r.scene_box)) if r.scene_box and r.image_size
             and tuple(r.scene_box) != (0, 0, *r.image_size) else "whole image"} for r in results]
    text = pd.DataFrame(rows).to_string(index=False)
    if any(r.unfamiliar for r in results):
        text += f"\nYES under unfamiliar: {UNFAMILIAR_WARNING}"
    return text


def summary_of(csv_path: Path) -> str:
    """Many images: how many of each biome, and how many flagged unfamiliar."""
    import pandas as pd

    table = pd.read_csv(csv_path, keep_default_na=False)
    counts = table["biome"].value_counts()
    flagged = (table["unfamiliar"].astype(str) == "True").sum()
    return ("biomes: " + ", ".join(f"{b} {n}" for b, n in counts.items())
            + f"; flagged unfamiliar: {flagged} of {len(table)}")


def check_args(args: argparse.Namespace) -> tuple[list[Path], list[Path]]:
    """Refuse bad settings before any work (files.UsageError, one sentence).
    Returns (images, ignored files) found in the input paths."""
    for flag, value in (("--batch-size", args.batch_size), ("--max-pixels", args.max_pixels)):
        if value < 1:
            raise files.UsageError(f"{flag} {value}: must be at least 1")
    if args.workers < 0:
        raise files.UsageError(f"--workers {args.workers}: must be 0 or more")
    if args.lat is not None and not -90 <= args.lat <= 90:
        raise files.UsageError(f"--lat {args.lat}: must be within -90..90 degrees")
    if args.lon is not None and not -180 <= args.lon <= 180:
        raise files.UsageError(f"--lon {args.lon}: must be within -180..180 degrees")
    if args.lon is not None and args.lat is None:
        raise files.UsageError("--lon needs --lat: a longitude alone places nothing")
    if args.meta and args.lat is not None:
        raise files.UsageError("--meta and --lat both give the places: use one of them")
    check_paths_exist(args.paths)
    found, ignored = find_images(args.paths)
    if args.out is None and (len(found) > SHOWN or args.resume):
        args.out = str(BATCH_OUT)   # many images: their rows stream to a CSV of ours, never into the current folder
    if args.out is None:
        return found, ignored
    inputs = [*args.paths, *found, *([args.model] if args.model else [])]
    ours = files.csv_header_is(OUR_HEADER)
    files.check_output_file(args.out, inputs=inputs, force=args.force, looks_ours=ours, suffixes=[".csv"])
    files.check_output_file(partial_path(args.out), inputs=inputs, force=args.force, looks_ours=ours,
                            suffixes=[".partial"])
    if args.resume:
        for path in (partial_path(args.out), Path(args.out)):
            if path.is_file() and "sha256" not in _header(path):
                raise files.UsageError(f"--resume: {path} has no sha256 column (an older version wrote it); "
                                       "run without --resume")
    return found, ignored


def places_of(images_: list[Path], meta_csv) -> tuple[list[float | None], list[float | None]]:
    """(latitudes, longitudes) of ``images_`` from a CSV of path, lat, lon; None where it lists an image not.
    A row's path matches an image as written, relative to the CSV's folder, or by file name if that is unique."""
    import pandas as pd

    meta_csv = Path(meta_csv)
    try:
        table = pd.read_csv(meta_csv, dtype={"path": str})
    except (OSError, ValueError) as e:
        raise files.UsageError(f"--meta {meta_csv}: cannot be read as CSV ({str(e).strip().splitlines()[0]})") from None
    missing = [c for c in ("path", "lat", "lon") if c not in table.columns]
    if missing:
        raise files.UsageError(f"--meta {meta_csv} lacks the column(s) {', '.join(missing)} (it needs path, lat, lon)")
    for column, limit in (("lat", 90), ("lon", 180)):
        values = pd.to_numeric(table[column], errors="coerce")
        bad = table[(values.abs() > limit) | (values.isna() & table[column].notna())]
        if len(bad):
            raise files.UsageError(f"--meta {meta_csv}: {column} of {bad['path'].iloc[0]} is "
                                   f"{bad[column].iloc[0]!r}, not a number within -{limit}..{limit}")
        table[column] = values
    by_path = {}
    for row in table.itertuples():
        for key in (Path(row.path), meta_csv.parent / row.path):
            by_path.setdefault(str(key.resolve()), (row.lat, row.lon))
    names = table["path"].map(lambda p: Path(p).name)
    unique = {n: (r.lat, r.lon) for n, r in zip(names, table.itertuples()) if (names == n).sum() == 1}
    found = [by_path.get(str(Path(p).resolve()), unique.get(Path(p).name)) for p in images_]
    placed = [f for f in found if f is not None and not math.isnan(f[0])]
    print(f"--meta: places for {len(placed)} of {len(images_)} images from {meta_csv}", file=sys.stderr)
    lats = [None if f is None or math.isnan(f[0]) else float(f[0]) for f in found]
    lons = [None if f is None or math.isnan(f[0]) or math.isnan(f[1]) else float(f[1]) for f in found]
    return lats, lons


def _header(path: Path) -> list[str]:
    with open(path, encoding="utf-8", newline="") as f:
        return next(csv.reader(f), [])


def _previous_rows(out: Path, partial: Path) -> tuple[list[dict], Path | None]:
    """(rows, file they came from) of an interrupted run, else of a complete --out, for --resume."""
    for path in (partial, out):
        if path.is_file():
            text = path.read_text(encoding="utf-8")
            if not text.endswith("\n"):
                text = text[:text.rfind("\n") + 1]   # a row cut by a crash is predicted again
            return list(csv.DictReader(text.splitlines())), path
    return [], None


def main(args: argparse.Namespace) -> int:
    try:
        found, ignored = check_args(args)
        predictor = load_model(args.model, select_device(args.device))
    except (files.UsageError, CheckpointError, RuntimeError) as e:  # RuntimeError: the asked-for device is absent
        print(f"error: {e}", file=sys.stderr)
        return 2
    from .workers import cap
    args.workers = cap(args.workers)
    try:
        lats, lons = places_of(found, args.meta) if args.meta else (args.lat, args.lon)
    except files.UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    options = dict(tta=args.tta, batch_size=args.batch_size, scene=args.scene, max_pixels=args.max_pixels,
                   workers=args.workers, hemisphere=args.hemisphere, lat=lats, lon=lons)
    if args.out is None:   # a few images: the answers on screen, no file written
        return _answer_on_screen(predictor, found, ignored, args.format, options)
    if args.out == str(BATCH_OUT):
        files.claim_dir(BATCH_OUT.parent)
    out, partial = Path(args.out), partial_path(args.out)
    previous, source = _previous_rows(out, partial) if args.resume else ([], None)
    done = {(row["path"], row["sha256"]) for row in previous}
    failed: list[str] = []

    def report(path, error: ImageError) -> None:
        failed.append(str(path))
        tqdm.write(f"skipped {error}", file=sys.stderr)

    new, shown = 0, []
    with files.terminate_as_interrupt(), files.output_lock(out):   # one run at a time into --out
        # The partial file is rewritten from the rows kept, so it always holds whole rows only.
        files.write_rows(partial, previous, COLUMNS) or files.write_text(partial, ",".join(COLUMNS) + "\n")
        try:
            with files.appending_rows(partial, COLUMNS) as append:
                for batch in predictor.iter_batches(found, on_error=report, progress=True, done=done, **options):
                    append(r.to_row() for r in batch)
                    new += len(batch)
                    if args.format == "json":
                        _print_json(batch)
                    elif len(found) <= SHOWN:
                        shown.extend(batch)
        except BaseException:
            if previous or new:
                print(f"\n{len(previous) + new} rows kept in {partial}; run the same command with --resume "
                      f"to continue; {out} was left as it was", file=sys.stderr)
            else:
                partial.unlink(missing_ok=True)
            raise
        total = len(previous) + new
        if total == 0 or (new == 0 and source == out):
            partial.unlink(missing_ok=True)   # nothing new: --out stays as it was
        else:
            files.publish(partial, out)
    if shown:
        print(format_table(shown))
    elif args.format == "table" and total:
        print(summary_of(out))
    print(f"predicted {new} of {len(found)} images into {out}"
          + (f" ({len(previous)} rows kept from before)" if previous else "")
          + (f"; {len(failed)} unreadable, skipped: {', '.join(failed)}" if failed else "")
          + (f"; ignored {len(ignored)} non-image files" if ignored else ""), file=sys.stderr)
    if total == 0:
        kept = f"; {out} was left as it was" if out.exists() else ""
        print(f"error: nothing could be predicted{kept}", file=sys.stderr)
        return 1
    return 0
