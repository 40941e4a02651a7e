"""The latitude prior on the biome: fitted from training latitudes, applied by Bayes' rule."""
import numpy as np
import pytest

from biomeseason import geoprior

CLASSES = ["tundra", "desert", "tropical_rainforest"]


def sample(n=30, seed=0):
    rng = np.random.default_rng(seed)
    lats = np.concatenate([rng.uniform(65, 75, n), -rng.uniform(20, 30, n), rng.uniform(-5, 5, n)])
    return lats, ["tundra"] * n + ["desert"] * n + ["tropical_rainforest"] * n


def test_the_likelihood_favours_the_biome_seen_at_that_latitude_in_either_hemisphere():
    prior, said = geoprior.fit(*sample(), CLASSES)
    assert prior is not None and "90 training images" in said
    for lat, biome in ((70, "tundra"), (-70, "tundra"), (25, "desert"), (-25, "desert"), (1, "tropical_rainforest")):
        like = geoprior.likelihood(prior, lat)
        assert CLASSES[int(np.argmax(like))] == biome and like.max() == pytest.approx(1.0)
        assert like.min() >= geoprior.FLOOR            # never impossible


def test_apply_reweighs_and_renormalises_and_a_flat_answer_follows_the_latitude():
    prior, _ = geoprior.fit(*sample(), CLASSES)
    flat = np.full(3, 1 / 3)
    given = geoprior.apply(flat, prior, 70.0)
    assert given.sum() == pytest.approx(1.0) and CLASSES[int(given.argmax())] == "tundra"
    sure = np.array([0.001, 0.998, 0.001])           # a sure image answer is not overturned by the floor alone
    assert CLASSES[int(geoprior.apply(sure, prior, 70.0).argmax())] == "desert"
    with pytest.raises(ValueError, match="latitude"):
        geoprior.apply(flat, prior, 91.0)


def test_no_prior_when_a_biome_has_too_few_latitudes_or_none_are_known():
    lats, biomes = sample()
    lats[:25] = np.nan                                # tundra keeps 5 latitudes
    prior, said = geoprior.fit(lats, biomes, CLASSES)
    assert prior is None and "tundra" in said
    prior, said = geoprior.fit(np.full(90, np.nan), biomes, CLASSES)
    assert prior is None and "carry no latitude" in said


def test_apply_takes_a_batch_and_leaves_rows_without_a_latitude_as_they_are():
    prior, _ = geoprior.fit(*sample(), CLASSES)
    probs = np.array([[0.2, 0.5, 0.3], [0.2, 0.5, 0.3], [0.6, 0.3, 0.1]])
    given = geoprior.apply(probs, prior, [70.0, np.nan, -25.0])
    assert given[0] == pytest.approx(geoprior.apply(probs[0], prior, 70.0))     # one row = the batch's row
    assert given[1] == pytest.approx(probs[1])                                 # no latitude: unchanged
    assert given.sum(axis=1) == pytest.approx(np.ones(3))
    assert probs[0] == pytest.approx([0.2, 0.5, 0.3])                           # the input is not changed
