"""Synthetic overhead Earth scenes: 7 biomes x 12 months, labelled by file name.

    python -m biomeseason synth --out data/raw --per-class 4 --seed 0 --size 256

writes ``Boreal_Jan_0001.jpg`` ... ``USGrass_Dec_0004.jpg`` (the original
study's naming, one place per biome seen from orbit) and prints how many
images it wrote, where, and how fast.

How a scene is made
-------------------
Eight Gaussian noise fields come from four inverse FFTs of random spectra
(spectral synthesis): fractal terrain and a drainage field (desert washes),
land-cover patches and large cloud systems, a phase field that decides
which pixels of a class have already turned (green-up and leaf colour
advance in patches, not everywhere at once) and small cumulus cells, and
fine texture. A meandering river, sometimes with a tributary, carves its
valley; lakes fill the lowest ground; farm fields are a rotated grid.
The ground's colours are then matched to real imagery (``synthetic_looks``)
and only after that is the terrain hill-shaded with the sun's noon elevation
for the reference place and the day of the year, which also sets the length
of cloud shadows: a low winter sun means stronger relief and shadows further
from their clouds, a cue the colour match would otherwise erase. Scale,
rotation (ridges, rivers, fields), cover shares, relief, exposure and every
colour anchor vary per image, so a classifier has to learn more than one
mean colour.

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

Seasonal cues by biome (months at the reference place; the month-by-month
numbers are the tables in ``BIOMES``; "sun" is the noon elevation range)
--------------------------------------------------------------------------------
biome, place              months   what the scene shows
------------------------  -------  ---------------------------------------------------
Boreal                    Dec-Feb  full snow, conifers speckle it grey-green; lakes
Manicouagan, Quebec                frozen and white from mid-Dec; long shadows
51.4N, sun 15-62 deg      Mar-May  snow to April, melting in May; ice out mid-May;
                                   birch and aspen leaf out late May
                          Jun-Aug  dark conifers, lighter birch/aspen, green-brown
                                   bogs, blue lakes (sometimes the 70 km ring lake)
                          Sep-Nov  birch/aspen yellow late Sep-early Oct, bare after;
                                   first snow late Oct, about 60% by mid-Nov
Deciduous                 Dec-Feb  leaf-off grey-brown ridges; snow after storms,
Appalachian ridges, PA             fields first; rivers partly frozen
40.5N, sun 26-73 deg      Mar-May  leaf-off to April; patchy light-green green-up late
                                   Apr-May; winter wheat green, maize fields bare
                          Jun-Aug  full dark-green canopy; green, golden (wheat) and
                                   stubble fields in the valleys; summer haze
                          Sep-Nov  colour peaks mid-late Oct (red, orange, yellow in
                                   patches); brown leaves, then bare, in Nov
DV                        Dec-Feb  tan fans, dark ranges, white playa; snow on the
Death Valley / Mojave              highest peaks; shallow lake on the playa after
36.5N, sun 30-77 deg               winter storms; long shadows, strong relief
                          Mar-May  faint green on fans and in washes after winter
                                   rain (Feb-Apr); the snow leaves the peaks
                          Jun-Aug  high sun, flat light; dusty haze peaks Jul-Aug;
                                   a few monsoon thunderstorm clouds
                          Sep-Nov  little change: tan and brown as the sun sinks
Rainforest                Dec-Feb  main dry season: least cloud, small cumulus; smoke
Congo basin                        haze from fires north of the equator (peak Jan);
1.5N, sun 65-90 deg                leaf turnover in some crowns; rivers high, falling
(sun is a weak cue here)  Mar-May  long rains: cloud peaks in Apr, large systems;
                                   light-green leaf flush Feb-Mar; rivers low in
                                   Mar-Apr (sandbars), up again in May
                          Jun-Aug  shorter dry spell: less cloud; smoke from fires
                                   south of the equator (Aug-Sep); rivers lowest Jul
                          Sep-Nov  second rains, heaviest cloud Oct-Nov; rivers
                                   brown, rising to the Dec maximum; swamps flooded
TropGrass                 Dec-Feb  short rains/short dry spell: short green grass,
Serengeti / Lake Victoria          patchy tan where storms missed in Dec; pans full
2.5S, sun 64-90 deg       Mar-May  long rains (Apr wettest): greenest, cloudiest,
                                   rivers brown and high, most pans and pools
                          Jun-Aug  dry season: grass cures golden then tan; fresh
                                   black burn scars Jun-Sep; woodland leafless;
                                   dust and smoke haze; pans dry up
                          Sep-Nov  bare tan, grey old scars, haze until the short
                                   rains green it in patches from Nov
Tundra                    Dec-Feb  snow on all but the valley floors; lakes frozen
European Alps, above               deep shadows from a low sun
the tree line             Mar-May  snow recedes upslope from May; meadows emerge brown
46.5N, sun 20-67 deg      Jun-Aug  green then brown-green meadows, grey rock, snow
                                   only high up; glaciers stay white
                          Sep-Nov  fresh snow from late Sep; larches gold in Oct;
                                   most ground white again by Nov
USGrass                   Dec-Feb  dormant tan prairie; snow comes and goes (little in
Great Plains, Lake Oahe            Dec); the reservoir frozen from about the New Year
South Dakota              Mar-May  ice out Mar-Apr; green-up Apr-May; wheat and maize
44.5N, sun 22-69 deg               fields bare, then green
                          Jun-Aug  peak green in June (cool-season grasses), curing
                                   golden Jul-Aug; crop patchwork green, gold, stubble
                          Sep-Nov  tan and brown; harvested stubble; first snow Nov

Sources checked for the figures above (general knowledge elsewhere):

- Noon sun elevation: 90 deg - |latitude - solar declination|, declination
  from the standard cosine approximation (Cooper 1969).
- Manicouagan Reservoir (Wikipedia): 51.4N, 70 km annular lake in boreal
  forest on the Canadian Shield. Ice season of a northern Quebec reservoir
  "from mid-December to mid-May": Tremblay & Begin 2005, Ecoscience 12(4),
  "The effects of snow packing on tree growth forms on an island in a
  recently created reservoir in northern Quebec".
- Pennsylvania fall foliage reports (PA Department of Conservation and
  Natural Resources, as reported by the press): northern and high ground
  peak in the first half of October, the south-east in the third or fourth
  week of October.
- Death Valley: Telescope Peak (3,368 m, Panamint Range) is snow-capped in
  winter; Badwater Basin holds an ephemeral lake (Lake Manly) after winter
  storms, e.g. Feb 2005 (Los Angeles Times, "Ancient shore") and Feb 2024
  (NASA SWOT measurements as reported in the press).
- Congo basin: Nicholson, "Congo Basin Hydrology, Climate, and
  Biogeochemistry" (AGU Monograph 2022), ch. 3: at 0-5N the rains are
  bimodal (MAM and SON) and the dry season is Dec-Feb. Britannica, "Congo
  River - Hydrology": at Kinshasa the main maximum at the end of the year,
  a secondary one in May, the major low in July and a secondary low in
  Mar-Apr. NASA Earth Observatory, "Fires in West Africa" and "Fires in
  Central Africa": burning north of the equator peaks Dec-Feb, south of it
  in the May-Oct dry season. Kearsley et al. 2024, Plant-Environment
  Interactions, "Historical tree phenology data reveal the seasonal rhythms
  of the Congo Basin rainforest" (Yangambi, 0.8N): leaf turnover of
  deciduous species triggered by the dry season.
- Serengeti (climate normals at Ikoma, climatestotravel.com): rain per month
  80, 100, 130, 155, 90, 35, 15, 30, 55, 70, 115, 105 mm (Jan-Dec); sun at
  the zenith mid-March and late September. Early dry-season management burns
  from June, smoke and dust through the dry season (June-October).
- Alps: snow depth and duration declining but still Nov-May below 2,000 m
  (Matiu et al. 2021, The Cryosphere, "Observed snow depth trends in the
  European Alps: 1971 to 2019"); summer snow line near 3,000 m.
- Great Plains: cool-season (C3) grasses give about 77% of production in
  South Dakota mixed-grass prairie, so it peaks green in May-June and cures
  in July-August (Rigge et al. 2013, Rangeland Ecology & Management, "Linking
  phenology and biomass productivity in South Dakota mixed-grass prairie").
  Lake Oahe rarely freezes before the New Year (Capital Journal, Pierre,
  Dec 2022); lake ice-out in eastern South Dakota between early March and
  early May (Lake Kampeska records).
"""
from __future__ import annotations

