"""The fast paths of one photo's prediction give the answers of the plain ones: the folded,
channels-last network, and the scene finder's own morphology against scipy's."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from biomeseason.colors import cluster
from biomeseason.model.network import BiomeSeasonNet, for_inference
from biomeseason.model.presets import IMAGENET_MEAN, IMAGENET_STD
from biomeseason.predict import scene
from biomeseason.predict.predictor import Predictor


def trained_looking(seed: int = 0) -> BiomeSeasonNet:
    """A network whose batch norms are not the identity (as after training), so folding them matters."""
    torch.manual_seed(seed)
    model = BiomeSeasonNet("resnet18", num_biomes=7)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            with torch.no_grad():
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 2.0)
    return model.eval()


@pytest.mark.parametrize("batch", [1, 5])
def test_the_inference_copy_answers_as_the_network(batch):
    model = trained_looking()
    x = torch.randn(batch, 3, 64, 64)
    fast = for_inference(model)
    with torch.inference_mode():
        plain, folded = model(x), fast(x)
        assert torch.allclose(model.embed(x), fast.embed(x), atol=1e-4)
    for task in plain:
        assert torch.allclose(plain[task].softmax(1), folded[task].softmax(1), atol=1e-5)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fast.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())   # the model itself is untouched


def test_the_predictor_follows_weights_changed_in_place():
    meta = {"arch": "resnet18", "biomes": [f"b{i}" for i in range(7)], "months": list(range(1, 13)),
            "hemisphere": "north", "image_size": 32, "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)}
    predictor = Predictor(trained_looking(0), meta, torch.device("cpu"))
    x = torch.randn(2, 3, 32, 32)
    before = predictor.probabilities(x)["biome"]
    predictor.model.load_state_dict(trained_looking(1).state_dict())
    after = predictor.probabilities(x)["biome"]
    with torch.inference_mode():
        expected = predictor.model(x)["biome"].softmax(1)
    assert torch.allclose(after, expected, atol=1e-5) and not torch.allclose(before, after, atol=1e-3)


# --------------------------------------------------------------------------- the scene finder

CROSS_ITERATIONS = [(scene._dilate, ndimage.binary_dilation), (scene._erode, ndimage.binary_erosion)]


def masks(n: int = 300):
    rng = np.random.default_rng(0)
    for _ in range(n):
        h, w = rng.integers(1, 30, 2)
        yield rng.random((h, w)) < rng.random()


def test_morphology_is_scipys_to_the_pixel():
    for mask in masks():
        for border in (False, True):
            for ours, theirs in CROSS_ITERATIONS:
                assert np.array_equal(ours(mask, border), theirs(mask, border_value=border))
        assert np.array_equal(scene._dilate_square(mask), ndimage.binary_dilation(mask, np.ones((3, 3), bool)))
        assert np.array_equal(scene._fill_holes(mask), ndimage.binary_fill_holes(mask))


def test_the_tint_is_the_whole_images_filter_inside_the_box():
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (60, 80, 3)).astype(np.float32)
    for box in [(0, 3, 0, 5), (10, 20, 30, 41), (55, 60, 70, 80), (0, 60, 0, 80)]:
        where = np.zeros((60, 80), bool)
        where[box[0]:box[1], box[2]:box[3]] = rng.random((box[1] - box[0], box[3] - box[2])) < 0.5
        where[box[0], box[2]] = where[box[1] - 1, box[3] - 1] = True
        colour = [ndimage.uniform_filter(rgb[..., i], 5) for i in range(3)]
        tint = np.max(colour, axis=0) - np.min(colour, axis=0)
        ours = scene._neutral(rgb, where)
        t, b, lft, rgt = box
        assert np.array_equal(ours[t:b, lft:rgt], (tint <= scene.DARK_TINT)[t:b, lft:rgt])
        assert not ours[~np.pad(np.ones((b - t, rgt - lft), bool), ((t, 60 - b), (lft, 80 - rgt)))].any()


def trim_by_summed_areas(mask, top, bottom, left, right):
    """The box trimming as first written: one summed-area table, four lookups an edge."""
    table = np.pad(mask, ((1, 0), (1, 0))).cumsum(0).cumsum(1)

    def share(t, b, lft, rgt):
        return (table[b, rgt] - table[t, rgt] - table[b, lft] + table[t, lft]) / ((b - t) * (rgt - lft))

    while bottom - top > 2 and right - left > 2:
        edges = [share(top, top + 1, left, right), share(bottom - 1, bottom, left, right),
                 share(top, bottom, left, left + 1), share(top, bottom, right - 1, right)]
        worst = int(np.argmin(edges))
        if edges[worst] >= scene.EDGE_EARTH:
            break
        top, bottom, left, right = (top + (worst == 0), bottom - (worst == 1), left + (worst == 2),
                                    right - (worst == 3))
    return top, bottom, left, right


def test_trimming_gives_the_box_of_the_summed_area_table():
    for mask in masks(200):
        if mask.any():
            region = ndimage.binary_fill_holes(mask)
            bounds = scene._bounds(region)
            assert scene._trim(region, *bounds) == trim_by_summed_areas(region, *bounds)


# --------------------------------------------------------------------------- colours

def test_distinct_colours_are_numpys():
    rng = np.random.default_rng(2)
    for size, colours in [(1, 1), (1000, 5), (50_000, 3000), (50_000, 1 << 24)]:
        codes = rng.integers(0, colours, size).astype(np.int32)
        ours, theirs = cluster._distinct(codes), np.unique(codes, return_counts=True)
        assert all(np.array_equal(a, b) for a, b in zip(ours, theirs))


def test_a_few_images_run_on_one_thread_and_the_threads_come_back(monkeypatch):
    meta = {"arch": "resnet18", "biomes": [f"b{i}" for i in range(7)], "months": list(range(1, 13)),
            "hemisphere": "north", "image_size": 32, "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)}
    predictor = Predictor(trained_looking(0), meta, torch.device("cpu"))
    seen = []
    monkeypatch.setattr(predictor, "_results", lambda batch, tta, *scales: seen.append(torch.get_num_threads()))
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        predictor._batch_results([object()], tta=False)
        predictor._batch_results([object()] * 32, tta=False)
        assert seen == [1, 2] and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_a_forked_child_hashes_files_with_a_thread_of_its_own(tmp_path):
    import multiprocessing

    photo = tmp_path / "p.png"
    from PIL import Image
    Image.fromarray(np.zeros((40, 50, 3), np.uint8)).save(photo)
    parent = scene.prepare(photo, 32).sha256      # starts the parent's hashing thread
    with multiprocessing.get_context("fork").Pool(1) as pool:
        child = pool.apply_async(scene.prepare, (photo, 32)).get(timeout=60).sha256
    assert child == parent and len(parent) == 64
