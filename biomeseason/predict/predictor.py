"""Prediction: biome, month and season of images, from a checkpoint alone.

    from biomeseason.predict.predictor import load_model
    predictor = load_model("models/best.pt")
    [result] = predictor.predict("photo.jpg", tta=True)
    result.biome, result.month, result.season      # 'tundra', 7, 'summer'

The command line (``python -m biomeseason predict``: answers on screen, or a CSV for a
folder) is ``cli``; what a Prediction holds and how probabilities become one is
``prediction``.

Without a path, ``load_model`` takes ``models/best.pt`` (one the user trained) if it
exists, else the shipped Earth model ``models/earth.pt``; see ``default_model_path``.

The network is rebuilt from the checkpoint's metadata (architecture, class
lists, input size, normalisation); nothing of training is imported. Images are
read by ``biomeseason.io.images`` at reduced scale (a 12-megapixel JPEG is decoded
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

Scale: a model of the Earth learnt the ground at the maps' ``km_per_pixel``. A photo whose footprint is
known (``footprint_km=``, or its EXIF focal length with ``altitude_km=``) is first reduced to as many
pixels as such a map has across that ground (``presets.at_footprint``), so a 60 km Sentinel-2 scene is
not a new world of fields and roads, but to no fewer than the smallest view the model learnt from
(``smallest_view``: about 25 map pixels, 185 km, for the Earth model): finer ground is shown as the
finest the model knows, not as a flat colour. ``footprint_km="auto"`` averages the answers over the image
as it is and at each of ``FOOTPRINTS`` (those finer than the smallest view once, at it).
"""
from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from ..earth import geoprior
from ..io import images
from ..io.images import ImageError
from ..io.workers import one_thread
from ..labels import SEASONS, season_of
from ..model import calibration as C
from ..model import kinds, presets
from ..model.checkpoint import CheckpointError, load_checkpoint
from ..model.network import build_model, for_inference
from ..model.presets import dihedral, eval_transform
from .rows import (
    COLUMNS,
    TOP_K,
    UNFAMILIAR_WARNING,
    Prediction,
    SettingError,
    hemisphere_of,
    per_image_coordinates,
    per_image_hemispheres,
    prediction_of,
)
from .scene import Prepared, ordered_map, prepare

__all__ = ["COLUMNS", "TOP_K", "UNFAMILIAR_WARNING", "ModelNotFoundError", "Prediction", "Predictor",
           "SettingError", "default_model_path", "load_model"]

# Where a model is looked for when none is named: the user's own, then the shipped Earth model (trained on
# the whole Earth's Blue Marble tiles; models/README.md), then the demo's (should the shipped one be gone).
MODEL_CANDIDATES = (Path("models/best.pt"), Path("models/earth.pt"), Path("runs/demo/model/best.pt"))
# The Blue Marble maps' pixel at the equator (15 px a degree): the ground scale of a model trained on them.
MAP_KM_PER_PIXEL = 7.4
# What ``footprint_km="auto"`` assumes besides the image as it is: a wide astronaut view, a Sentinel-2 or
# Landsat scene, and a long lens.
FOOTPRINTS = (240.0, 120.0, 60.0)
SENSOR_MM = 36.0   # the width of a 35 mm frame, for the footprint from a focal length
ROOT = Path(__file__).resolve().parents[2]   # the repository, for an editable install
REQUIRED_META = ("arch", "biomes", "months", "hemisphere", "image_size", "mean", "std")
HOW_TO_TRAIN = ("train one with `python -m biomeseason train --data data/processed --out models`, "
                "or run `make demo` (synthetic data, a few minutes) and use runs/demo/model/best.pt")


FEW = 8   # batches of fewer images run on one CPU thread (Predictor._batch_results)


class ModelNotFoundError(CheckpointError):
    """No checkpoint where one was expected; the message says how to make one."""


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