import argparse
import functools
import pathlib
import time

import numpy as np
from PIL import Image
from scipy import fft as sfft
from scipy.special import ndtri

from . import files, scan
from . import synthetic_looks as looks
from .labels import MONTH_ABBR, north_month
from .workers import cap, process_pool

FILE_PREFIX = {
    "boreal_forest": "Boreal",
    "temperate_deciduous_forest": "Deciduous",
    "desert": "DV",
    "tropical_rainforest": "Rainforest",
    "tropical_grassland": "TropGrass",
    "tundra": "Tundra",
    "temperate_grassland": "USGrass",
}

# ---------------------------------------------------------------------------
# Defaults: the knobs that shape every scene.
# ---------------------------------------------------------------------------
AMBIENT = 0.35           # skylight share of land illumination, so slopes facing away are not black
PALETTE_JITTER = 0.05    # per-image relative jitter of each colour anchor's brightness ...
HUE_JITTER = 0.015       # ... and of its channels (white anchors get a fifth of it)
SCALE_MIN, SCALE_STEP, SCALE_STEPS = 0.6, 1.15, 12   # ground scale 0.6 .. 2.8 (features per image)
DAY_JITTER = 5.0         # days (sd) by which an early or late year shifts the land's calendar
HAZE_SCALE = 0.4         # of the month tables' haze: the measured colours come from haze-free composites
LAT_JITTER = 4.0         # sd (degrees) of a scene's latitude about the reference place's
SNOW_PER_DEGREE = 0.15   # logit units of snow and ice share per degree poleward
TABLE_JITTER = 0.5       # sd (logit units) of per-image jitter on snow, cloud, haze, burn, ... shares
CLOUD_HEIGHT = 5.0       # px at 256 px; a cloud's shadow falls CLOUD_HEIGHT / tan(elevation) away
VALLEY_DEPTH = 0.8       # how deep rivers cut into the terrain (terrain std units)
PHASE_BINS = 64          # resolution of the phase field when choosing a class's anchor per pixel
TABLE_KEYS = ("snow", "ice", "cloud", "cells", "haze", "burn", "wash_green", "playa_water", "river_level",
              "lakes")

# Colour anchors (sRGB as seen from orbit); the month tables mix them.
COLOURS = {
    "conifer": (36, 56, 36), "broadleaf": (50, 82, 38), "fresh": (118, 150, 68),
    "yellow": (186, 158, 62), "autumn": (165, 82, 40), "orange": (182, 118, 48),
    "leafoff": (108, 98, 84), "brownleaf": (128, 98, 70),
    "bog": (112, 116, 74), "bogbrown": (132, 112, 84),
    "green": (92, 124, 58), "lush": (70, 116, 44), "golden": (188, 162, 104),
    "tan": (168, 146, 110), "bare": (142, 116, 90), "stubble": (186, 170, 130),
    "burnt": (52, 48, 44), "scar": (96, 90, 80),
    "fan": (180, 160, 140), "fangreen": (166, 162, 132), "darkrock": (98, 82, 70),
    "redrock": (140, 100, 80), "salt": (232, 230, 222), "rock": (128, 126, 122),
    "meadow": (98, 124, 64), "meadowbrown": (138, 124, 90), "larch": (176, 140, 60),
    "canopy": (30, 64, 32), "canopy2": (40, 74, 36), "flush": (84, 124, 52),
    "turnover": (96, 88, 60), "swamp": (24, 48, 30), "clearing": (120, 130, 80),
    "acacia": (70, 84, 48), "leafless": (112, 104, 88), "sand": (196, 180, 140),
    "snow": (246, 248, 252), "glacier": (222, 234, 242), "water": (22, 42, 56),
    "turbid": (128, 100, 66), "ice": (206, 214, 224), "playa_water": (120, 156, 164),
}
WHITES = ("snow", "glacier", "salt", "ice")
_RGB = np.asarray(list(COLOURS.values()), np.float64)
_HUE = np.asarray([[HUE_JITTER * (0.2 if k in WHITES else 1.0)] for k in COLOURS])
HAZE_COLOURS = {"blue": (186, 198, 214), "smoke": (176, 170, 158), "dust": (206, 186, 150)}


