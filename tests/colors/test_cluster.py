"""biomeseason.colors.cluster: the batched k-means restarts against scikit-learn's KMeans, and the
shortcuts under a palette (distinct colours, CIELAB of uint8 colours, nearest centres) against
the plain numpy or scikit-image they replace."""
import warnings

import numpy as np
import pytest
from skimage.color import rgb2lab
from sklearn.cluster import KMeans
from sklearn.exceptions import ConvergenceWarning

from biomeseason.colors import cluster
from biomeseason.colors.names import lab_of


def sklearn_kmeans(points, weights, k, seed):
    """What cluster._kmeans replaces: (centres (k, 3), inertia)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)    # duplicate points: fewer clusters than k
        km = KMeans(n_clusters=k, n_init=cluster.N_INIT, tol=cluster.TOL, random_state=seed)
        km.fit(points, sample_weight=weights)
    return km.cluster_centers_, km.inertia_


def blobs(rng, k=5, per_blob=120):
    """(n, 3) points in k well-separated CIELAB-sized blobs, (n,) weights from 1 to 500."""
    centres = rng.uniform([10, -60, -60], [90, 60, 60], (k, 3))
    while np.min([np.linalg.norm(a - b) for i, a in enumerate(centres) for b in centres[i + 1:]]) < 30:
        centres = rng.uniform([10, -60, -60], [90, 60, 60], (k, 3))
    points = np.concatenate([c + rng.normal(0, 2, (per_blob, 3)) for c in centres])
    return points, rng.integers(1, 501, len(points)).astype(float)


def matched(ours, theirs):
    """ours reordered to theirs: each centre of theirs with the nearest of ours, one to one."""
    order = [int(np.argmin(np.linalg.norm(ours - c, axis=1))) for c in theirs]
    assert sorted(order) == list(range(len(theirs)))
    return ours[order]


# ------------------------------------------------------------------ k-means ---

@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_same_centres_as_scikit_learn_on_separated_weighted_blobs(seed):
    points, weights = blobs(np.random.default_rng(seed))
    centres, inertia = cluster._kmeans(points, weights, 5, seed)
    theirs, their_inertia = sklearn_kmeans(points, weights, 5, seed)
    np.testing.assert_allclose(matched(centres, theirs), theirs, atol=1e-8)
    assert inertia == pytest.approx(their_inertia, rel=1e-9)
    # and those are the blobs' weighted means
    nearest = np.argmin(((points[:, None] - centres[None]) ** 2).sum(2), 1)
    for j in range(5):
        np.testing.assert_allclose(centres[j], np.average(points[nearest == j], 0, weights[nearest == j]))


@pytest.mark.parametrize("seed", range(8))
def test_inertia_is_not_above_scikit_learns_on_random_weighted_points(seed):
    # no structure: many local optima, so the restarts and their seeding decide the result
    rng = np.random.default_rng(100 + seed)
    points = rng.uniform([0, -50, -50], [100, 50, 50], (600, 3))
    weights = rng.pareto(1.5, 600) * 100 + 1                   # a few heavy points, as pooled colours are
    for k in (3, 5, 8):
        _, inertia = cluster._kmeans(points, weights, k, seed)
        _, theirs = sklearn_kmeans(points, weights, k, seed)
        assert inertia <= theirs * (1 + 1e-9)


def test_a_seed_gives_the_same_centres_and_another_seed_other_restarts():
    points, weights = np.random.default_rng(5).normal(0, 20, (400, 3)), np.ones(400)
    first = cluster._kmeans(points, weights, 5, 7)
    again = cluster._kmeans(points, weights, 5, 7)
    assert np.array_equal(first[0], again[0]) and first[1] == again[1]
    others = [cluster._kmeans(points, weights, 5, seed)[0] for seed in range(8)]
    assert any(not np.allclose(np.sort(c, 0), np.sort(first[0], 0)) for c in others)


def test_fewer_distinct_points_than_clusters():
    # 3 distinct colours, each repeated: k = 5 must not fail, nor make a centre of nothing
    distinct = np.array([[20.0, 5, 5], [50, -30, 10], [80, 10, -40]])
    points = np.repeat(distinct, [4, 3, 5], axis=0)
    centres, inertia = cluster._kmeans(points, np.arange(1.0, 13), 5, 0)
    assert centres.shape == (5, 3) and np.isfinite(centres).all()
    assert inertia == pytest.approx(0, abs=1e-9)
    for colour in distinct:
        assert np.min(np.abs(centres - colour).max(1)) < 1e-9
    for centre in centres:                                     # every centre is one of the colours
        assert np.min(np.abs(distinct - centre).max(1)) < 1e-9


def test_duplicate_points_weigh_as_their_sum():
    points, weights = blobs(np.random.default_rng(9), k=4, per_blob=60)
    twice = np.concatenate([points, points[::3]])              # a third of the points given twice
    split = np.concatenate([weights, weights[::3]])
    split[:len(points)][::3] /= 2
    split[len(points):] /= 2
    centres, inertia = cluster._kmeans(twice, split, 4, 0)
    single, single_inertia = cluster._kmeans(points, weights, 4, 0)
    np.testing.assert_allclose(matched(centres, single), single, atol=1e-8)
    assert inertia == pytest.approx(single_inertia, rel=1e-9)


# ------------------------------------------------------------ the shortcuts ---

def test_distinct_codes_and_counts_are_those_of_np_unique():
    rng = np.random.default_rng(0)
    few = rng.integers(0, 1 << 24, 300).astype(np.int32)
    many = rng.integers(0, 1 << 24, 200_000).astype(np.int32)  # more colours than the table is sized for
    for codes in (few[rng.integers(0, 300, 50_000)], many, np.array([0xFFFFFF, 0, 0], np.int32)):
        distinct, counts = cluster._distinct(codes)
        expected = np.unique(codes, return_counts=True)
        assert np.array_equal(distinct, expected[0]) and np.array_equal(counts, expected[1])


def test_codes_are_0xrrggbb():
    rgb = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [1, 2, 3], [255, 255, 255]], np.uint8)
    assert cluster._codes(rgb).tolist() == [0xFF0000, 0x00FF00, 0x0000FF, 0x010203, 0xFFFFFF]


def test_lab_of_uint8_colours_is_scikit_images_rgb2lab_bit_for_bit():
    rng = np.random.default_rng(1)
    grey = np.repeat(np.arange(256, dtype=np.uint8)[:, None], 3, 1)
    primaries = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [0, 0, 0], [255, 255, 255]], np.uint8)
    for rgb in (grey, primaries, rng.integers(0, 256, (50_000, 3)).astype(np.uint8), primaries[:1]):
        assert np.array_equal(lab_of(rgb), rgb2lab(rgb / 255.0))
    assert np.array_equal(lab_of(grey.reshape(16, 16, 3)), rgb2lab(grey.reshape(16, 16, 3) / 255.0))


def test_nearest_centre_is_the_first_of_the_closest():
    rng = np.random.default_rng(2)
    lab = rng.uniform(-50, 50, (5000, 3))
    centres = rng.uniform(-50, 50, (6, 3))
    centres[4] = centres[1]                                    # a tie: the first of the two
    expected = np.argmin(((lab[:, None] - centres[None]) ** 2).sum(2), 1)
    assert np.array_equal(cluster._nearest(np.ascontiguousarray(lab.T), centres), expected)
    assert 4 not in cluster._nearest(np.ascontiguousarray(lab.T), centres)