def load_model(path: str | Path | None = None, device: str | torch.device = "cpu",
               camera: str | None = None) -> Predictor:
    """Rebuild the network from a checkpoint alone and return a Predictor.

    ``path`` None means ``default_model_path()``. ``camera``: which of the checkpoint's camera kinds
    reads the images (``model.kinds``: "photo", the default, or "composite" for Blue Marble-like monthly
    composites); a checkpoint without kinds reads every image one way and ignores it. Refuses, with a
    CheckpointError saying why, a file that is not ours, is damaged, lacks
    metadata, or whose weights do not fit the network its metadata describes;
    raises ModelNotFoundError if there is no file, SettingError for a kind it does not have.
    """
    path = default_model_path() if path is None else Path(path)
    if not path.exists():
        raise ModelNotFoundError(f"no model at {path}: {HOW_TO_TRAIN}")
    payload = load_checkpoint(path)  # safe: weights_only, digest checked
    try:
        payload = kinds.select(payload, camera)
    except ValueError as e:
        raise SettingError("camera", f"{path}: {e}") from None
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
        # Which of the checkpoint's camera kinds this is (model.kinds), and all of them; None and [] for a
        # model that reads every image one way.
        self.camera: str | None = meta.get("kind")
        self.cameras: list[str] = list(meta.get("kind_names") or [])
        # The ground a training pixel covered, if the model knows it (the Earth model's maps); None: unknown.
        self.km_per_pixel: float | None = meta.get("km_per_pixel") or (MAP_KM_PER_PIXEL if meta.get("earth") else None)
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
        kind = f"; reads {self.camera} images (of {', '.join(self.cameras)})" if self.camera else ""
        return (f"Predictor({self.meta['arch']}, {len(self.biomes)} biomes: {', '.join(self.biomes)}; "
                f"input {self.image_size}px; from {self.path}{kind}" + (f"; {shown}" if shown else "") + ")")

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
        model = self._network()
        views = self.tta_views if tta else [0]
        total, scores, temperatures = None, None, self.temperatures
        for k in views:
            features = model.forward_features(dihedral(batch, k))               # (B, C, h, w)
            if k == views[0] and self.familiarity is not None:
                # Features and plain image statistics: a black frame or a bare wall can
                # land near a class in feature space, never in image statistics.
                embedding = model.pool(features).flatten(1).float().cpu().numpy()   # = model.embed
                with one_thread("blas"):   # a few rows: BLAS threads would only fight PyTorch's (bench/predict.py)
                    scores = self.familiarity.score(embedding, batch.cpu().numpy())
                distances = self.familiarity.relative(scores)
                temperatures = {head: C.temperature_at(c, distances) for head, c in self.calibration.items()}
            logits = model.forward_head(features)
            probs = {task: (out.float() / _per_row(temperatures.get(task, 1.0), out)).softmax(dim=1).cpu()
                     for task, out in logits.items()}
            total = probs if total is None else {t: total[t] + probs[t] for t in total}
        return {task: p / len(views) for task, p in total.items()}, scores

    def _network(self) -> torch.nn.Module:
        """The model as ``_forward`` runs it: on a CPU, ``network.for_inference``'s copy (batch norms
        folded, channels-last: twice as fast on one image), made again whenever ``self.model`` or its
        weights change; elsewhere the model itself."""
        if self.device.type != "cpu" or self.model.training:
            return self.model
        if getattr(self, "_weights", (None,))[0] is not self.model:   # listing them walks every module
            self._weights = (self.model, [*self.model.parameters(), *self.model.buffers()])
        key = (id(self.model), *(t._version for t in self._weights[1]))   # _version: changed in place
        if getattr(self, "_fast", (None,))[0] != key:
            with torch.inference_mode(False), torch.no_grad():
                self._fast = (key, for_inference(self.model))
        return self._fast[1]

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
                     lon=None, footprint_km=None, altitude_km: float | None = None) -> Iterator[list[Prediction]]:
        """Like predict, yielding one list of results per batch (memory stays bounded).

        Files whose (path, sha256) is in ``done`` are skipped unread beyond their bytes.
        ``footprint_km``: the ground each image covers, km across (one for all, one per source with None where
        unknown, or "auto" to average over ``FOOTPRINTS``); ``altitude_km``: the height photos were taken
        from, which with their EXIF focal length gives the footprint of those not told.
        """
        if isinstance(sources, (str, Path, Image.Image, np.ndarray)):
            sources = [sources]
        sources = list(sources)
        told = per_image_hemispheres(hemisphere, len(sources))
        lats = per_image_coordinates(lat, len(sources), "lat", 90)
        lons = per_image_coordinates(lon, len(sources), "lon", 180)
        multiscale = isinstance(footprint_km, str)
        if multiscale and footprint_km != "auto":
            raise SettingError("footprint_km", f"footprint_km: a number of km, or 'auto', not {footprint_km!r}")
        footprints = per_image_footprints(None if multiscale else footprint_km, len(sources))
        if (multiscale or altitude_km is not None or any(f is not None for f in footprints)) \
                and self.km_per_pixel is None:
            raise SettingError("footprint_km", "footprint_km: this model does not know the ground scale it "
                                               "learnt (km_per_pixel); predict without a footprint")
        job = functools.partial(prepare, image_size=self.image_size, scene=scene, max_pixels=max_pixels,
                                done=None if workers > 1 else frozenset(done))
        bar = tqdm(total=len(sources), unit="img", disable=not progress, file=sys.stderr, smoothing=0.1)
        batch: list[Prepared] = []
        stream = ordered_map(job, sources, workers, 4 * batch_size, done)
        try:
            for source, ready, given, given_lat, given_lon, footprint in zip(sources, stream, told, lats, lons,
                                                                              footprints):
                if given_lat is not None:   # a place told overrides the file's own GPS, both parts of it
                    ready.lat, ready.lon = given_lat, given_lon
                ready.footprint_km = footprint if footprint is not None else _from_focal(ready, altitude_km)
                ready.hemisphere = given or hemisphere_of(ready.lat) or self.hemisphere
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
                    yield self._batch_results(batch, tta, multiscale)
                    bar.update(len(batch))
                    batch = []
            if batch:
                yield self._batch_results(batch, tta, multiscale)
                bar.update(len(batch))
        finally:
            stream.close()   # an interrupt between two images still stops the workers at once
            bar.close()

    def iter_predict(self, sources, *args, **kwargs) -> Iterator[Prediction]:
        """Like predict, yielding results one by one as their batch is done."""
        for batch in self.iter_batches(sources, *args, **kwargs):
            yield from batch

    def _batch_results(self, batch: list[Prepared], tta: bool, multiscale: bool = False) -> list[Prediction]:
        """``_results``, a few images on one CPU thread: for them PyTorch's threads cost more than they save.
        One 64 px photo took 10 ms in one thread and 18 to 45 ms in two (bench/predict.py, 2 cores with
        another job running), its eval transform 0.8 ms and 2.9: every small operation waits for both."""
        if self.device.type != "cpu" or len(batch) >= FEW or torch.get_num_threads() == 1:
            return self._results(batch, tta, multiscale)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return self._results(batch, tta, multiscale)
        finally:
            torch.set_num_threads(threads)

    def _views(self, batch: list[Prepared], multiscale: bool) -> list[list]:
        """The images the model sees, one list per scale: each at its footprint (as it is where unknown),
        or, ``multiscale`` (footprint_km="auto"), as it is and at each of ``auto_footprints()``."""
        def at(image, footprint_km):
            return presets.at_footprint(image, footprint_km, self.km_per_pixel, self.smallest_view)

        if multiscale:
            return [[p.image for p in batch], *[[at(p.image, f) for p in batch] for f in self.auto_footprints()]]
        return [[p.image if p.footprint_km is None else at(p.image, p.footprint_km) for p in batch]]

    @functools.cached_property
    def smallest_view(self) -> int | None:
        """The fewest map pixels across any view it learnt from (``smallest_view_of``); None where the ground scale
        is unknown. Worked out when a footprint first needs it."""
        return None if self.km_per_pixel is None else smallest_view_of(self.meta)

    def auto_footprints(self) -> list[float]:
        """The footprints (km) ``footprint_km="auto"`` tries besides the image as it is: ``FOOTPRINTS``, each no
        finer than the smallest view the model learnt from, each once."""
        finest = self.smallest_view * self.km_per_pixel
        return sorted({max(f, finest) for f in FOOTPRINTS}, reverse=True)

    def _results(self, batch: list[Prepared], tta: bool, multiscale: bool = False) -> list[Prediction]:
        views = self._views(batch, multiscale)
        probs, scores = None, None
        for view in views:
            tensors = torch.stack([self.transform(image) for image in view])   # (B, 3, S, S)
            p, s = self._forward(tensors, tta)
            # The familiarity is the first view's: the image at its footprint, or as it is.
            probs, scores = (p, s) if probs is None else ({t: probs[t] + p[t] for t in p}, scores)
        probs = {t: v / len(views) for t, v in probs.items()}
        image_biome = probs["biome"]   # before the place: explain's figure shows the image's answer beside it
        seasons = self.season_probabilities(probs["month"])      # (B, 4)
        if self.geo:   # where the place is known, the biome is given it too (geoprior)
            lats = [np.nan if p.lat is None else p.lat for p in batch]
            lons = [np.nan if p.lon is None else p.lon for p in batch]
            # An image unlike the training data says less against the place (geoprior's image weight).
            distances = None if scores is None else self.familiarity.relative(scores)
            biome = self.geo.apply(probs["biome"].numpy(), lats, lons, self.geo.weight_at(distances, len(batch)))
            probs = {**probs, "biome": torch.from_numpy(biome).to(probs["biome"].dtype)}
        flags = [None] * len(batch)
        if scores is None:
            scores = flags
        else:
            flags = self.familiarity.flags(scores)
        return [prediction_of(p, probs["biome"][i], probs["month"][i], seasons[i],
                              None if flags[i] is None else bool(flags[i]),
                              None if scores[i] is None else float(scores[i]),
                              biomes=self.biomes, months=self.months, month_frame=self.month_frame,
                              hemisphere=self.hemisphere, placed=bool(self.geo),
                              image_biome_p=image_biome[i], camera=self.camera)
                for i, p in enumerate(batch)]


