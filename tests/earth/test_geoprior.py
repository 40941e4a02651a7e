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


def test_the_image_weight_shrinks_for_unfamiliar_images_and_zero_leaves_the_place_alone():
    rule = {"weight": 0.8, "start": 1.0, "power": 2.0}
    assert list(geoprior.image_weight_at(rule, [0.5, 1.0, 2.0])) == pytest.approx([0.8, 0.8, 0.2])
    p = prior(radius_km=300.0)
    image = np.array([[0.005, 0.99, 0.002, 0.002, 0.001]])            # the image is sure of desert
    at_70n = p.apply(image, [70.0], [10.0], weights=[0.0])             # the place alone: tundra
    assert at_70n.argmax() == TUNDRA and at_70n[0] == pytest.approx(p.place_alone([70.0], [10.0])[0])
    assert p.apply(image, [70.0], [10.0], weights=[1.0]).argmax() == DESERT
    assert np.allclose(p.apply(image, [70.0], [10.0]), p.apply(image, [70.0], [10.0], weights=[1.0]))


def test_the_fitted_weight_trusts_an_informative_image_more_than_a_noisy_one():
    rng = np.random.default_rng(0)
    p = prior(radius_km=300.0)
    n = 400
    lats = rng.choice([70.0, 25.0, 0.0, 45.0], n)
    lons = rng.uniform(-170, 170, n)
    like = p.likelihood(lats, lons)
    truth = np.array([rng.choice(np.flatnonzero(row == row.max())) for row in like])
    flip = rng.random(n) < 0.2                                    # where the map is wrong, the image must tell
    truth[flip] = rng.integers(0, 5, flip.sum())
    sharp = np.full((n, 5), 0.02)
    sharp[np.arange(n), truth] = 0.92
    noise = rng.dirichlet(np.ones(5), n)
    informative = geoprior.fit_image_weight(sharp, like, np.zeros(n), truth)
    noisy = geoprior.fit_image_weight(noise, like, np.zeros(n), truth)
    assert informative["weight"] > 0.5 > noisy["weight"]
    # images far from the training data told nothing: the rule shrinks their weight beyond a distance
    far = np.where(rng.random(n) < 0.5, 4.0, 0.5)
    mixed = np.where((far > 1)[:, None], noise, sharp)
    rule = geoprior.fit_image_weight(mixed, like, far, truth)
    assert rule["power"] > 0 and geoprior.image_weight_at(rule, [4.0])[0] < 0.5 * rule["weight"]


def test_the_image_weight_survives_a_checkpoint():
    p = prior()
    p.image_weight = {"weight": 0.6, "start": 1.5, "power": 1.0}
    meta, extra = p.to_checkpoint()
    back = geoprior.GeoPrior.from_checkpoint({"meta": {"geo_prior": meta}, "extra": extra})
    assert back.image_weight == p.image_weight
    assert list(back.weight_at([3.0])) == pytest.approx([0.3])
