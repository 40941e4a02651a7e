"""A synthetic scene's date and what its biome's month tables say for it: day, sun, shares, palette.

Months in the file names are northern-equivalent (``labels.north_month``): a
scene of a biome whose reference place lies south of the equator (the
Serengeti) is that place six months on, so ``TropGrass_Jan`` shows its July
dry season, as the Sahel looks in January. One look has one month label
whichever hemisphere it comes from; prediction turns the month back into a
southern image's calendar month.

Each image draws a day in its month; the month tables in ``BIOMES`` hold
mid-month values and are interpolated to that day (the land's calendar
also shifts by an early or late year), so neighbouring months look alike
and months mirrored about a solstice differ in what the land is doing.
"""
from __future__ import annotations

import functools

import numpy as np

from ..labels import north_month
from .biomes import COLOURS, WHITES

PALETTE_JITTER = 0.05    # per-image relative jitter of each colour anchor's brightness ...
HUE_JITTER = 0.015       # ... and of its channels (white anchors get a fifth of it)
DAY_JITTER = 5.0         # days (sd) by which an early or late year shifts the land's calendar
LAT_JITTER = 4.0         # sd (degrees) of a scene's latitude about the reference place's
SNOW_PER_DEGREE = 0.15   # logit units of snow and ice share per degree poleward
TABLE_JITTER = 0.5       # sd (logit units) of per-image jitter on snow, cloud, haze, burn, ... shares
TABLE_KEYS = ("snow", "ice", "cloud", "cells", "haze", "burn", "wash_green", "playa_water", "river_level",
              "lakes")

_RGB = np.asarray(list(COLOURS.values()), np.float64)
_HUE = np.asarray([[HUE_JITTER * (0.2 if k in WHITES else 1.0)] for k in COLOURS])


@functools.cache
def parse_months(text: str) -> tuple:
    """'leafoff fresh/green ...' -> 12 tuples of anchor names ('a/b' = half the pixels each),
    and each name's rank by first appearance in the year."""
    items = text.split()
    assert len(items) == 12, text
    seq = tuple(tuple(item.split("/")) for item in items)
    return seq, {name: i for i, name in enumerate(dict.fromkeys(x for entry in seq for x in entry))}


def month_state(spec: dict, month: int, rng) -> dict:
    """Scalars for one image: day, sun elevation, and the month tables read at that day, jittered.

    ``month`` is northern-equivalent: the tables and the sun are read at the reference place's own
    calendar month; ``north_pday`` is the day a northern place looks like this (the colour table's)."""
    south = spec["lat"] < 0
    day = (north_month(month, "south" if south else "north") - 1) * 30.44 + rng.uniform(0, 30.44)
    pday = day + rng.normal(0, DAY_JITTER)        # early or late year for the land
    # A place a little nearer the pole (or the equator) than the reference one: lower
    # sun, and snow and ice that come earlier and stay longer (or the reverse).
    poleward = rng.normal(0, LAT_JITTER)
    lat = spec["lat"] + np.sign(spec["lat"]) * poleward
    st = {"day": day, "pday": pday, "north_pday": pday + 182.6 * south, "lat": lat,
          "elev": _solar_elevation(lat, day)}
    for key in TABLE_KEYS:
        v = _interp(spec[key], pday) / 100.0 if key in spec else 0.0
        # Jitter in logit space keeps 0 at 0 (no July snow in Death Valley) and 1 at 1.
        jitter = rng.normal(0, TABLE_JITTER) + (SNOW_PER_DEGREE * poleward if key in ("snow", "ice") else 0)
        if 0 < v < 1:
            v = 1 / (1 + (1 / v - 1) * np.exp(-jitter))
        st[key] = float(v)
    return st


def palette(rng) -> dict:
    """Every colour anchor with its own small brightness and hue jitter for this image."""
    k = len(COLOURS)
    f = (1 + rng.normal(0, PALETTE_JITTER, (k, 1))) * (1 + rng.normal(0, 1, (k, 3)) * _HUE)
    return dict(zip(COLOURS, (_RGB * f).astype(np.float32)))


def _solar_elevation(lat: float, day: float) -> float:
    """Sun elevation at local noon, degrees, from latitude and day of year."""
    decl = -23.44 * np.cos(2 * np.pi * (day + 10) / 365.0)
    return 90.0 - abs(lat - decl)


def _at_day(table, day: float):
    """Entries either side of `day` in a 12-entry mid-month table, and the weight of the second."""
    x = (day - 15.2) / 30.44
    i = int(np.floor(x))
    return table[i % 12], table[(i + 1) % 12], x - i


def _interp(table, day: float) -> float:
    a, b, w = _at_day(table, day)
    return (1 - w) * a + w * b


def mix_at(months, day: float):
    """Anchor names present at `day` and their cumulative shares, in the order they appear in the year."""
    seq, order = months
    a, b, w = _at_day(seq, day)
    share: dict[str, float] = {}
    for names, weight in ((a, 1 - w), (b, w)):
        for name in names:
            share[name] = share.get(name, 0.0) + weight / len(names)
    names = sorted((s for s in share if share[s] > 1e-3), key=order.get)
    return names, np.cumsum([share[s] for s in names]) / sum(share[s] for s in names)