def smallest_view_of(meta: dict) -> int:
    """The fewest map pixels across any view an Earth model learnt from: the smaller of the Earth's tiles
    (``earth.tiles.SCALES``) cropped to the least share of its area that training took (its
    ``augmentation["crop_scale"]``; 32 px and 0.6 give 25 px, 185 km)."""
    from ..earth.tiles import SCALES

    share = ((meta.get("augmentation") or {}).get("crop_scale") or [1.0])[0]
    return max(2, round(min(SCALES) * float(share) ** 0.5))


def per_image_footprints(values, n: int) -> list[float | None]:
    """The ``footprint_km=`` option as one entry per source (None: unknown)."""
    given = [values] * n if values is None or isinstance(values, (int, float)) else list(values)
    if len(given) != n:
        raise SettingError("footprint_km", f"footprint_km: {len(given)} values for {n} images")
    out = [None if v is None or (isinstance(v, float) and np.isnan(v)) else float(v) for v in given]
    bad = [v for v in out if v is not None and not 0 < v < 20000]
    if bad:
        raise SettingError("footprint_km", f"footprint_km: a footprint is a number of km above 0, not {bad[0]}")
    return out


def _from_focal(ready: Prepared, altitude_km: float | None) -> float | None:
    """The footprint of the scene crop from the lens (EXIF, 35 mm terms) and the height, looking straight
    down; None without either."""
    if altitude_km is None or not ready.focal_35mm or not ready.size or not ready.box:
        return None
    frame_km = SENSOR_MM / ready.focal_35mm * altitude_km
    return frame_km * (ready.box[2] - ready.box[0]) / ready.size[0]


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
        from ..model.familiarity import Familiarity
    except ImportError:
        return None
    return Familiarity.from_checkpoint(payload)
