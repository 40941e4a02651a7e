"""Where a photo was taken: a latitude prior on the biome.

A biome is, before anything else, a matter of latitude: tundra lies north of
the boreal forest, a savanna is tropical, a temperate grassland is not. When
the training images carry their latitude (a ``lat`` column of the labels
CSV), training fits, per biome, how likely each latitude is (a Gaussian
kernel density over the training images' absolute latitudes, ``SIGMA``
degrees wide) and stores it in the checkpoint. At prediction, an image whose
latitude is known (``predict --lat``, EXIF GPS) gets its biome probabilities
multiplied by that likelihood and renormalised: Bayes' rule with the image
model's answer as the prior. So a snowy plain at 48 N is told from tundra,
and a dry savanna at 12 N from a prairie, which the image alone cannot do.

The likelihood of each latitude is taken relative to the most likely biome
there and never drops below ``FLOOR``, so a biome seen only far from the
photo's latitude is made less likely, not impossible: the training regions
of a small data set do not cover every place a biome grows. Climate is about
symmetric across the equator, so absolute latitude is used.
"""
from __future__ import annotations

import numpy as np

SIGMA = 5.0        # degrees: the kernel's width
FLOOR = 0.05       # the least likelihood ratio a latitude can give a biome
MIN_PER_BIOME = 10  # training images with a latitude every biome needs, or no prior is fitted
DEGREES = np.arange(91)


def fit(lats, biomes, classes: list[str], sigma: float = SIGMA, floor: float = FLOOR,
        min_per_biome: int | None = None) -> tuple[dict | None, str]:
    """(the prior for a checkpoint, or None; a line that says what was fitted or why not).

    ``lats``: one latitude per training image (NaN where unknown), ``biomes``: its biome ('' unknown).
    """
    min_per_biome = MIN_PER_BIOME if min_per_biome is None else min_per_biome
    lats = np.abs(np.asarray(lats, dtype=float))
    biomes = np.asarray(biomes, dtype=object)
    known = ~np.isnan(lats) & (biomes != "")
    counts = {b: int((known & (biomes == b)).sum()) for b in classes}
    short = [b for b, n in counts.items() if n < min_per_biome]
    if not known.any():
        return None, "no latitude prior: the training images carry no latitude (a lat column or EXIF GPS)"
    if short:
        return None, (f"no latitude prior: {len(short)} of {len(classes)} biomes have fewer than "
                      f"{min_per_biome} training images with a latitude ({', '.join(short[:3])})")
    density = np.empty((len(DEGREES), len(classes)))
    for j, b in enumerate(classes):
        a = lats[known & (biomes == b)]
        k = np.exp(-0.5 * ((DEGREES[:, None] - a[None, :]) / sigma) ** 2).sum(axis=1)
        density[:, j] = k / k.sum()
    ratio = density / density.max(axis=1, keepdims=True)
    table = (1 - floor) * ratio + floor
    prior = {"sigma": sigma, "floor": floor, "biomes": list(classes), "counts": counts,
             "likelihood": np.round(table, 4).tolist()}
    return prior, (f"latitude prior fitted on {int(known.sum())} training images "
                   f"(|lat| {lats[known].min():.0f}-{lats[known].max():.0f}°, kernel {sigma:g}°)")


def likelihood(prior: dict, lat) -> np.ndarray:
    """Per biome (the prior's order), the likelihood ratio of latitude ``lat`` (degrees, either sign;
    one, or an array of them: one row each)."""
    lat = np.asarray(lat, dtype=float)
    if (np.abs(lat) > 90).any():
        raise ValueError(f"latitude must be within -90..90 degrees, not {lat[np.abs(lat) > 90].flat[0]}")
    return np.asarray(prior["likelihood"])[np.rint(np.abs(lat)).astype(int)]


def apply(probs, prior: dict, lats) -> np.ndarray:
    """Biome probabilities, (n_biomes,) or (n, n_biomes), given the latitude too: each row multiplied by
    its latitude's likelihood and renormalised. ``lats``: one, or one per row; NaN leaves a row as it is."""
    p = np.array(probs, dtype=float, ndmin=2)
    lat = np.broadcast_to(np.asarray(lats, dtype=float), p.shape[:1])
    known = ~np.isnan(lat)
    p[known] *= likelihood(prior, lat[known])
    p[known] /= p[known].sum(axis=1, keepdims=True)
    return p if np.ndim(probs) == 2 else p[0]
