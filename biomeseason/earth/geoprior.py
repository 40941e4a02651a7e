"""Where a photo was taken: the Earth's own prior on its biome, from the label map.

    prior = geoprior.for_biomes(["boreal_forest", ...])     # from data/earth/ (worldmap), or None
    probs = prior.apply(probs, lats=[61.2], lons=[-150.0])   # p(biome | image, place)

The label map (``worldmap.label_map``) gives every land pixel of the Earth a
biome. From it, not from where some training images happen to lie:

* p(biome | latitude): the share of each biome among all labelled land in each
  1-degree band of latitude (signed: the boreal forest has no southern twin),
  smoothed over ``SMOOTH`` degrees;
* p(biome | place): the share of each biome among labelled land within
  ``RADIUS_KM`` of the photo's 1 x 1 degree cell, when its longitude is known too.

Applied by Bayes' rule: the model, trained with every biome weighing alike,
answers p(biome | image) under a flat prior; each probability is multiplied by
its biome's share there and the row renormalised. Shares are taken relative to
the largest and never below ``FLOOR``, so a biome absent from the map around a
photo (the map is of 2019 and of 1-degree cells, not of the photo's exact
ground) is made less likely, never impossible. A place with no labelled land
within the radius (open sea, ice) falls back to its latitude; a latitude with
none (Antarctica) leaves the answer as it is.

How far the image is trusted against the place is learnt, not assumed: the
image's probabilities enter raised to a power ``w`` (a tempered likelihood,
``p(biome | image, place) ~ p(biome | image) ** w * p(biome | place)``), and
``w`` shrinks as the image grows unlike the training data (its familiarity
distance ``d``, 1 = the unfamiliar flag's edge):

    w(d) = weight * min(1, start / d) ** power

fitted on the validation blocks' tiles as they are and through simulated
cameras (``fit_image_weight``, by ``ship``): an unfamiliar photo says less,
so a savanna seen by a strange camera no longer outvotes the map around it.
A prior without it (older checkpoints) takes the image as it is (w = 1).

Stored in a checkpoint as ``meta["geo_prior"]`` (settings, biomes, the latitude
table, ``image_weight``) and ``extra["geo_place"]`` ((180, 360, n_biomes) float16 shares, rows
from 90 N, columns from 180 W; all zero where no land is near).
"""
from __future__ import annotations

import functools

import numpy as np

# p(biome | place): labelled land this close to the photo's cell. Chosen on the Earth tiles of the validation
# blocks (bench/results/earth.md): 150 km gave 0.931 biome accuracy, 300 km 0.903, 600 km 0.842 (floor 0.05).
RADIUS_KM = 150.0
# The least likelihood ratio a place can give a biome. 0.02 scored 0.8 points higher on the validation blocks,
# whose labels come from the same map; 0.05 leaves more room for the map to be wrong about a photo's ground.
FLOOR = 0.05
SMOOTH = 2.0          # degrees: the latitude table's smoothing
KM_PER_DEGREE = 111.2
SOURCE = ("label map of biomeseason.earth.worldmap (MODIS MCD12C1 2019 land cover, Koppen-Geiger climate of "
          "Rubel et al. 2017, latitude) on the Blue Marble grid")


