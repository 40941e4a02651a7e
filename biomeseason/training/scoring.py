"""How good a model is on real labelled tiles: per region and per biome, with and without the place.

    table = scoring.read_tiles("data/bluemarble/labels.csv")       # the shared tiles
    answers = scoring.predict_tiles(predictor, table)              # one row per tile, image alone
    figures = scoring.figures(answers, predictor, by="region")     # per region, each way of knowing the place

Three ways of answering, each from the same forward pass: ``image`` (the photo
alone), ``lat`` (given its latitude) and ``place`` (given latitude and
longitude), the last two through the model's geographic prior (``geoprior``,
the image weighed by its familiarity); ``map`` is the place alone, no image.
``predict_tiles(..., camera=)`` shows the tiles through a simulated camera
(``model.camera``) first: the same places as another sensor would see them.
Per group of tiles: biome accuracy and macro-F1, month within one month and
season (each tile's calendar months, its hemisphere from its latitude), the
biome's expected calibration error and log loss (the mean of -ln p given to the
true biome: a proper score, so it credits an answer that is surer of the right
biome even where the top answer does not change), the share flagged unfamiliar,
and the share answered wrongly with p > 0.9 and not flagged (the answers that
mislead).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import f1_score

from ..labels import Vocabulary, season_of
from ..model import calibration as C
from .metrics import circular_distance

ALL_WAYS = ("image", "map", "lat", "place")
CONFIDENT = 0.9


def read_tiles(labels_csv, root=None, vocab: Vocabulary | None = None) -> pd.DataFrame:
    """A labels CSV (path, biome, month, lat, lon, ...) with canonical biome names and each tile's file (its path
    below ``root``, default the CSV's folder); rows without a biome are left out."""
    folder = Path(root or Path(labels_csv).parent)
    table = pd.read_csv(labels_csv, dtype={"biome": str}, keep_default_na=False)
    vocab = vocab or Vocabulary.load()
    table = table[table["biome"] != ""].copy()
    table["biome"] = [vocab.resolve(b, fuzzy=False).biome for b in table["biome"]]
    table["file"] = [str(folder / p) for p in table["path"]]
    return table.reset_index(drop=True)


def predict_tiles(predictor, table: pd.DataFrame, batch_size: int = 256, progress: bool = False,
                  camera=None, seed: int = 0, scene: bool = False, **options) -> pd.DataFrame:
    """``table`` with, per tile, the image-alone biome probabilities (``p_<biome>``), the calendar month
    probabilities (``m_<1..12>``) in the tile's hemisphere, the unfamiliar flag and the familiarity score.
    ``camera``: a ``model.camera.Camera`` each tile is seen through first (seeded by ``seed``); ``options``
    go to ``predictor.predict`` (``footprint_km=``, ...)."""
    hemispheres = ["south" if lat < 0 else "north" for lat in table["lat"]]
    sources = list(table["file"]) if camera is None else camera_views(list(table["file"]), camera, seed)
    results = predictor.predict(sources, batch_size=batch_size, progress=progress, scene=scene,
                                hemisphere=hemispheres, lat=None, **options)
    out = table.copy()
    for b in predictor.biomes:
        out[f"p_{b}"] = [r.biome_probs[b] for r in results]
    for m in range(1, 13):
        out[f"m_{m}"] = [r.month_probs.get(m, 0.0) for r in results]
    out["unfamiliar"] = [bool(r.unfamiliar) for r in results]
    out["familiarity"] = [np.nan if r.familiarity_score is None else r.familiarity_score for r in results]
    out["hemisphere"] = hemispheres
    return out


def camera_views(paths: list, camera, seed: int = 0) -> list[np.ndarray]:
    """Each image as ``camera`` (a ``model.camera.Camera``) shows it: (h, w, 3) uint8 arrays, the same for a
    seed."""
    import torch

    from ..io.images import read_image

    generator = torch.Generator().manual_seed(seed)
    out = []
    for path in paths:
        x = torch.from_numpy(np.array(read_image(path).image)).permute(2, 0, 1)            # (3, H, W) uint8
        out.append(camera(x, generator).permute(1, 2, 0).numpy())
    return out


def distances(answers: pd.DataFrame, predictor) -> np.ndarray | None:
    """Each tile's familiarity distance (1 = the flag's edge); None without a familiarity score."""
    if predictor.familiarity is None or "familiarity" not in answers or answers["familiarity"].isna().all():
        return None
    return predictor.familiarity.relative(answers["familiarity"].to_numpy(dtype=float))


def biome_probs(answers: pd.DataFrame, predictor, way: str) -> np.ndarray:
    """(n, B) biome probabilities answered the given way (``ALL_WAYS``)."""
    p = answers[[f"p_{b}" for b in predictor.biomes]].to_numpy(dtype=float)
    if way == "image" or predictor.geo is None:
        return p
    lats = answers["lat"].to_numpy(dtype=float)
    lons = answers["lon"].to_numpy(dtype=float) if way in ("place", "map") and "lon" in answers else None
    if way == "map":
        return np.nan_to_num(predictor.geo.place_alone(lats, lons), nan=1 / len(predictor.biomes))
    return predictor.geo.apply(p, lats, lons, predictor.geo.weight_at(distances(answers, predictor), len(p)))


def true_losses(probs: np.ndarray, true: np.ndarray) -> np.ndarray:
    """Per row, -ln of the probability given to the true class (``true``: indices), each row renormalised;
    their mean is the log loss."""
    p = probs[np.arange(len(true)), true] / probs.sum(axis=1)
    return -np.log(np.clip(p, 1e-12, 1))


def scores(answers: pd.DataFrame, probs: np.ndarray, biomes: list[str]) -> dict:
    """The figures of one group of tiles (rows of ``answers``, ``probs`` aligned with them)."""
    true = np.array([biomes.index(b) for b in answers["biome"]])
    pred = probs.argmax(1)
    months = answers[[f"m_{m}" for m in range(1, 13)]].to_numpy(dtype=float).argmax(1) + 1
    truth = answers["month"].astype(int).to_numpy()
    seasons = [season_of(int(p), h) == season_of(int(t), h) for p, t, h in zip(months, truth, answers["hemisphere"])]
    flagged = answers["unfamiliar"].to_numpy(dtype=bool)
    misleading = (pred != true) & (probs.max(1) > CONFIDENT) & ~flagged
    return {"tiles": len(answers), "biome_acc": float((pred == true).mean()),
            "biome_f1": float(f1_score(true, pred, labels=sorted(set(true)), average="macro", zero_division=0)),
            "month_within1": float((circular_distance(months, truth) <= 1).mean()),
            "season_acc": float(np.mean(seasons)), "biome_ece": C.ece(probs, true),
            "biome_nll": float(true_losses(probs, true).mean()),
            "flagged": float(flagged.mean()), "wrong_p90_unflagged": float(misleading.mean())}


def figures(answers: pd.DataFrame, predictor, by: str | None = None, ways=ALL_WAYS) -> pd.DataFrame:
    """One row per way of answering and group (``by`` a column such as region or biome; 'all' first)."""
    rows = []
    for way in ways:
        if way != "image" and predictor.geo is None:
            continue
        probs = biome_probs(answers, predictor, way)
        groups = [("all", np.arange(len(answers)))]
        if by:
            values = answers[by].to_numpy()
            groups += [(value, np.flatnonzero(values == value)) for value in sorted(set(values))]
        for value, idx in groups:
            rows.append({"way": way, by or "group": value,
                         **scores(answers.iloc[idx], probs[idx], predictor.biomes)})
    return pd.DataFrame(rows)
