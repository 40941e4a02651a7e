"""The Earth's prior on the biome, from a label map: by latitude, by place, applied by Bayes' rule."""
import numpy as np
import pytest

from biomeseason.earth import geoprior

BIOMES = ["tundra", "desert", "tropical_rainforest", "temperate_deciduous_forest", "temperate_grassland"]
TUNDRA, DESERT, RAINFOREST, DECIDUOUS, GRASS, SEA = 0, 1, 2, 3, 4, 254


def toy_map() -> np.ndarray:
    """One pixel per degree (rows from 90 N): tundra 60-75 N, desert 20-30 N and S, rainforest within 10 of
    the equator, at 40-50 N deciduous forest west of 0 and grassland east of it; sea elsewhere."""
    codes = np.full((180, 360), SEA, np.uint8)
    rows = lambda north, south: slice(90 - north, 90 - south)   # noqa: E731
    codes[rows(75, 60)] = TUNDRA
    codes[rows(30, 20)] = DESERT
    codes[rows(-20, -30)] = DESERT
    codes[rows(10, -10)] = RAINFOREST
    codes[rows(50, 40), :180] = DECIDUOUS
    codes[rows(50, 40), 180:] = GRASS
    return codes


def prior(radius_km=300.0):
    return geoprior.from_codes(toy_map(), list(range(5)), BIOMES, radius_km=radius_km)


def test_the_latitude_favours_what_grows_there_and_never_rules_a_biome_out():
    like = prior().likelihood([70.0, 25.0, -25.0, 0.0, 45.0])
    assert [BIOMES[i] for i in like.argmax(1)[:4]] == ["tundra", "desert", "desert", "tropical_rainforest"]
    assert like[4, DECIDUOUS] == pytest.approx(like[4, GRASS])     # half each at 45 N
    assert like.max() == pytest.approx(1.0) and like.min() >= geoprior.FLOOR


def test_the_place_tells_apart_what_the_latitude_cannot_and_open_sea_falls_back_to_the_latitude():
    p = prior()
    west, east, lat_only = p.likelihood([45.0, 45.0, 45.0], [-90.0, 90.0, np.nan])
    assert west[DECIDUOUS] == 1.0 and west[GRASS] == pytest.approx(geoprior.FLOOR)
    assert east[GRASS] == 1.0 and east[DECIDUOUS] == pytest.approx(geoprior.FLOOR)
    assert lat_only[DECIDUOUS] == pytest.approx(lat_only[GRASS])
    sea = p.likelihood([-50.0], [0.0])            # nothing within 300 km, no land at that latitude
    assert np.isnan(sea).all()
    edge = p.likelihood([18.5], [0.0])[0]         # 1.5 degrees from the desert: within the radius
    assert edge.argmax() == DESERT
    assert prior(radius_km=0).place_share is None                  # a radius of 0: the latitude alone


def test_apply_reweighs_rows_with_a_place_and_leaves_the_others():
    p = prior()
    probs = np.array([[0.1, 0.1, 0.1, 0.35, 0.35]] * 3)
    given = p.apply(probs, [45.0, 45.0, np.nan], [-90.0, 90.0, 10.0])
    assert BIOMES[given[0].argmax()] == "temperate_deciduous_forest"
    assert BIOMES[given[1].argmax()] == "temperate_grassland"
    assert given[2] == pytest.approx(probs[2]) and given.sum(1) == pytest.approx(np.ones(3))
    sure = np.array([0.002, 0.99, 0.002, 0.003, 0.003])          # a sure image is not overturned by the floor
    assert BIOMES[p.apply(sure, 70.0).argmax()] == "desert"
    assert probs[0] == pytest.approx([0.1, 0.1, 0.1, 0.35, 0.35])  # the input is not changed
    with pytest.raises(ValueError, match="latitude"):
        p.apply(sure, 91.0)
    with pytest.raises(ValueError, match="longitude"):
        p.apply(sure, 45.0, 200.0)


def test_the_prior_survives_a_checkpoint():
    import tempfile
    from pathlib import Path

    from biomeseason.model.checkpoint import load_checkpoint, save_checkpoint

    p = prior()
    meta, extra = p.to_checkpoint()
    with tempfile.TemporaryDirectory() as tmp:
        path = save_checkpoint(Path(tmp) / "m.pt", {}, {"geo_prior": meta}, extra=extra)
        back = geoprior.GeoPrior.from_checkpoint(load_checkpoint(path))
    assert back.biomes == BIOMES and back.radius_km == p.radius_km
    q = [[45.0, -90.0], [45.0, 90.0], [70.0, 5.0], [-25.0, np.nan]]
    lats, lons = np.array(q).T
    assert back.likelihood(lats, lons) == pytest.approx(p.likelihood(lats, lons), abs=2e-3)   # float16 shares


def test_a_vocabulary_the_map_does_not_know_gets_no_prior_and_the_default_one_gets_the_earths():
    prior_, said = geoprior.for_biomes(["cropland", "urban"])
    assert prior_ is None and "cropland" in said
    from biomeseason.labels import Vocabulary

    earth, said = geoprior.for_biomes(Vocabulary.load().biomes)
    assert earth is not None and earth.place_share.shape == (180, 360, 7)
    names = Vocabulary.load().biomes
    like = earth.likelihood([62.0, 23.0, -3.0], [100.0, 10.0, -60.0])   # central Siberia, the Sahara, the Amazon
    assert [names[i] for i in like.argmax(1)] == ["boreal_forest", "desert", "tropical_rainforest"]