class GeoPrior:
    """p(biome | latitude) and p(biome | place) for a model's biomes, in the model's order."""

    def __init__(self, biomes, lat_share, place_share=None, floor: float = FLOOR, radius_km: float = RADIUS_KM,
                 image_weight: dict | None = None):
        self.biomes = list(biomes)
        self.lat_share = np.asarray(lat_share, dtype=np.float64)                 # (180, B), row 0 = 89.5 N
        self.place_share = None if place_share is None else np.asarray(place_share, dtype=np.float32)
        self.floor, self.radius_km = float(floor), float(radius_km)
        self.image_weight = dict(image_weight) if image_weight else None          # weight, start, power

    def __repr__(self) -> str:
        return (f"GeoPrior({len(self.biomes)} biomes, latitude"
                + (f" and place within {self.radius_km:g} km" if self.place_share is not None else "")
                + f", floor {self.floor:g})")

    # -- use
    def likelihood(self, lats, lons=None) -> np.ndarray:
        """(n, B) likelihood ratios in [floor, 1]; NaN rows where the latitude is unknown or nothing is known
        of it. ``lats``, ``lons``: degrees, NaN (or a None ``lons``) where unknown."""
        lats = np.atleast_1d(np.asarray(lats, dtype=float))
        lons = np.full(lats.shape, np.nan) if lons is None else np.broadcast_to(
            np.asarray(lons, dtype=float), lats.shape)
        for name, values, limit in (("latitude", lats, 90), ("longitude", lons, 180)):
            bad = np.abs(values) > limit
            if bad.any():
                raise ValueError(f"{name} must be within -{limit}..{limit} degrees, not {values[bad][0]}")
        share = np.full((len(lats), len(self.biomes)), np.nan)
        known = ~np.isnan(lats)
        row = np.clip((90 - lats[known]).astype(int), 0, 179)
        share[known] = self.lat_share[row]
        if self.place_share is not None:
            placed = known & ~np.isnan(lons)
            r = np.clip((90 - lats[placed]).astype(int), 0, 179)
            c = np.clip((lons[placed] + 180).astype(int), 0, 359)
            local = self.place_share[r, c].astype(np.float64)
            has_land = local.sum(axis=1) > 0
            rows = np.flatnonzero(placed)[has_land]
            share[rows] = local[has_land]
        top = share.max(axis=1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = np.where(top > 0, share / top, np.nan)
        return (1 - self.floor) * ratio + self.floor

    def weight_at(self, distances=None, n: int = 1) -> np.ndarray:
        """(n,) powers on the image's probabilities (``image_weight``) at these familiarity distances (None:
        unknown, the plain weight); all 1 for a prior without a learnt weight."""
        if distances is not None:
            n = len(distances)
        if not self.image_weight:
            return np.ones(n)
        return image_weight_at(self.image_weight, distances, n)

    def apply(self, probs, lats, lons=None, weights=None) -> np.ndarray:
        """Biome probabilities, (B,) or (n, B), given the place too (Bayes' rule, the image's probabilities
        raised to ``weights``, one per row, default 1); rows whose latitude is unknown are left as they are.
        The input is not changed."""
        p = np.array(probs, dtype=float, ndmin=2)
        like = self.likelihood(np.broadcast_to(np.asarray(lats, dtype=float), p.shape[:1]),
                               None if lons is None else np.broadcast_to(np.asarray(lons, dtype=float), p.shape[:1]))
        out = _fuse(p, like, ~np.isnan(like).any(axis=1), weights)
        return out if np.ndim(probs) == 2 else out[0]

    def place_alone(self, lats, lons=None) -> np.ndarray:
        """(n, B) what the place alone says (the likelihood, normalised); NaN rows where nothing is known."""
        like = self.likelihood(lats, lons)
        return like / like.sum(axis=1, keepdims=True)

    # -- checkpoint
    def to_checkpoint(self) -> tuple[dict, dict]:
        """(JSON metadata, named tensors) for ``save_checkpoint(meta=..., extra=...)``."""
        import torch

        meta = {"source": SOURCE, "biomes": self.biomes, "floor": self.floor, "radius_km": self.radius_km,
                "smooth_degrees": SMOOTH, "lat_share": np.round(self.lat_share, 4).tolist(),
                **({"image_weight": self.image_weight} if self.image_weight else {})}
        extra = {} if self.place_share is None else {"geo_place": torch.from_numpy(self.place_share.astype(np.float16))}
        return meta, extra

    @classmethod
    def from_checkpoint(cls, payload: dict) -> GeoPrior | None:
        meta = (payload.get("meta") or {}).get("geo_prior")
        if not meta:
            return None
        place = (payload.get("extra") or {}).get("geo_place")
        return cls(meta["biomes"], meta["lat_share"], None if place is None else place.float().numpy(),
                   meta.get("floor", FLOOR), meta.get("radius_km", RADIUS_KM), meta.get("image_weight"))


def _fuse(p: np.ndarray, like: np.ndarray, known: np.ndarray, weights) -> np.ndarray:
    """``p ** w * like``, renormalised, on the ``known`` rows; the others as they are."""
    if weights is not None:
        w = np.broadcast_to(np.asarray(weights, dtype=float), p.shape[:1])[known, None]
        # A power of a probability: in logs, so a zero stays a zero and w = 0 leaves the place alone.
        p[known] = np.exp(w * np.log(np.clip(p[known], 1e-12, 1)))
    p[known] *= like[known]
    p[known] /= p[known].sum(axis=1, keepdims=True)
    return p


def image_weight_at(rule: dict, distances=None, n: int = 1) -> np.ndarray:
    """``weight * min(1, start / d) ** power`` per distance (the plain weight where unknown)."""
    weight = float(rule["weight"])
    if distances is None:
        return np.full(n, weight)
    d = np.asarray(distances, dtype=float)
    start, power = float(rule.get("start") or 1.0), float(rule.get("power") or 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        shrink = np.where(np.isfinite(d) & (d > start), (start / d) ** power, 1.0)
    return weight * shrink


# Candidates of the fit: a grid, so the answer is the same on every machine and none is a local optimum.
WEIGHTS = tuple(np.round(np.geomspace(0.05, 2.0, 24), 4))
STARTS = (0.5, 1.0, 1.5, 2.0, 3.0)
POWERS = (0.0, 0.5, 1.0, 2.0, 4.0)


def fit_image_weight(probs, like, distances, labels) -> dict:
    """The image weight rule (``weight``, ``start``, ``power``) that minimises the negative log-likelihood of
    ``labels`` (indices; -1 unknown) under the fused answer; ``probs`` the image's (n, B) probabilities,
    ``like`` the place's (n, B) likelihoods, ``distances`` the images' familiarity distances."""
    probs, like = np.asarray(probs, dtype=float), np.asarray(like, dtype=float)
    labels, d = np.asarray(labels), np.asarray(distances, dtype=float)
    keep = (labels >= 0) & ~np.isnan(like).any(axis=1)
    probs, like, labels, d = probs[keep], like[keep], labels[keep], d[keep]
    if not len(labels):
        return {"weight": 1.0, "start": 1.0, "power": 0.0, "images": 0}
    logp, loglike = np.log(np.clip(probs, 1e-12, 1)), np.log(like)
    rows = np.arange(len(labels))
    best = None
    for start in STARTS:
        for power in POWERS if start == STARTS[0] else POWERS[1:]:   # power 0 is the same rule at every start
            shrink = np.where(d > start, (start / np.maximum(d, 1e-12)) ** power, 1.0)
            for weight in WEIGHTS:
                z = weight * shrink[:, None] * logp + loglike
                z -= z.max(axis=1, keepdims=True)
                nll = float(np.mean(np.log(np.exp(z).sum(axis=1)) - z[rows, labels]))
                if best is None or nll < best[0] - 1e-9:
                    best = (nll, weight, start, power)
    nll, weight, start, power = best
    return {"weight": float(weight), "start": float(start), "power": float(power), "images": int(len(labels)),
            "nll": round(nll, 4)}


# ---------------------------------------------------------------------------- from the map

def from_codes(codes: np.ndarray, codes_of: list[int], biomes: list[str], radius_km: float = RADIUS_KM,
               floor: float = FLOOR) -> GeoPrior:
    """The prior from a global map of codes (rows from 90 N, a whole number of pixels per degree);
    ``codes_of[j]`` is the code of ``biomes[j]``."""
    from scipy.ndimage import gaussian_filter1d

    per = codes.shape[0] // 180
    cells = np.stack([(codes == code).reshape(180, per, 360, per).sum(axis=(1, 3)) for code in codes_of],
                     axis=-1).astype(np.float64)                                            # (180, 360, B)
    by_lat = gaussian_filter1d(cells.sum(axis=1), SMOOTH, axis=0, mode="nearest")        # (180, B)
    return GeoPrior(biomes, _shares(by_lat), _shares(_disc_sums(cells, radius_km)) if radius_km > 0 else None,
                    floor, radius_km)


def _shares(counts: np.ndarray) -> np.ndarray:
    total = counts.sum(axis=-1, keepdims=True)
    return np.divide(counts, total, out=np.zeros_like(counts), where=total > 0)


def _disc_sums(cells: np.ndarray, radius_km: float) -> np.ndarray:
    """Per 1-degree cell, the sum of ``cells`` over the cells whose centres lie within ``radius_km``
    of its centre (longitude wraps round; near the poles a row's whole circle)."""
    n_rows, n_cols = cells.shape[:2]
    centre = 89.5 - np.arange(n_rows)
    # Cumulative sums along longitude over three copies, so a window wraps without a special case.
    cum = np.concatenate([np.zeros_like(cells[:, :1]), np.cumsum(np.concatenate([cells] * 3, axis=1), axis=1)],
                         axis=1)
    whole = cells.sum(axis=1)
    out = np.zeros_like(cells)
    reach = int(radius_km // KM_PER_DEGREE) + 1
    cols = np.arange(n_cols)
    for i in range(n_rows):
        for j in range(max(0, i - reach), min(n_rows, i + reach + 1)):
            dy = abs(i - j) * KM_PER_DEGREE
            if dy > radius_km:
                continue
            half_km = np.sqrt(radius_km ** 2 - dy ** 2)
            k = int(half_km / (KM_PER_DEGREE * max(np.cos(np.radians(centre[j])), 1e-6)))
            if 2 * k + 1 >= n_cols:
                out[i] += whole[j]
            else:
                out[i] += cum[j, n_cols + cols + k + 1] - cum[j, n_cols + cols - k]
    return out


def for_biomes(biomes, radius_km: float = RADIUS_KM, floor: float = FLOOR, folder=None) -> tuple[GeoPrior | None, str]:
    """(the Earth's prior for a model's biomes, or None; a line that says which or why not). Only a
    vocabulary whose every biome the label map knows can be given one."""
    from . import worldmap

    unknown = [b for b in biomes if b not in worldmap.BIOMES]
    if unknown:
        return None, (f"no geographic prior: the label map knows none of {', '.join(unknown[:3])} "
                      f"(it maps the seven biomes of the default vocabulary)")
    try:
        prior = _from_label_map(tuple(biomes), radius_km, floor, folder)
    except FileNotFoundError as e:
        return None, f"no geographic prior: {e}"
    return prior, (f"geographic prior from the label map: p(biome | latitude), and p(biome | place) within "
                   f"{radius_km:g} km where the longitude is known (floor {floor:g})")


@functools.lru_cache(maxsize=4)
def _from_label_map(biomes: tuple, radius_km: float, floor: float, folder) -> GeoPrior:
    from . import worldmap

    return from_codes(worldmap.label_map(folder), [worldmap.BIOMES.index(b) for b in biomes], list(biomes),
                      radius_km, floor)
