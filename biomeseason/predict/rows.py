"""What the model's probabilities say about one image: the ``Prediction`` record, its CSV row
(``COLUMNS``), and how the month head's outputs become the image's calendar months and season in
its hemisphere.

``Predictor`` (predict.py) turns a batch of images into calibrated probabilities; ``prediction_of``
turns one image's share of them into a Prediction. The ``hemisphere=``, ``lat=`` and ``lon=``
options of ``Predictor.predict`` are read here too (``per_image_hemispheres``,
``per_image_coordinates``): they decide which hemisphere's calendar an answer is in.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from ..labels import HEMISPHERES, MONTH_ABBR, SEASONS, north_month, season_of
from .scene import Prepared

TOP_K = 3
UNFAMILIAR_WARNING = ("this image does not look like anything the model was trained on; "
                      "treat the answer with care")


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
    # The biome from the image alone, before the place was given (equal to biome_probs when none was):
    # what a figure shows beside the place's own answer.
    image_biome_probs: dict[str, float] | None = field(default=None, repr=False)
    camera: str | None = None                    # the model's camera kind that answered (model.kinds); None: one kind

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
               "camera": self.camera or "",
               "scene_box": ",".join(map(str, self.scene_box)) if self.scene_box else "",
               "sha256": self.sha256}
        for head, top in (("biome", self.biome_top), ("month", self.month_top)):
            for rank, (label, p) in enumerate(top, start=1):
                row[f"{head}_top{rank}"] = label
                row[f"{head}_top{rank}_p"] = round(p, 4)
        return row


COLUMNS = ["path", "biome", "biome_p", "month", "month_p", "season", "season_p", "hemisphere", "lat", "lon",
           "unfamiliar", "familiarity", "camera", "scene_box",
           *(f"{head}_top{rank}{p}" for head in ("biome", "month") for rank in range(1, TOP_K + 1)
             for p in ("", "_p")), "sha256"]
OUR_HEADER = COLUMNS[:6]   # how a predictions CSV of ours begins, in every version

def prediction_of(prepared: Prepared, biome_p: torch.Tensor, month_p: torch.Tensor, season_p: torch.Tensor,
                  unfamiliar: bool | None, score: float | None, *, biomes: list[str], months: list[int],
                  month_frame: str | None, hemisphere: str, placed: bool,
                  image_biome_p: torch.Tensor | None = None, camera: str | None = None) -> Prediction:
    """One image's probabilities ((nb,), (12,), (4,)) as its Prediction.

    ``biomes`` and ``months`` label the heads' outputs; with a ``month_frame`` the month head
    answers northern-equivalent months, turned into the image's calendar months in its own
    hemisphere, else calendar months of the model's ``hemisphere``. ``placed``: the biome was
    given the image's place (geoprior), so the answer records it; ``image_biome_p``: the biome
    probabilities before the place was given (None: ``biome_p`` is the image's alone); ``camera``: the
    model's camera kind that answered (None: a model of one kind).
    """
    biome_probs = dict(zip(biomes, biome_p.tolist()))
    hemisphere = prepared.hemisphere if month_frame else hemisphere
    months = [north_month(m, hemisphere) for m in months] if month_frame else months
    month_probs = dict(sorted(zip(months, month_p.tolist())))
    season_probs = dict(zip(SEASONS, season_p.tolist()))
    biome_top = top(biome_probs)
    month_top = top(month_probs)
    month = month_top[0][0]
    season = season_of(month, hemisphere)
    return Prediction(prepared.name, biome_top[0][0], biome_top[0][1], month, month_top[0][1],
                      season, season_probs[season], biome_top, month_top,
                      biome_probs, month_probs, season_probs, unfamiliar, score,
                      prepared.box, prepared.size, prepared.sha256, prepared.notes, hemisphere,
                      prepared.lat if placed else None,
                      prepared.lon if placed and prepared.lat is not None else None,
                      dict(zip(biomes, (biome_p if image_biome_p is None else image_biome_p).tolist())), camera)


def top(probs: dict, k: int = TOP_K) -> list[tuple]:
    return sorted(probs.items(), key=lambda kv: kv[1], reverse=True)[:k]


# --------------------------------------------------------------------------- where the images were taken

class SettingError(ValueError):
    """A ``hemisphere=`` or ``lat=`` value that cannot be used; ``setting`` says which."""

    def __init__(self, setting: str, message: str):
        super().__init__(message)
        self.setting = setting


def per_image_hemispheres(hemisphere, n: int) -> list[str | None]:
    """The ``hemisphere=`` option as one entry per source (None: the image's own, else the model's)."""
    given = [hemisphere] * n if hemisphere is None or isinstance(hemisphere, str) else list(hemisphere)
    if len(given) != n:
        raise SettingError("hemisphere", f"hemisphere: {len(given)} values for {n} images")
    bad = sorted({h for h in given if h is not None and h not in HEMISPHERES})
    if bad:
        raise SettingError("hemisphere", f"hemisphere must be one of {HEMISPHERES}, not {bad[0]!r}")
    return given


def per_image_coordinates(values, n: int, name: str, limit: float) -> list[float | None]:
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


def hemisphere_of(lat: float | None) -> str | None:
    return None if lat is None else ("south" if lat < 0 else "north")