# Values of the phase field at the bin centres: Gaussian for natural cover, uniform for farm fields.
_BIN_GAUSS = (np.arange(PHASE_BINS) + 0.5 - PHASE_BINS // 2) * (6.4 / PHASE_BINS)
_BIN_UNIFORM = (np.arange(PHASE_BINS) + 0.5) / PHASE_BINS


@functools.cache
def _months(text: str) -> tuple:
    """'leafoff fresh/green ...' -> 12 tuples of anchor names ('a/b' = half the pixels each),
    and each name's rank by first appearance in the year."""
    items = text.split()
    assert len(items) == 12, text
    seq = tuple(tuple(item.split("/")) for item in items)
    return seq, {name: i for i, name in enumerate(dict.fromkeys(x for entry in seq for x in entry))}


# Per biome:
#   lat             latitude of the reference place (noon sun elevation)
#   slope, crests   typical terrain slope; sharp ridged crests (mountains)
#   ridges          (min, max) stretch of terrain along a random direction
#   water, rivers   lake share of the scene; river half-width in px at 256 px
#                   (Lake Oahe is a dammed river, hence a wide one)
#   texture         amplitude of fine brightness texture
#   snow_by_height  1: snow lies on high ground first; 0: in patches
#   month tables    mid-month values, Jan..Dec, percent: snow (share of land),
#                   ice (of lakes), cloud, cells (100 small cumulus, 0 large
#                   systems), haze, burn (fresh scars), river_level (width, mud),
#                   lakes (seasonal pans, of the full share), wash_green and
#                   playa_water (desert)
#   cover           (name, field, lo, hi, snow visibility, colours by month):
#                   the class takes the free pixels whose `field` quantile lies
#                   in [lo, hi); "fields" is a farm patchwork on a share hi of
#                   the free grid cells, coloured by `crops`; "rest" takes what
#                   is left. 'a/b' in a month splits the class's pixels into
#                   patches of the phase field (farm fields: field by field), so
#                   green-up and autumn colour advance in patches.
BIOMES = {
    "boreal_forest": dict(
        lat=51.4, slope=0.12, water=0.12, rivers=3.0, texture=0.14, haze_colour="blue", ring=0.3,
        snow=[100, 100, 100, 92, 40, 0, 0, 0, 0, 8, 60, 95], snow_by_height=0.2,
        ice=[100, 100, 100, 100, 55, 0, 0, 0, 0, 0, 10, 60],
        cloud=[20, 18, 18, 18, 20, 22, 24, 22, 22, 25, 28, 24],
        cells=[40, 40, 40, 50, 60, 70, 70, 70, 60, 50, 40, 40],
        haze=[4, 4, 4, 4, 5, 8, 10, 8, 5, 4, 4, 4],
        cover=[
            ("bog", "patch", 0.0, 0.12, 1.0,
             "bogbrown bogbrown bogbrown bogbrown bogbrown bog/bogbrown bog bog bog/bogbrown "
             "bogbrown bogbrown bogbrown"),
            ("birch and aspen", "patch", 0.78, 1.0, 0.85,
             "leafoff leafoff leafoff leafoff leafoff/fresh fresh/broadleaf broadleaf broadleaf "
             "broadleaf/yellow yellow/leafoff leafoff leafoff"),
            ("conifer", "rest", 0, 1, 0.7, "conifer " * 12),
        ]),
    "temperate_deciduous_forest": dict(
        lat=40.5, slope=0.5, ridges=(2.5, 4.0), water=0.02, rivers=4.0, texture=0.12, haze_colour="blue",
        snow=[45, 40, 15, 1, 0, 0, 0, 0, 0, 0, 3, 20], snow_by_height=0.5,
        ice=[40, 30, 5, 0, 0, 0, 0, 0, 0, 0, 0, 10],
        cloud=[30, 30, 30, 30, 28, 25, 25, 25, 20, 20, 28, 30],
        cells=[30, 30, 40, 50, 60, 80, 80, 80, 70, 50, 40, 30],
        haze=[5, 5, 5, 6, 8, 14, 18, 16, 10, 6, 5, 5],
        cover=[
            ("ridge forest", "height", 0.42, 1.0, 0.75,
             "leafoff leafoff leafoff leafoff/leafoff/fresh fresh/broadleaf broadleaf broadleaf broadleaf "
             "broadleaf/broadleaf/yellow autumn/orange/yellow brownleaf/leafoff leafoff"),
            ("fields", "fields", 0, 0.75, 1.0, None),
            ("woodlots", "rest", 0, 1, 0.75,
             "leafoff leafoff leafoff leafoff/fresh fresh/broadleaf broadleaf broadleaf broadleaf "
             "broadleaf/yellow autumn/orange brownleaf/leafoff leafoff"),
        ],
        crops=[  # pasture and hay; maize; winter wheat
            "tan tan tan/green green/tan green green green green/tan green green/tan tan tan",
            "bare bare bare bare bare bare/green green green green/golden golden/stubble stubble bare",
            "green/tan green/tan green/tan green green green/golden golden stubble stubble bare/green "
            "green/bare green/tan",
        ]),
    "desert": dict(
        lat=36.5, slope=0.55, crests=0.3, ridges=(1.5, 2.5), water=0.0, rivers=0.0, texture=0.06,
        haze_colour="dust",
        snow=[14, 14, 9, 4, 1, 0, 0, 0, 0, 0, 2, 9], snow_by_height=1.0,
        cloud=[12, 14, 10, 6, 3, 2, 8, 10, 5, 3, 5, 10],
        cells=[20, 20, 30, 50, 60, 80, 90, 90, 80, 60, 40, 20],
        haze=[3, 3, 4, 5, 8, 14, 22, 22, 14, 7, 4, 3],
        wash_green=[5, 30, 60, 45, 10, 0, 0, 0, 0, 0, 0, 0],
        playa_water=[25, 30, 15, 4, 0, 0, 0, 0, 0, 0, 2, 12],
        cover=[
            ("playa", "height", 0.0, 0.12, 1.0, "salt " * 12),
            ("mountains", "height", 0.62, 1.0, 0.95, "darkrock/darkrock/redrock " * 12),
            ("fans", "rest", 0, 1, 1.0,
             "fan fan/fan/fan/fangreen fan/fan/fangreen fan/fan/fangreen fan/fan/fan/fangreen "
             "fan fan fan fan fan fan fan"),
        ]),
    "tropical_rainforest": dict(
        lat=1.5, slope=0.12, water=0.0, rivers=8.0, texture=0.18, haze_colour="smoke",
        cloud=[20, 25, 45, 60, 50, 30, 25, 30, 50, 65, 60, 35],
        cells=[90, 80, 50, 20, 30, 60, 80, 70, 40, 10, 20, 60],
        haze=[35, 30, 15, 6, 5, 6, 12, 22, 20, 8, 5, 22],
        river_level=[70, 50, 30, 30, 55, 40, 20, 25, 45, 65, 85, 95],
        cover=[
            ("swamp forest", "height", 0.0, 0.15, 0, "swamp " * 12),
            ("clearings", "patch", 0.95, 1.0, 0, "clearing " * 12),
            ("canopy", "rest", 0, 1, 0,
             "canopy/canopy2/canopy/turnover canopy/canopy2/turnover/flush canopy/flush/canopy2/flush "
             "canopy/canopy2/canopy/flush canopy/canopy2 canopy/canopy2 canopy/canopy2/canopy/turnover "
             "canopy/canopy2/canopy/turnover canopy/canopy2 canopy/canopy2 canopy/canopy2 "
             "canopy/canopy2/canopy/turnover"),
        ]),
    "tropical_grassland": dict(
        lat=-2.5, slope=0.12, water=0.06, rivers=2.5, texture=0.10, haze_colour="dust",
        cloud=[28, 30, 40, 55, 35, 15, 10, 12, 15, 20, 40, 40],
        cells=[60, 60, 40, 20, 40, 70, 90, 90, 80, 70, 40, 40],
        haze=[5, 5, 4, 4, 4, 10, 16, 20, 22, 18, 8, 5],
        burn=[0, 0, 0, 0, 0, 6, 14, 16, 10, 5, 0, 0],
        river_level=[30, 30, 45, 75, 70, 35, 15, 10, 10, 15, 40, 45],
        lakes=[60, 60, 70, 100, 100, 70, 40, 25, 20, 20, 40, 55],
        cover=[
            ("woodland", "patch", 0.8, 1.0, 0,
             "green green acacia/green green green acacia acacia/leafless leafless leafless leafless "
             "acacia acacia/green"),
            ("grass", "rest", 0, 1, 0,
             "green green/fresh lush/green lush lush/green green/golden golden golden/tan tan/scar "
             "tan/bare tan/tan/fresh green/fresh/tan"),
        ]),
    "tundra": dict(
        lat=46.5, slope=0.9, crests=0.5, water=0.02, rivers=2.0, texture=0.10, haze_colour="blue",
        snow=[92, 95, 92, 85, 65, 35, 12, 6, 12, 35, 70, 88], snow_by_height=0.85,
        ice=[100, 100, 100, 100, 80, 30, 0, 0, 0, 10, 50, 95],
        cloud=[25, 25, 30, 35, 35, 30, 28, 28, 25, 25, 30, 25],
        cells=[30, 30, 30, 40, 60, 80, 80, 80, 60, 40, 30, 30],
        haze=[3, 3, 3, 4, 5, 6, 8, 8, 5, 4, 3, 3],
        cover=[
            ("glacier", "height", 0.92, 1.0, 1.0, "glacier " * 12),
            ("rock", "height", 0.62, 0.92, 0.9, "rock " * 12),
            ("valley forest", "height", 0.0, 0.15, 0.6,
             "conifer conifer conifer conifer conifer conifer conifer conifer conifer conifer/larch "
             "conifer/leafoff conifer"),
            ("meadow", "rest", 0, 1, 1.0,
             "meadowbrown meadowbrown meadowbrown meadowbrown meadowbrown/meadow meadow meadow "
             "meadow/meadowbrown meadowbrown meadowbrown meadowbrown meadowbrown"),
        ]),
    "temperate_grassland": dict(
        lat=44.5, slope=0.15, water=0.04, rivers=7.0, texture=0.08, haze_colour="blue",
        snow=[60, 60, 30, 5, 0, 0, 0, 0, 0, 1, 15, 30], snow_by_height=0.1,
        ice=[85, 95, 50, 5, 0, 0, 0, 0, 0, 0, 0, 15],
        cloud=[25, 25, 30, 30, 30, 25, 18, 15, 15, 20, 25, 25],
        cells=[30, 30, 40, 50, 60, 80, 90, 90, 70, 50, 30, 30],
        haze=[4, 4, 5, 6, 8, 10, 14, 14, 10, 6, 4, 4],
        cover=[
            ("fields", "fields", 0, 0.55, 1.0, None),
            ("prairie", "rest", 0, 1, 1.0,
             "tan tan tan tan/green green green/lush green/golden golden/tan tan tan tan tan"),
        ],
        crops=[  # spring wheat; maize and sunflower; hay and range
            "bare bare bare bare/green green green golden/green golden/stubble stubble stubble bare bare",
            "bare bare bare bare bare green/bare green green green/golden golden stubble bare",
            "tan tan tan tan/green green green/lush green/golden golden/tan tan tan tan tan",
        ]),
}


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
    st = _month_state(spec, int(month), rng)
    pal = _palette(rng)

    # Eight unit-std noise fields, two per inverse FFT; `scale` zooms the scene, from a
    # valley to a whole region (in steps, so spectra can be cached per scale).
    scale = SCALE_MIN * SCALE_STEP ** rng.integers(0, SCALE_STEPS)
    ridges = (rng.uniform(0, np.pi), rng.uniform(*spec["ridges"])) if "ridges" in spec else None
    h, river = _noise_pair(rng, n, 2.4, 2.5 * scale, 0.25, ridges)    # terrain, drainage
    patch, cloud = _noise_pair(rng, n, 1.9, 3.0 * scale, 0.5)         # land-cover patches, cloud systems
    phase, cells = _noise_pair(rng, n, 1.8, 9.0 * scale, 0.5, exact=False)   # who turns first, cumulus
    tex, aux = _noise_pair(rng, n, 1.0, 40.0 * scale, 0.5, exact=False)      # fine texture, detail
    if spec.get("crests"):   # sharp mountain crests: ridged noise (peaks along the zero lines of `patch`)
        h = h + np.float32(spec["crests"]) * (1 - np.float32(1.6) * np.abs(patch))
        h = (h - h.mean()) / h[::4, ::4].std()

    # A meandering river (and maybe a tributary) cuts a valley, so it shades as one;
    # `river` stays the drainage field for desert washes.
    width = spec["rivers"] * n / 256 / scale * rng.uniform(0.7, 1.3) * (1 + st["river_level"])
    channel = _river_distance(rng, n, width) if width else None      # distance / half-width
    if channel is not None:
        h = h - np.float32(VALLEY_DEPTH) * np.maximum(0, 1 - channel * np.float32(1 / 6))

    cls, img = _land_cover(spec, st, h, patch, phase, pal, rng, n, scale)   # (n, n), (3, n, n)
    snow = _seasonal_marks(biome, spec, st, cls, img, h, river, patch, phase, aux, pal, rng)
    water = _water(spec, st, img, h, channel, phase, tex, aux, pal, rng, n)

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
    light = _hillshade(h + 0.03 * tex, spec["slope"] * rng.uniform(0.1, 1.0), st["elev"], rng)
    light[water] = 1
    img *= light
    looks.glint(img, water, _grid(n), rng)
    cloud_a, cloud_tone, shadow = _clouds(st, cloud, cells, aux, rng, n)
    if cloud_a is not None:
        img *= 1 - np.float32(looks.SHADOW) * shadow
        img += cloud_a * (cloud_tone * np.float32(looks.CLOUD_WHITE) - img)
    img = looks.haze(img, HAZE_SCALE * st["haze"], HAZE_COLOURS[spec["haze_colour"]], rng)
    return looks.sensor(looks.to_view(img, size, view, rng), rng)   # (size, size, 3)


def _month_state(spec: dict, month: int, rng) -> dict:
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


def _palette(rng) -> dict:
    """Every colour anchor with its own small brightness and hue jitter for this image."""
    k = len(COLOURS)
    f = (1 + rng.normal(0, PALETTE_JITTER, (k, 1))) * (1 + rng.normal(0, 1, (k, 3)) * _HUE)
    return dict(zip(COLOURS, (_RGB * f).astype(np.float32)))


def _land_cover(spec, st, h, patch, phase, pal, rng, n, scale):
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
            kind, share, field_phase = _patchwork(rng, n, scale, len(crops))
            m = ~taken & (share < hi)
            cls[m] = len(cover) + kind[m]
        else:
            m = ~taken & (fields[field] >= _q(lo)) & (fields[field] < _q(hi))
            cls[m] = k
        taken |= m

    # Colour: each class mixes its month's anchors over patches of the phase field
    # (farm fields turn field by field, with a uniform phase per field). A table
    # (class, phase bin) -> palette row does it in one lookup.
    seqs = [c[5] for c in cover] + crops
    table = np.zeros((len(seqs), PHASE_BINS, 3), np.float32)
    for k, seq in enumerate(seqs):
        if seq:
            names, cum = _mix_at(_months(seq), st["pday"])
            crop = k >= len(cover)
            cuts = cum[:-1] if crop else [_q(c) for c in cum[:-1]]
            which = np.searchsorted(cuts, _BIN_UNIFORM if crop else _BIN_GAUSS)   # anchor per bin
            table[k] = np.asarray([pal[a] for a in names])[which]
    bins = np.clip(phase * np.float32(PHASE_BINS / 6.4) + PHASE_BINS // 2, 0, PHASE_BINS - 1).astype(np.int32)
    if field_phase is not None:
        crop = cls >= len(cover)
        bins[crop] = (field_phase[crop] * PHASE_BINS).astype(np.int32)
    bins += cls * PHASE_BINS
    # Channel-first (3, n, n) from here: whole-plane arithmetic is much faster than on (n, n, 3).
    return cls, np.take(table.reshape(-1, 3).T, bins, axis=1)


def _seasonal_marks(biome, spec, st, cls, img, h, river, patch, phase, aux, pal, rng):
    """Burn scars, desert wash greening and playa water, painted into `img`; returns the snow
    cover (n, n) in 0..1, or None when there is none."""
    if biome == "desert":
        # Washes (dry channels) green briefly after winter rain; the playa floods shallowly.
        wash = np.abs(river) < 0.06 * rng.uniform(0.7, 1.3)
        _paint(img, wash, pal["green"], 0.8 * st["wash_green"])
        if st["playa_water"] > 0:
            # Storm water gathers in the lowest part of the playa (Lake Manly).
            _paint(img, (cls == 0) & (h < _q(spec["cover"][0][3] * st["playa_water"])), pal["playa_water"])
    if biome == "tropical_grassland":
        # Scattered trees dot the open grass (acacia savanna); their crowns stay darker than the grass.
        trees = (cls == len(spec["cover"]) - 1) & (aux > _q(1 - rng.uniform(0.06, 0.16)))
        _paint(img, trees, pal["acacia"], 0.7)
    if st["burn"] > 0:
        grass = cls == len(spec["cover"]) - 1
        _paint(img, grass & (patch * 0.6 + aux * 0.5 + phase * 0.6 > _q(1 - st["burn"])), pal["burnt"], 0.7)
    if st["snow"] == 0:
        return None
    # Snow lies on high ground first where snow_by_height is large, else in patches;
    # canopies hide part of it (dark conifers speckle the white).
    w = spec["snow_by_height"]
    f = (w * h + (1 - w) * (0.94 * phase + 0.35 * aux)) * np.float32(1 / np.hypot(w, 1 - w))
    alpha = np.clip((f - np.float32(_q(1 - st["snow"]))) * 4 + 0.5, 0, 1)
    vis = np.asarray([c[4] for c in spec["cover"]] + [1.0] * len(spec.get("crops", [])), np.float32)
    return alpha * vis[cls]


def _paint(img, mask, colour, amount=1.0):
    """Blend `colour` into the (3, n, n) image where `mask` is set (amount 1 = replace)."""
    w = mask * np.float32(amount)
    img += w * (colour[:, None, None] - img)


def _hillshade(h, slope, elev, rng):
    """Lambertian shading of the terrain relative to flat ground; low sun -> stronger relief."""
    gy = np.roll(h, -1, 0) - np.roll(h, 1, 0)
    gx = np.roll(h, -1, 1) - np.roll(h, 1, 1)
    k = np.float32(slope / (np.sqrt(np.mean(gx * gx + gy * gy)) + 1e-12))   # typical slope = `slope`
    az, el = rng.uniform(0, 2 * np.pi), np.radians(elev)
    sx, sy = np.float32(np.cos(el) * np.cos(az) * k), np.float32(np.cos(el) * np.sin(az) * k)
    dot = (np.float32(np.sin(el)) - sx * gx - sy * gy) / np.sqrt(1 + (k * k) * (gx * gx + gy * gy))
    return AMBIENT + (1 - AMBIENT) * np.clip(dot / np.float32(np.sin(el)), 0, 2)


def _water(spec, st, img, h, channel, phase, tex, aux, pal, rng, n):
    """Paint lakes (lowest ground) and rivers (their channels) into `img`; ice, mud, floods and
    sandbars by month. Returns the water mask."""
    level = st["river_level"]
    share = spec["water"] * rng.uniform(0.3, 1.7) * (st["lakes"] if "lakes" in spec else 1)   # seasonal pans
    water = h < _q(share) if share else np.zeros((n, n), bool)
    if spec.get("ring", 0) > rng.random():   # the Manicouagan crater's annular lake
        yy, xx = _grid(n)
        cy, cx = rng.uniform(0.3, 0.7, 2) * n
        r = np.sqrt((yy - cy) ** 2 + (xx - cx) ** 2) + 0.04 * n * tex
        water |= np.abs(r - rng.uniform(0.25, 0.4) * n) < rng.uniform(0.02, 0.035) * n
    bars = None
    if channel is not None:
        water |= channel < 1
        if level > 0:   # high water floods the swamp forest beside the channel; low water bares sandbars
            flood = (channel < 4) & (h < _q(0.05 + 0.35 * level ** 2)) & ~water
            _paint(img, flood, pal["water"], 0.5)
            bars = (channel < 0.7) & (tex * 0.5 + aux * 0.5 > 1.2 + 1.5 * level)
    if st["ice"] > 0:   # ice breaks up in floes; snow on the ice makes it white
        frozen = water & (0.97 * phase + 0.25 * aux < _q(st["ice"]))
        _paint(img, frozen, pal["ice"] + np.float32(st["snow"]) * (pal["snow"] - pal["ice"]))
        water_open = water & ~frozen
    else:
        water_open = water
    _paint(img, water_open, (1 - level) * pal["water"] + level * pal["turbid"])
    if bars is not None:
        _paint(img, bars, pal["sand"])
        water &= ~bars
    return water


def _clouds(st, cloud, cells, aux, rng, n):
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
    thick = np.maximum(c - np.float32(_q(1 - cover)), 0)                # optical depth above the cloud base
    alpha = thick / (thick + np.float32(0.4)) * np.float32(rng.uniform(*looks.THIN_CLOUD))
    d = CLOUD_HEIGHT * n / 256 / np.tan(np.radians(st["elev"]))
    az = rng.uniform(0, 2 * np.pi)
    shadow = np.roll(alpha, (int(round(d * np.sin(az))), int(round(d * np.cos(az)))), (0, 1))
    # Thick cores are whiter than thin edges.
    tone = np.float32(0.8) + np.float32(0.2) * np.minimum(thick, 1) + np.float32(0.03) * aux
    return alpha, tone, shadow


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------
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


def _mix_at(months, day: float):
    """Anchor names present at `day` and their cumulative shares, in the order they appear in the year."""
    seq, order = months
    a, b, w = _at_day(seq, day)
    share: dict[str, float] = {}
    for names, weight in ((a, 1 - w), (b, w)):
        for name in names:
            share[name] = share.get(name, 0.0) + weight / len(names)
    names = sorted((s for s in share if share[s] > 1e-3), key=order.get)
    return names, np.cumsum([share[s] for s in names]) / sum(share[s] for s in names)


def _q(p) -> float:
    """Threshold of a unit-std Gaussian field that leaves a share p of pixels below it."""
    return float(ndtri(np.clip(p, 1e-4, 1 - 1e-4)))


@functools.lru_cache(maxsize=32)
def _band(k: int):
    """Frequencies (cycles per image) along y and x of the k x k lowest-frequency block, in FFT order."""
    f = np.r_[0:k // 2, -(k // 2):0].astype(np.float32)
    return f[:, None], f[None, :]


def _noise_pair(rng, n: int, beta: float, corner: float, band: float, aniso=None, exact=True):
    """Two independent Gaussian fields (unit std), amplitude spectrum ~ (1 + (f/corner)^2)^(-beta/2).

    Only frequencies below band * n are drawn (smooth fields need few random
    numbers); one complex inverse FFT gives both fields, because the real and
    imaginary parts of a spectrum without Hermitian symmetry are independent.
    """
    k = max(4, min(n, 2 * int(band * n / 2)))
    amp = _amplitude(n, k, beta, corner, aniso) if aniso else _cached_amplitude(n, k, beta, round(corner, 3))
    # Uniform draws are cheaper than Gaussian ones, and each field sums thousands of
    # them, so it is Gaussian all the same (sqrt(12) gives unit variance).
    w = rng.random((2, k, k), dtype=np.float32)
    w -= np.float32(0.5)
    w *= amp * np.float32(np.sqrt(12))
    block = np.empty((k, k), np.complex64)
    block.real, block.imag = w
    # Inverse FFT of the zero-padded block, one axis at a time: the first pass only
    # needs the k non-zero rows (a pruned 2-D FFT).
    half = k // 2
    rows = np.zeros((k, n), np.complex64)
    rows[:, :half], rows[:, n - half:] = block[:, :half], block[:, half:]
    rows = sfft.ifft(rows, axis=1)
    full = np.zeros((n, n), np.complex64)
    full[:half], full[n - half:] = rows[:half], rows[half:]
    z = sfft.ifft(full, axis=0)
    re, im = z.real, z.imag
    if exact:   # large-scale fields have few modes, so their sample std wanders; pin it
        re, im = re / (re[::4, ::4].std() + 1e-12), im / (im[::4, ::4].std() + 1e-12)
    return re, im


def _amplitude(n: int, k: int, beta: float, corner: float, aniso=None) -> np.ndarray:
    """The (k, k) amplitude spectrum, scaled so that each field has unit expected std."""
    fy, fx = _band(k)
    if aniso is not None:  # (angle, ratio): features stretched along `angle` (ridges)
        a, r = aniso
        u = fx * np.float32(np.cos(a)) + fy * np.float32(np.sin(a))
        v = fy * np.float32(np.cos(a)) - fx * np.float32(np.sin(a))
        f2 = (u * np.float32(r)) ** 2 + v ** 2
    else:
        f2 = fx ** 2 + fy ** 2
    amp = (1.0 + f2 / np.float32(corner) ** 2) ** np.float32(-beta / 2)
    amp[0, 0] = 0.0
    return amp * np.float32(n * n / np.sqrt(np.sum(amp * amp)))


_cached_amplitude = functools.lru_cache(maxsize=128)(_amplitude)


def _patchwork(rng, n: int, scale: float, kinds: int):
    """Farm fields on a rotated grid: crop kind, a share draw and a phase (both uniform) per pixel,
    constant within a field."""
    cell = rng.uniform(10, 22) * n / 256 / scale
    a = rng.uniform(0, np.pi)
    yy, xx = _grid(n)
    p = np.floor((xx * np.cos(a) + yy * np.sin(a)) / cell).astype(np.int32)
    q = np.floor((yy * np.cos(a) - xx * np.sin(a)) / (cell * rng.uniform(1, 2))).astype(np.int32)
    ids = (p * 7919 + q * 104729) & 4095
    kind = rng.integers(0, max(kinds, 1), 4096)
    share, phase = rng.random((2, 4096), dtype=np.float32)
    return kind[ids], share[ids], phase[ids]


def _river_distance(rng, n: int, width: float, tributary: float = 0.6) -> np.ndarray:
    """Distance to a meandering river's centre line in half-widths (< 1 is water), (n, n).

    The centre line is a random smooth curve across the image at a random
    angle; with probability `tributary` a narrower branch joins it from one side.
    """
    yy, xx = _grid(n)
    best, side = None, None
    for k in range(1 + (rng.random() < tributary)):
        a = rng.uniform(0, np.pi)
        u = xx * np.float32(np.cos(a)) + yy * np.float32(np.sin(a))
        v = (yy * np.float32(np.cos(a)) - xx * np.float32(np.sin(a)) + 1.5 * n).astype(np.int32)
        # Meanders: 1-D noise along the river with a steep spectrum, a few bends per image.
        m = 3 * n
        f = np.fft.rfftfreq(m) * m / 3
        amp = (1 + (f / 1.5) ** 2) ** -1.6
        amp[0] = 0
        c = np.fft.irfft(amp * (rng.normal(size=f.size) + 1j * rng.normal(size=f.size)), m)
        c = (c / c.std() * rng.uniform(0.05, 0.12) * n).astype(np.float32)
        slope = np.gradient(c)
        off = u - np.float32(rng.uniform(-0.25, 0.25) * n + n / 2 * (np.cos(a) + np.sin(a))) - c[v]
        d = np.abs(off) / (np.sqrt(1 + slope[v] ** 2) * np.float32(max(width, 0.5) * (0.55 if k else 1)))
        if k == 0:
            best, side = d, off > 0
        else:
            best = np.minimum(best, np.where(side, d, np.float32(np.inf)))
    return best


@functools.lru_cache(maxsize=8)
def _grid(n: int):
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32)
    return yy, xx


def _seed_rng(seed) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


# ---------------------------------------------------------------------------
# Writing files
# ---------------------------------------------------------------------------
def _file_name(biome: str, month: int, i: int) -> str:
    return f"{FILE_PREFIX[biome]}_{MONTH_ABBR[month - 1].capitalize()}_{i:04d}.jpg"


def _write_one(task) -> tuple[str, np.ndarray | None]:
    """Render and save one scene (atomically); returns its path and, for the first scene of
    its (biome, month), a thumbnail for the contact sheet."""
    out, biome, month, i, seed, size, quality, look = task
    ss = np.random.SeedSequence([seed, list(FILE_PREFIX).index(biome), month, i])
    scene_seed, file_seed = ss.spawn(2)
    arr = render_scene(biome, month, scene_seed, size, look)
    path = pathlib.Path(out) / _file_name(biome, month, i)
    files.save_image(path, Image.fromarray(arr), format="JPEG",
                     quality=looks.jpeg_quality(quality, np.random.default_rng(file_seed)))
    thumb = np.asarray(Image.fromarray(arr).resize((THUMB, THUMB), Image.BILINEAR)) if i == 1 else None
    return str(path), thumb


def check_settings(out, per_class=4, size=256, look="mixed", workers=1, quality=92, force=False) -> None:
    """Refuse bad settings and a foreign output folder, in one sentence, before any work."""
    if look not in looks.LOOKS:
        raise files.UsageError(f"--look must be one of {', '.join(looks.LOOKS)}, not {look!r}")
    if per_class < 1 or size < 16 or workers < 1 or not 1 <= quality <= 100:
        raise files.UsageError("--per-class and --workers must be >= 1, --size >= 16 and --quality 1..100")
    files.check_dir_target(out, force=force)
    listed = pathlib.Path(out) / scan.SCENES_LIST
    if listed.is_file() and tuple(listed.read_text(encoding="utf-8", errors="replace").splitlines()[:1]) != \
            (",".join(scan.SCENES_COLUMNS),):
        raise files.UsageError(f"{listed} is not a list of scenes written by biomeseason; move it out of "
                               f"{out} and run again")


def write_scenes(out, per_class=4, seed=0, size=256, biomes=None, months=None, workers=1,
                 quality=92, progress=True, look="mixed", force=False) -> list[pathlib.Path]:
    """Write per_class scenes for every (biome, month) into `out`; returns the paths in task order.

    Image i (1-based, as in the file name) of (biome, month) is seeded from
    SeedSequence([seed, biome index in FILE_PREFIX, month, i]), so the files
    are the same whatever `workers` is. `out` is created with our marker; an
    existing folder that is not ours is refused unless `force`. A contact
    sheet of the first scene of each (biome, month), ``contact_sheet_<look>.png``,
    is written beside the scenes.
    """
    from tqdm.auto import tqdm

    biomes = list(FILE_PREFIX) if biomes is None else list(biomes)
    months = list(range(1, 13)) if months is None else [int(m) for m in months]
    bad = [b for b in biomes if b not in FILE_PREFIX] + [m for m in months if not 1 <= m <= 12]
    if bad:
        raise ValueError(f"unknown biome or month {bad}; biomes are {list(FILE_PREFIX)}, months 1..12")
    check_settings(out, per_class, size, look, workers, quality, force)
    out = files.claim_dir(out, force=force)
    tasks = [(str(out), b, m, i, int(seed), int(size), int(quality), look)
             for b in biomes for m in months for i in range(1, int(per_class) + 1)]
    paths, thumbs = [], {}
    with tqdm(total=len(tasks), unit="img", disable=not progress, desc="synth") as bar:
        def collect(results):
            for task, (p, thumb) in zip(tasks, results):
                paths.append(pathlib.Path(p))
                if thumb is not None:
                    thumbs[task[1], task[2]] = thumb
                bar.update()
        if workers > 1:
            with files.terminate_as_interrupt(), process_pool(int(workers)) as pool:
                collect(pool.map(_write_one, tasks, chunksize=max(1, len(tasks) // (8 * workers))))
        else:
            collect(map(_write_one, tasks))
    contact_sheet(thumbs, out / f"contact_sheet_{look}.png")
    list_scenes(out, paths, [(t[1], t[2]) for t in tasks])
    return paths


def list_scenes(out: pathlib.Path, paths: list[pathlib.Path], labels: list[tuple[str, int]]) -> pathlib.Path:
    """``scenes.csv`` beside the scenes (path relative to ``out``, biome, month), with the rows of an earlier
    run into the same folder kept: preprocessing labels the scenes from it when a labels CSV of the user's
    does not list them (``scan.with_synthetic_scenes``)."""
    import pandas as pd

    from .scan import SCENES_LIST

    rows = pd.DataFrame({"path": [p.name for p in paths], "biome": [b for b, _ in labels],
                         "month": [str(m) for _, m in labels]})
    earlier = out / SCENES_LIST
    if earlier.is_file():   # check_settings made sure it is ours
        rows = pd.concat([pd.read_csv(earlier, dtype=str, keep_default_na=False), rows])
        rows = rows.drop_duplicates("path", keep="last").sort_values("path")
    return files.write_csv(earlier, rows)


THUMB = 64   # px per scene on the contact sheet


def contact_sheet(thumbs: dict, path) -> pathlib.Path | None:
    """A grid of thumbnails {(biome, month): (THUMB, THUMB, 3)}, biomes down and months across,
    labelled, so a person can see the scenes at a glance."""
    from PIL import ImageDraw

    if not thumbs:
        return None
    biomes = [b for b in FILE_PREFIX if any(k[0] == b for k in thumbs)]
    months = sorted({k[1] for k in thumbs})
    left, top, gap = 84, 16, 2
    sheet = Image.new("RGB", (left + len(months) * (THUMB + gap), top + len(biomes) * (THUMB + gap)), "white")
    draw = ImageDraw.Draw(sheet)
    for j, m in enumerate(months):
        draw.text((left + j * (THUMB + gap) + 4, 2), MONTH_ABBR[m - 1].capitalize(), fill="black")
    for i, b in enumerate(biomes):
        draw.text((4, top + i * (THUMB + gap) + THUMB // 2 - 6), FILE_PREFIX[b], fill="black")
        for j, m in enumerate(months):
            if (b, m) in thumbs:
                sheet.paste(Image.fromarray(thumbs[b, m]), (left + j * (THUMB + gap), top + i * (THUMB + gap)))
    return files.save_image(path, sheet)


def get_args_parser(add_help=True) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Write synthetic Earth scenes (7 biomes x 12 months).",
                                add_help=add_help)
    p.add_argument("--out", required=True, type=pathlib.Path,
                   help="output folder (created if missing; a folder not written by biomeseason needs --force)")
    p.add_argument("--per-class", type=int, default=4, help="images per (biome, month) (default: 4)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--size", type=int, default=256, help="image side in pixels (default: 256)")
    p.add_argument("--look", choices=looks.LOOKS, default="mixed",
                   help="nadir (straight down), orbital (oblique, with the horizon) or mixed (default: mixed)")
    p.add_argument("--workers", type=int, default=1, help="processes (default: 1)")
    p.add_argument("--quality", type=int, default=92, help="JPEG quality of most files (default: 92)")
    p.add_argument("--force", action="store_true",
                   help="add scenes to an existing folder not written by biomeseason (default: off)")
    return p


def main(args) -> int:
    check_settings(args.out, args.per_class, args.size, args.look, args.workers, args.quality, args.force)
    t0 = time.perf_counter()
    paths = write_scenes(args.out, args.per_class, args.seed, args.size, workers=cap(args.workers),
                         quality=args.quality, look=args.look, force=args.force)
    dt = time.perf_counter() - t0
    print(f"wrote {len(paths)} images to {args.out} ({len(paths) / max(dt, 1e-9):.1f} images/s); "
          f"contact sheet: {pathlib.Path(args.out) / f'contact_sheet_{args.look}.png'}; labels: "
          f"{pathlib.Path(args.out) / scan.SCENES_LIST}")
    return 0
