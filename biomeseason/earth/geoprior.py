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

Stored in a checkpoint as ``meta["geo_prior"]`` (settings, biomes, the latitude
table) and ``extra["geo_place"]`` ((180, 360, n_biomes) float16 shares, rows
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

    def __init__(self, biomes, lat_share, place_share=None, floor: float = FLOOR, radius_km: float = RADIUS_KM):
        self.biomes = list(biomes)
        self.lat_share = np.asarray(lat_share, dtype=np.float64)                 # (180, B), row 0 = 89.5 N
        self.place_share = None if place_share is None else np.asarray(place_share, dtype=np.float32)
        self.floor, self.radius_km = float(floor), float(radius_km)

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

    def apply(self, probs, lats, lons=None) -> np.ndarray:
        """Biome probabilities, (B,) or (n, B), given the place too (Bayes' rule); rows whose latitude is
        unknown are left as they are. The input is not changed."""
        p = np.array(probs, dtype=float, ndmin=2)
        like = self.likelihood(np.broadcast_to(np.asarray(lats, dtype=float), p.shape[:1]),
                               None if lons is None else np.broadcast_to(np.asarray(lons, dtype=float), p.shape[:1]))
        known = ~np.isnan(like).any(axis=1)
        p[known] *= like[known]
        p[known] /= p[known].sum(axis=1, keepdims=True)
        return p if np.ndim(probs) == 2 else p[0]

    # -- checkpoint
    def to_checkpoint(self) -> tuple[dict, dict]:
        """(JSON metadata, named tensors) for ``save_checkpoint(meta=..., extra=...)``."""
        import torch

        meta = {"source": SOURCE, "biomes": self.biomes, "floor": self.floor, "radius_km": self.radius_km,
                "smooth_degrees": SMOOTH, "lat_share": np.round(self.lat_share, 4).tolist()}
        extra = {} if self.place_share is None else {"geo_place": torch.from_numpy(self.place_share.astype(np.float16))}
        return meta, extra

    @classmethod
    def from_checkpoint(cls, payload: dict) -> GeoPrior | None:
        meta = (payload.get("meta") or {}).get("geo_prior")
        if not meta:
            return None
        place = (payload.get("extra") or {}).get("geo_place")
        return cls(meta["biomes"], meta["lat_share"], None if place is None else place.float().numpy(),
                   meta.get("floor", FLOOR), meta.get("radius_km", RADIUS_KM))


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
