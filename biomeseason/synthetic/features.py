"""What lies on a synthetic scene's ground and above it: land cover coloured by month, burn scars,
desert washes, snow, lakes and rivers with their ice, mud and sandbars, and clouds with their shadows.

Each function reads the scene's month state (``season.month_state``)
and the noise fields of ``terrain``; painters work in place on the
(3, n, n) image.
"""
from __future__ import annotations

import numpy as np

from . import looks
from .season import mix_at, parse_months
from .terrain import grid, patchwork, threshold

CLOUD_HEIGHT = 5.0       # px at 256 px; a cloud's shadow falls CLOUD_HEIGHT / tan(elevation) away
PHASE_BINS = 64          # resolution of the phase field when choosing a class's anchor per pixel

# Values of the phase field at the bin centres: Gaussian for natural cover, uniform for farm fields.
_BIN_GAUSS = (np.arange(PHASE_BINS) + 0.5 - PHASE_BINS // 2) * (6.4 / PHASE_BINS)
_BIN_UNIFORM = (np.arange(PHASE_BINS) + 0.5) / PHASE_BINS


def land_cover(spec, st, h, patch, phase, pal, rng, n, scale):
    """Class index per pixel (n, n) from the cover rules, and the base colours (3, n, n)."""
    cover, crops = spec["cover"], spec.get("crops", [])
    fields = {"height": h, "patch": patch}
    cls = np.full((n, n), len(cover) - 1, np.int16)
    taken = np.zeros((n, n), bool)
    field_phase = None
    for k, (_name, field, lo, hi, _vis, _seq) in enumerate(cover):
        if field == "rest":
            continue
        lo, hi = lo + rng.normal(0, 0.03) * (lo > 0), hi + rng.normal(0, 0.03) * (hi < 1)
        if field == "fields":   # farm patchwork: a share `hi` of the grid cells
            kind, share, field_phase = patchwork(rng, n, scale, len(crops))
            m = ~taken & (share < hi)
            cls[m] = len(cover) + kind[m]
        else:
            m = ~taken & (fields[field] >= threshold(lo)) & (fields[field] < threshold(hi))
            cls[m] = k
        taken |= m

    # Colour: each class mixes its month's anchors over patches of the phase field
    # (farm fields turn field by field, with a uniform phase per field). A table
    # (class, phase bin) -> palette row does it in one lookup.
    seqs = [c[5] for c in cover] + crops
    table = np.zeros((len(seqs), PHASE_BINS, 3), np.float32)
    for k, seq in enumerate(seqs):
        if seq:
            names, cum = mix_at(parse_months(seq), st["pday"])
            crop = k >= len(cover)
            cuts = cum[:-1] if crop else [threshold(c) for c in cum[:-1]]
            which = np.searchsorted(cuts, _BIN_UNIFORM if crop else _BIN_GAUSS)   # anchor per bin
            table[k] = np.asarray([pal[a] for a in names])[which]
    bins = np.clip(phase * np.float32(PHASE_BINS / 6.4) + PHASE_BINS // 2, 0, PHASE_BINS - 1).astype(np.int32)
    if field_phase is not None:
        crop = cls >= len(cover)
        bins[crop] = (field_phase[crop] * PHASE_BINS).astype(np.int32)
    bins += cls * PHASE_BINS
    # Channel-first (3, n, n) from here: whole-plane arithmetic is much faster than on (n, n, 3).
    return cls, np.take(table.reshape(-1, 3).T, bins, axis=1)


def seasonal_marks(biome, spec, st, cls, img, h, river, patch, phase, aux, pal, rng):
    """Burn scars, desert wash greening and playa water, painted into `img`; returns the snow
    cover (n, n) in 0..1, or None when there is none."""
    if biome == "desert":
        # Washes (dry channels) green briefly after winter rain; the playa floods shallowly.
        wash = np.abs(river) < 0.06 * rng.uniform(0.7, 1.3)
        _paint(img, wash, pal["green"], 0.8 * st["wash_green"])
        if st["playa_water"] > 0:
            # Storm water gathers in the lowest part of the playa (Lake Manly).
            _paint(img, (cls == 0) & (h < threshold(spec["cover"][0][3] * st["playa_water"])), pal["playa_water"])
    if biome == "tropical_grassland":
        # Scattered trees dot the open grass (acacia savanna); their crowns stay darker than the grass.
        trees = (cls == len(spec["cover"]) - 1) & (aux > threshold(1 - rng.uniform(0.06, 0.16)))
        _paint(img, trees, pal["acacia"], 0.7)
    if st["burn"] > 0:
        grass = cls == len(spec["cover"]) - 1
        _paint(img, grass & (patch * 0.6 + aux * 0.5 + phase * 0.6 > threshold(1 - st["burn"])), pal["burnt"], 0.7)
    if st["snow"] == 0:
        return None
    # Snow lies on high ground first where snow_by_height is large, else in patches;
    # canopies hide part of it (dark conifers speckle the white).
    w = spec["snow_by_height"]
    f = (w * h + (1 - w) * (0.94 * phase + 0.35 * aux)) * np.float32(1 / np.hypot(w, 1 - w))
    alpha = np.clip((f - np.float32(threshold(1 - st["snow"]))) * 4 + 0.5, 0, 1)
    vis = np.asarray([c[4] for c in spec["cover"]] + [1.0] * len(spec.get("crops", [])), np.float32)
    return alpha * vis[cls]


def _paint(img, mask, colour, amount=1.0):
    """Blend `colour` into the (3, n, n) image where `mask` is set (amount 1 = replace)."""
    w = mask * np.float32(amount)
    img += w * (colour[:, None, None] - img)


def paint_water(spec, st, img, h, channel, phase, tex, aux, pal, rng, n):
    """Paint lakes (lowest ground) and rivers (their channels) into `img`; ice, mud, floods and
    sandbars by month. Returns the water mask."""
    level = st["river_level"]
    share = spec["water"] * rng.uniform(0.3, 1.7) * (st["lakes"] if "lakes" in spec else 1)   # seasonal pans
    water = h < threshold(share) if share else np.zeros((n, n), bool)
    if spec.get("ring", 0) > rng.random():   # the Manicouagan crater's annular lake
        yy, xx = grid(n)
        cy, cx = rng.uniform(0.3, 0.7, 2) * n
        r = np.sqrt((yy - cy) ** 2 + (xx - cx) ** 2) + 0.04 * n * tex
        water |= np.abs(r - rng.uniform(0.25, 0.4) * n) < rng.uniform(0.02, 0.035) * n
    bars = None
    if channel is not None:
        water |= channel < 1
        if level > 0:   # high water floods the swamp forest beside the channel; low water bares sandbars
            flood = (channel < 4) & (h < threshold(0.05 + 0.35 * level ** 2)) & ~water
            _paint(img, flood, pal["water"], 0.5)
            bars = (channel < 0.7) & (tex * 0.5 + aux * 0.5 > 1.2 + 1.5 * level)
    if st["ice"] > 0:   # ice breaks up in floes; snow on the ice makes it white
        frozen = water & (0.97 * phase + 0.25 * aux < threshold(st["ice"]))
        _paint(img, frozen, pal["ice"] + np.float32(st["snow"]) * (pal["snow"] - pal["ice"]))
        water_open = water & ~frozen
    else:
        water_open = water
    _paint(img, water_open, (1 - level) * pal["water"] + level * pal["turbid"])
    if bars is not None:
        _paint(img, bars, pal["sand"])
        water &= ~bars
    return water


def clouds(st, cloud, cells, aux, rng, n):
    """Cloud opacity, brightness and shadow, (n, n) each; (None, None, None) on a clear day.

    Large systems or small cumulus cells by month, thin veils or thick decks;
    shadows fall further from their clouds when the sun is low. Many scenes
    are clear whatever the month: composites and most photos pick clear days.
    """
    cover = min(st["cloud"], looks.MAX_CLOUD)
    if cover < 0.01 or rng.random() < looks.CLEAR_SHARE:
        return None, None, None
    w = np.float32(st["cells"])
    c = (cloud * (1 - w) + cells * w) * np.float32(1 / np.hypot(w, 1 - w))
    thick = np.maximum(c - np.float32(threshold(1 - cover)), 0)   # optical depth above the cloud base
    alpha = thick / (thick + np.float32(0.4)) * np.float32(rng.uniform(*looks.THIN_CLOUD))
    d = CLOUD_HEIGHT * n / 256 / np.tan(np.radians(st["elev"]))
    az = rng.uniform(0, 2 * np.pi)
    shadow = np.roll(alpha, (int(round(d * np.sin(az))), int(round(d * np.cos(az)))), (0, 1))
    # Thick cores are whiter than thin edges.
    tone = np.float32(0.8) + np.float32(0.2) * np.minimum(thick, 1) + np.float32(0.03) * aux
    return alpha, tone, shadow
