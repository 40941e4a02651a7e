"""bench/cameras.py's pure parts: the figures of a few images with the shipped model, and the colour measurement."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import _camera_stats as stats  # noqa: E402
import cameras  # noqa: E402

SHIPPED = ROOT / "models" / "earth.pt"


@pytest.fixture(scope="module")
def predictor():
    if not SHIPPED.is_file():
        pytest.skip("no shipped model")
    from biomeseason.predict.predictor import load_model

    return load_model(SHIPPED)


def test_summarise_counts_labelled_and_unlabelled_apart(predictor):
    tiles = cameras.shared_tiles(1)
    tiles = tiles[tiles["month"].isin([1, 7])].groupby("region").head(2).head(2)   # two labelled tiles
    photo = np.random.default_rng(0).integers(0, 256, (80, 80, 3), dtype=np.uint8)   # noise: no biome
    table = pd.concat([tiles, pd.DataFrame({"path": ["noise"], "lat": [10.0], "lon": [20.0], "biome": [""],
                                            "month": [3]})], ignore_index=True)
    table["file"] = cameras.column([*tiles["file"], photo])
    answers = cameras.answer(predictor, cameras.Set("test", "as it is", table))
    figures, groups = cameras.summarise(answers, predictor)

    assert groups is None
    assert (figures["images"], figures["labelled"], figures["rest"]) == (3, 2, 1)
    probs = answers.loc[:1, [f"p_{b}" for b in predictor.biomes]].to_numpy()
    right = [predictor.biomes[i] == b for i, b in zip(probs.argmax(1), answers["biome"][:2])]
    assert figures["acc_image"] == pytest.approx(np.mean(right))
    assert figures["flagged"] == pytest.approx(answers["unfamiliar"].mean())
    assert figures["rest_flagged"] == float(answers["unfamiliar"].iloc[2])
    for key in ("acc_map", "acc_place", "month1", "wrong_image", "rest_sure_image", "rest_sure_place"):
        assert 0 <= figures[key] <= 1, key
    true = [predictor.biomes.index(b) for b in answers["biome"][:2]]
    assert figures["nll_image"] == pytest.approx(-np.mean(np.log(probs[[0, 1], true])), rel=1e-6)
    assert figures["nll_map"] > 0 and figures["nll_place"] > 0


def test_cells_and_verdict():
    assert cameras.cell([0.5, 0.75], 4) == "2/4 · 3/4"
    assert cameras.cell([0.5, np.nan]) == "0.500 · —"
    rows = pd.DataFrame([{"model": "a", "variant": "v", "acc_image": 0.5, "acc_map": 0.9, "acc_place": 0.8},
                         {"model": "b", "variant": "v", "acc_image": 0.6, "acc_map": 0.9, "acc_place": 0.95}])
    text = cameras.verdict(rows, ["a", "b"])
    assert "image alone: b ahead" in text and "image + place: b ahead" in text
    assert "WORSE than the map alone: a, v (0.800 < 0.900)" in text
    assert "log loss" not in text   # no log losses given, none judged
    rows = rows.assign(nll_map=[0.30, 0.30], nll_place=[0.25, 0.31])
    text = cameras.verdict(rows, ["a", "b"])
    assert "in log loss image + place NOT better than the map alone: b, v (0.310 >= 0.300)" in text
    assert "a, v (0.250" not in text
    assert "beats the map alone everywhere" in cameras.verdict(rows.assign(nll_place=0.2), ["a", "b"])


def test_measure_recovers_a_known_camera():
    """A preview made from the map by real = 1.5 map + 10: the fit finds that gain and offset."""
    rng = np.random.default_rng(1)
    bm = np.zeros((2700, 5400, 3), np.uint8)
    bm[1330:1370, 2680:2720] = rng.integers(20, 100, (40, 40, 3))            # around lat 0, lon 0
    item = {"name": "x", "kind": "Sentinel-2 L2A", "product": "L2A", "month": 1, "lat": 0.3, "lon": 0.3,
            "km": 61.4, "note": "", "image": np.zeros((64, 64, 3), np.uint8)}
    rows, cols = stats.map_pixels(item)
    item["image"] = (1.5 * bm[rows, cols] + 10).round().astype(np.uint8)
    hidden = np.zeros(bm.shape[:2], bool)

    r = stats.measure_one(item, bm, hidden)
    assert r["stable"] and not r["held_out"] and r["land"] == 1.0
    np.testing.assert_allclose(r["g"], 1.5, atol=0.02)
    np.testing.assert_allclose(r["a"], 10, atol=3)
    assert r["g0"] == pytest.approx(r["fit_mean"] / r["map_mean"])

    hidden[rows, cols] = True
    assert stats.measure_one(item, bm, hidden)["held_out"]


def test_pooled_fit_is_exact_on_a_linear_camera():
    maps = np.array([[20, 30, 10], [60, 70, 40], [150, 140, 120]], float)
    rows = [{"map_mean": m, "fit_mean": 1.2 * m + np.array([5, 6, 20])} for m in maps]
    f = stats.pooled_fit(rows)
    np.testing.assert_allclose(f["g"], 1.2, atol=1e-9)
    np.testing.assert_allclose(f["a"], [5, 6, 20], atol=1e-7)
