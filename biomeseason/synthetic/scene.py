"""One synthetic scene of a biome in a month, as an RGB array (``render_scene``).

How a scene is made
-------------------
Eight Gaussian noise fields come from four inverse FFTs of random spectra
(spectral synthesis): fractal terrain and a drainage field (desert washes),
land-cover patches and large cloud systems, a phase field that decides
which pixels of a class have already turned (green-up and leaf colour
advance in patches, not everywhere at once) and small cumulus cells, and
fine texture. A meandering river, sometimes with a tributary, carves its
valley; lakes fill the lowest ground; farm fields are a rotated grid.
The ground's colours are then matched to real imagery (``looks``)
and only after that is the terrain hill-shaded with the sun's noon elevation
for the reference place and the day of the year, which also sets the length
of cloud shadows: a low winter sun means stronger relief and shadows further
from their clouds, a cue the colour match would otherwise erase. Scale,
rotation (ridges, rivers, fields), cover shares, relief, exposure and every
colour anchor vary per image, so a classifier has to learn more than one
mean colour.
"""
from __future__ import annotations

import numpy as np

from . import looks
from .biomes import BIOMES, FILE_PREFIX, HAZE_COLOURS
from .features import clouds, land_cover, paint_water, seasonal_marks
from .season import month_state, palette
from .terrain import grid, hillshade, noise_pair, river_distance

SCALE_MIN, SCALE_STEP, SCALE_STEPS = 0.6, 1.15, 12   # ground scale 0.6 .. 2.8 (features per image)
HAZE_SCALE = 0.4         # of the month tables' haze: the measured colours come from haze-free composites
VALLEY_DEPTH = 0.8       # how deep rivers cut into the terrain (terrain std units)


def render_scene(biome: str, month: int, seed, size: int = 256, look: str = "mixed") -> np.ndarray:
    """One scene of `biome` in `month` (1..12) as a (size, size, 3) uint8 RGB array.

    `look` is "nadir" (straight down), "orbital" (oblique, often with the
    horizon) or "mixed" (one of them per scene). `seed` is an int, a
    SeedSequence or a Generator; the same seed gives the same array.
    """
    if biome not in BIOMES:
        raise ValueError(f"unknown biome {biome!r}; expected one of {list(BIOMES)}")
    if not 1 <= int(month) <= 12:
        raise ValueError(f"month must be 1..12, got {month}")
    rng = _seed_rng(seed)
    view = looks.choose_view(look, rng)
    size = int(size)
    spec, n = BIOMES[biome], looks.render_side(size, rng)
    st = month_state(spec, int(month), rng)
    pal = palette(rng)

    # Eight unit-std noise fields, two per inverse FFT; `scale` zooms the scene, from a
    # valley to a whole region (in steps, so spectra can be cached per scale).
    scale = SCALE_MIN * SCALE_STEP ** rng.integers(0, SCALE_STEPS)
    ridges = (rng.uniform(0, np.pi), rng.uniform(*spec["ridges"])) if "ridges" in spec else None
    h, river = noise_pair(rng, n, 2.4, 2.5 * scale, 0.25, ridges)    # terrain, drainage
    patch, cloud = noise_pair(rng, n, 1.9, 3.0 * scale, 0.5)         # land-cover patches, cloud systems
    phase, cells = noise_pair(rng, n, 1.8, 9.0 * scale, 0.5, exact=False)   # who turns first, cumulus
    tex, aux = noise_pair(rng, n, 1.0, 40.0 * scale, 0.5, exact=False)      # fine texture, detail
    if spec.get("crests"):   # sharp mountain crests: ridged noise (peaks along the zero lines of `patch`)
        h = h + np.float32(spec["crests"]) * (1 - np.float32(1.6) * np.abs(patch))
        h = (h - h.mean()) / h[::4, ::4].std()

    # A meandering river (and maybe a tributary) cuts a valley, so it shades as one;
    # `river` stays the drainage field for desert washes.
    width = spec["rivers"] * n / 256 / scale * rng.uniform(0.7, 1.3) * (1 + st["river_level"])
    channel = river_distance(rng, n, width) if width else None      # distance / half-width
    if channel is not None:
        h = h - np.float32(VALLEY_DEPTH) * np.maximum(0, 1 - channel * np.float32(1 / 6))

    cls, img = land_cover(spec, st, h, patch, phase, pal, rng, n, scale)   # (n, n), (3, n, n)
    snow = seasonal_marks(biome, spec, st, cls, img, h, river, patch, phase, aux, pal, rng)
    water = paint_water(spec, st, img, h, channel, phase, tex, aux, pal, rng, n)

    # Soft texture in the cover (seen from orbit, mostly faint), then snow on top.
    grain = 1 + np.float32(spec["texture"] * rng.uniform(0.2, 1.0)) * tex
    grain[water] = 1
    img *= grain
    if snow is not None:
        snow[water] = 0
        img += snow * (grain * pal["snow"][:, None, None] - img)

    # Colours as measured on real imagery of this biome and month; the sun lights the
    # relief after that, so the season's sun height (long winter shadows, flat summer
    # light) survives the colour match. Flat ground and water keep their brightness.
    img = looks.match_colours(img, *looks.colour_target(FILE_PREFIX[biome], st["north_pday"], rng))
    light = hillshade(h + 0.03 * tex, spec["slope"] * rng.uniform(0.1, 1.0), st["elev"], rng)
    light[water] = 1
    img *= light
    looks.glint(img, water, grid(n), rng)
    cloud_a, cloud_tone, shadow = clouds(st, cloud, cells, aux, rng, n)
    if cloud_a is not None:
        img *= 1 - np.float32(looks.SHADOW) * shadow
        img += cloud_a * (cloud_tone * np.float32(looks.CLOUD_WHITE) - img)
    img = looks.haze(img, HAZE_SCALE * st["haze"], HAZE_COLOURS[spec["haze_colour"]], rng)
    return looks.sensor(looks.to_view(img, size, view, rng), rng)   # (size, size, 3)


def _seed_rng(seed) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
