"""The world map's rule: land cover + climate + latitude -> one of the seven biomes, or none."""
import numpy as np
import pytest

from biomeseason.earth import worldmap as W
from biomeseason.earth.worldmap import BIOMES, KOPPEN

ROWS, COLS = 180, 360          # one pixel per degree: row i lies at latitude 89.5 - i


def grid(igbp: int, zone: str):
    return np.full((ROWS, COLS), igbp, np.uint8), np.full((ROWS, COLS), KOPPEN.index(zone), np.uint8)


def at(codes, lat: float, lon: float = 0.0) -> str:
    code = int(codes[int(89.5 - lat), int(lon + 180)])
    return BIOMES[code] if code < len(BIOMES) else {W.WATER: "water", W.ICE: "ice", W.OTHER: "other"}[code]


@pytest.mark.parametrize("igbp, zone, lat, biome", [
    (2, "Af", 0, "tropical_rainforest"),          # evergreen broadleaf, tropical climate
    (2, "Cfb", 45, "other"),                      # ... but a temperate rainforest is none of the seven
    (1, "Dfc", 62, "boreal_forest"),              # needleleaf in a subarctic climate
    (5, "Dfb", 55, "temperate_deciduous_forest"), # a mixed forest of a warm-summer continental climate
    (4, "Cfa", 37, "temperate_deciduous_forest"), # the Ozarks
    (10, "ET", 70, "tundra"),
    (10, "ET", 32, "other"),                      # alpine, not arctic
    (7, "Dfc", 72, "tundra"),                     # shrub tundra that MODIS calls open shrubland
    (16, "BWh", 23, "desert"),
    (7, "BSh", -25, "desert"),                    # the Australian interior's shrubland
    (9, "Aw", -12, "tropical_grassland"),
    (8, "Cwa", -13, "tropical_grassland"),        # the miombo's highlands lie in the tropics
    (10, "BSk", 48, "temperate_grassland"),       # a steppe with no desert near
    (0, "Af", 0, "water"),
    (15, "Dfc", 70, "ice"),
])
def test_each_line_of_the_rule(igbp, zone, lat, biome):
    assert at(W.biome_codes(*grid(igbp, zone)), lat) == biome


def test_a_cold_steppe_beside_a_desert_is_its_fringe_and_farmland_takes_the_biome_around_it():
    landcover, climate = grid(10, "BSk")
    climate[:, :60] = KOPPEN.index("BWk")          # a desert climate west of 120 W
    landcover[:, 200:260] = 4                      # a deciduous forest (20-80 E) ...
    climate[:, 200:260] = KOPPEN.index("Cfb")
    landcover[:, 225:235] = 12                     # ... with fields in it
    codes = W.biome_codes(landcover, climate)
    assert at(codes, 40, -110) == "desert"         # 10 degrees of steppe... within 2 of the desert
    assert at(codes, 40, -170) == "desert"         # the desert itself
    assert at(codes, 40, -60) == "temperate_grassland"
    assert at(codes, 45, 50) == "temperate_deciduous_forest"   # cropland in the forest


def test_resample_takes_the_code_at_each_pixel_centre():
    codes = np.arange(8, dtype=np.uint8).reshape(2, 4).repeat(3, axis=0).repeat(3, axis=1)   # 6 x 12
    assert (W.resample(codes, width=4, height=2) == np.arange(8).reshape(2, 4)).all()


def test_the_shipped_label_maps_agree_with_the_hand_labelled_shared_tiles():
    """The rule against the 20 regions someone chose by hand: where the rule names a biome it is almost
    always the region's (3 tiles of north-east China's farmland read as grassland), and it names one for
    most tiles."""
    import pandas as pd

    from biomeseason.labels import Vocabulary

    codes = W.label_map()
    assert codes.shape == (W.HEIGHT, W.WIDTH)
    vocab = Vocabulary.load()
    tiles = pd.read_csv(W.ROOT / "data" / "bluemarble" / "labels.csv")
    tiles = tiles[tiles["month"] == 1]
    agree = named = 0
    for t in tiles.itertuples():
        y, x = int(round((90 - t.lat) * 15 - 16)), int(round((t.lon + 180) * 15 - 16))
        tile = codes[y:y + 32, x:x + 32]
        counts = np.bincount(tile.ravel(), minlength=256)[:len(BIOMES)]
        if counts.max() >= 0.6 * tile.size:
            named += 1
            agree += BIOMES[counts.argmax()] == vocab.resolve(t.biome).biome
    assert named >= 0.9 * len(tiles) and agree >= 0.98 * named
