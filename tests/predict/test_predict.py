"""Prediction: results against a hand-made forward pass, image modes, TTA, Grad-CAM,
the CLI on a folder with bad files, the errors a user meets, and predict.ipynb."""
from __future__ import annotations

import csv
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import assert_clean_notebook
from PIL import Image

from biomeseason.__main__ import main as cli
from biomeseason.io.images import ImageError
from biomeseason.labels import Vocabulary, north_month, season_of
from biomeseason.model.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from biomeseason.model.network import BiomeSeasonNet
from biomeseason.model.presets import IMAGENET_MEAN, IMAGENET_STD, dihedral, eval_transform
from biomeseason.predict import cli as predict_cli
from biomeseason.predict import explain, scene
from biomeseason.predict import predictor as predict
from biomeseason.predict.predictor import ModelNotFoundError, Predictor, default_model_path, load_model

ROOT = Path(__file__).resolve().parents[2]
BIOMES = Vocabulary.load().biomes
SIZE = 32  # network input: small keeps every test fast
CSV_HEAD = ["path", "biome", "biome_p", "month", "month_p", "season"]


def make_checkpoint(path: Path, arch="resnet18", num_biomes=None, seed=0, extra=None, **meta) -> Path:
    num_biomes = num_biomes or len(BIOMES)
    torch.manual_seed(seed)
    model = BiomeSeasonNet(arch, num_biomes=num_biomes)
    full_meta = {"arch": arch, "biomes": BIOMES[:num_biomes], "months": list(range(1, 13)),
                 "hemisphere": "north", "image_size": SIZE, "mean": list(IMAGENET_MEAN),
                 "std": list(IMAGENET_STD), "config": {}, "metrics": {}, "epoch": 1}
    full_meta.update(meta)
    return save_checkpoint(path, model.state_dict(), full_meta, extra=extra)


def random_image(w=48, h=40, seed=0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8))


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("model") / "best.pt")


@pytest.fixture(scope="module")
def predictor(checkpoint):
    return load_model(checkpoint)


@pytest.fixture
def photo(tmp_path) -> Path:
    path = tmp_path / "photo.png"
    random_image().save(path)
    return path


# --------------------------------------------------------------------------- results

def test_prediction_matches_a_forward_pass_by_hand(predictor, checkpoint, photo):
    [result] = predictor.predict(photo)

    model = BiomeSeasonNet("resnet18", num_biomes=len(BIOMES)).eval()
    model.load_state_dict(load_checkpoint(checkpoint)["model"])
    x = eval_transform(SIZE, IMAGENET_MEAN, IMAGENET_STD)(Image.open(photo).convert("RGB"))
    with torch.no_grad():
        out = model(x[None])
    biome_p, month_p = out["biome"].softmax(1)[0], out["month"].softmax(1)[0]

    np.testing.assert_allclose([result.biome_probs[b] for b in BIOMES], biome_p, atol=1e-5)
    np.testing.assert_allclose([result.month_probs[m] for m in range(1, 13)], month_p, atol=1e-5)
    assert result.biome == BIOMES[int(biome_p.argmax())]
    assert result.month == int(month_p.argmax()) + 1
    assert result.season == season_of(result.month, "north")
    in_season = [p for m, p in zip(range(1, 13), month_p.tolist()) if season_of(m) == result.season]
    assert result.season_p == pytest.approx(sum(in_season), abs=1e-5)
    assert sum(result.season_probs.values()) == pytest.approx(1, abs=1e-5)
    assert result.biome_top[0] == (result.biome, result.biome_p)
    assert [p for _, p in result.biome_top] == sorted(biome_p.tolist(), reverse=True)[:3]
    assert [m for m, _ in result.month_top] == (month_p.argsort(descending=True)[:3] + 1).tolist()


def test_southern_hemisphere_shifts_the_season(predictor, photo):
    south_meta = {**predictor.meta, "hemisphere": "south"}
    south = Predictor(predictor.model, south_meta, predictor.device).predict(photo)[0]
    north = predictor.predict(photo)[0]
    assert south.month == north.month
    assert south.season == season_of(north.month, "south") != north.season
    assert south.season_probs["summer"] == pytest.approx(north.season_probs["winter"], abs=1e-6)


@pytest.fixture(scope="module")
def north_frame(tmp_path_factory) -> Predictor:
    """A model whose month head answers northern-equivalent months (as training now writes)."""
    return load_model(make_checkpoint(tmp_path_factory.mktemp("frame") / "best.pt", month_frame="north"))


def test_a_southern_image_gets_its_own_calendar_month(north_frame, photo):
    north = north_frame.predict(photo)[0]
    south = north_frame.predict(photo, hemisphere="south")[0]
    assert (north.hemisphere, south.hemisphere) == ("north", "south")
    assert south.month == north_month(north.month, "south") != north.month
    assert south.month_p == pytest.approx(north.month_p)
    assert south.month_probs[north_month(3, "south")] == pytest.approx(north.month_probs[3])
    assert south.season == north.season == season_of(south.month, "south")   # one look, one season
    assert [m for m, _ in south.month_top] == [north_month(m, "south") for m, _ in north.month_top]
    # One hemisphere per source, too.
    mixed = north_frame.predict([photo, photo], hemisphere=["north", "south"])
    assert [r.month for r in mixed] == [north.month, south.month]
    with pytest.raises(ValueError, match="hemisphere"):
        north_frame.predict(photo, hemisphere="east")


def test_the_hemisphere_comes_from_exif_gps_when_not_told(north_frame, tmp_path):
    for name, latitude in (("south.jpg", -33.5), ("north.jpg", 48.0)):
        exif = Image.Exif()
        gps = exif.get_ifd(0x8825)
        gps[1], gps[2] = ("S" if latitude < 0 else "N"), (abs(latitude), 0.0, 0.0)
        random_image().save(tmp_path / name, exif=exif.tobytes(), quality=95)
    south, north = north_frame.predict([tmp_path / "south.jpg", tmp_path / "north.jpg"])
    assert (south.hemisphere, north.hemisphere) == ("south", "north")
    told = north_frame.predict(tmp_path / "south.jpg", hemisphere="north")[0]
    assert told.hemisphere == "north" and south.month == north_month(told.month, "south")


def test_predict_hemisphere_option_reaches_the_csv(north_frame, photo, tmp_path):
    out = tmp_path / "p.csv"
    assert cli(["predict", str(photo), "--model", str(north_frame.path), "--out", str(out),
                "--hemisphere", "south", "--workers", "0"]) == 0
    row = read_csv(out)[0]
    plain = north_frame.predict(photo)[0]
    assert row["hemisphere"] == "south" and int(row["month"]) == north_month(plain.month, "south")


def test_predict_camera_option_chooses_the_shipped_models_kind(tmp_path, capsys):
    tile = ROOT / "data" / "bluemarble" / "DV" / "DV_sahara-0930-2625_Jul.png"
    model = ROOT / "models" / "earth.pt"
    rows = {}
    for kind in ("composite", "photo"):
        out = tmp_path / f"{kind}.csv"
        assert cli(["predict", str(tile), "--model", str(model), "--out", str(out), "--camera", kind,
                    "--workers", "0"]) == 0
        rows[kind] = read_csv(out)[0]
        expected = load_model(model, camera=kind).predict(tile)[0]
        assert rows[kind]["biome"] == expected.biome and rows[kind]["camera"] == kind == expected.camera
        assert float(rows[kind]["biome_p"]) == pytest.approx(expected.biome_p, abs=5e-5)   # 4 decimals in the CSV
    assert rows["composite"]["biome_p"] != rows["photo"]["biome_p"]
    default = tmp_path / "default.csv"
    assert cli(["predict", str(tile), "--model", str(model), "--out", str(default), "--workers", "0"]) == 0
    assert read_csv(default)[0]["biome_p"] == rows["photo"]["biome_p"]   # photos are what users have
    # One file holds one kind's answers: --resume with the other kind is refused, and nothing changes.
    before = default.read_bytes()
    capsys.readouterr()
    assert cli(["predict", str(tile), "--model", str(model), "--out", str(default), "--camera", "composite",
                "--resume", "--workers", "0"]) == 2
    err = capsys.readouterr().err
    assert "its rows were answered by the photo kind, and this run would answer with the composite kind" in err
    assert default.read_bytes() == before and not predict_cli.partial_path(default).exists()
    assert cli(["predict", str(tile), "--model", str(model), "--out", str(default), "--camera", "photo",
                "--resume", "--workers", "0"]) == 0 and default.read_bytes() == before
    # Rows of a version that did not say which kind answered: refused for a model of two kinds.
    older = tmp_path / "older.csv"
    header = [c for c in predict.COLUMNS if c != "camera"]
    older.write_text(",".join(header) + "\nprevious,run,0,1,0,winter" + "," * (len(header) - 7) + ",abc\n")
    assert cli(["predict", str(tile), "--model", str(model), "--out", str(older), "--resume", "--workers", "0"]) == 2
    assert "do not say which camera kind answered them" in capsys.readouterr().err
    capsys.readouterr()
    assert cli(["predict", str(tile), "--model", str(model), "--camera", "composite", "--workers", "0"]) == 0
    assert "its composite kind (--camera photo reads them the other way)" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli(["predict", str(tile), "--camera", "satellite"])
    assert "invalid choice: 'satellite'" in capsys.readouterr().err


@pytest.fixture(scope="module")
def with_geo_prior(tmp_path_factory) -> Predictor:
    """A model with the Earth's prior of a toy map (tests/earth/test_geoprior.py): tundra far north, desert in the
    subtropics, rainforest on the equator, deciduous forest west and grassland east at 40-50 N."""
    return placed_model(tmp_path_factory.mktemp("geo") / "best.pt")


def placed_model(path: Path, codes=None) -> Predictor:
    """A tiny model written to ``path`` with the prior of a toy map of codes (tundra 0, desert 1, rainforest 2,
    deciduous forest 3, grassland 4; default ``test_geoprior.toy_map``)."""
    from test_geoprior import toy_map

    from biomeseason.earth import geoprior

    codes_of = {"tundra": 0, "desert": 1, "tropical_rainforest": 2, "temperate_deciduous_forest": 3,
                "temperate_grassland": 4}
    codes = toy_map() if codes is None else codes
    prior = geoprior.from_codes(codes, [codes_of.get(b, 99) for b in BIOMES], BIOMES)
    meta, extra = prior.to_checkpoint()
    return load_model(make_checkpoint(path, month_frame="north", geo_prior=meta, extra=extra))


def test_a_known_place_weighs_the_biome_and_sets_the_hemisphere(with_geo_prior, photo):
    alone = with_geo_prior.predict(photo)[0]
    north, south = with_geo_prior.predict([photo, photo], lat=[70.0, -70.0])
    assert alone.lat is None and north.lat == 70.0 and ", given latitude 70.0°" in north.summary()
    assert north.biome_probs["tundra"] > alone.biome_probs["tundra"]
    assert sum(north.biome_probs.values()) == pytest.approx(1.0)
    assert south.biome_probs == pytest.approx(alone.biome_probs)          # no land at 70 S on the toy map
    assert (north.hemisphere, south.hemisphere) == ("north", "south")
    west, east = with_geo_prior.predict([photo, photo], lat=45.0, lon=[-90.0, 90.0])
    assert west.biome == "temperate_deciduous_forest" and east.biome == "temperate_grassland"
    assert (west.lat, west.lon) == (45.0, -90.0) and "given the place 45.0°, -90.0°" in west.summary()
    with pytest.raises(ValueError, match="latitude"):
        with_geo_prior.predict(photo, lat=95.0)
    with pytest.raises(ValueError, match="longitude"):
        with_geo_prior.predict(photo, lat=45.0, lon=190.0)


def test_a_model_without_a_prior_answers_from_the_image_alone(north_frame, photo):
    alone, given = north_frame.predict([photo, photo], lat=[None, 70.0], lon=[None, 10.0])
    assert given.lat is None and given.lon is None and given.biome_probs == pytest.approx(alone.biome_probs)
    assert given.hemisphere == "north"


def test_predict_place_options_reach_the_csv_and_bad_ones_are_refused(with_geo_prior, photo, tmp_path, capsys):
    out = tmp_path / "p.csv"
    assert cli(["predict", str(photo), "--model", str(with_geo_prior.path), "--out", str(out),
                "--lat", "45", "--lon", "90", "--workers", "0"]) == 0
    row = read_csv(out)[0]
    assert (float(row["lat"]), float(row["lon"]), row["hemisphere"]) == (45.0, 90.0, "north")
    assert row["biome"] == with_geo_prior.predict(photo, lat=45.0, lon=90.0)[0].biome == "temperate_grassland"
    for bad, said in ((["--lat", "100"], "--lat 100.0: must be within -90..90"),
                      (["--lon", "20"], "--lon needs --lat"),
                      (["--lat", "10", "--lon", "200"], "--lon 200.0: must be within -180..180")):
        assert cli(["predict", str(photo), "--model", str(with_geo_prior.path), "--out", str(tmp_path / "q.csv"),
                    *bad]) == 2
        assert said in capsys.readouterr().err


def test_predict_meta_csv_gives_each_photo_its_place(with_geo_prior, tmp_path, capsys):
    photos = tmp_path / "photos"
    photos.mkdir()
    for i, name in enumerate(("west.png", "east.png", "unlisted.png")):
        random_image(seed=i).save(photos / name)
    meta = tmp_path / "catalogue.csv"
    meta.write_text("path,lat,lon\nphotos/west.png,45,-90\neast.png,45.0,90.0\n")   # by path, by file name
    out = tmp_path / "p.csv"
    assert cli(["predict", str(photos), "--model", str(with_geo_prior.path), "--out", str(out),
                "--meta", str(meta), "--workers", "0"]) == 0
    rows = {Path(r["path"]).name: r for r in read_csv(out)}
    assert rows["west.png"]["biome"] == "temperate_deciduous_forest" and rows["west.png"]["lon"] == "-90.0"
    assert rows["east.png"]["biome"] == "temperate_grassland"
    assert rows["unlisted.png"]["lat"] == "" and rows["unlisted.png"]["lon"] == ""
    assert "places for 2 of 3 images" in capsys.readouterr().err
    meta.write_text("path,latitude\nwest.png,45\n")
    assert cli(["predict", str(photos), "--model", str(with_geo_prior.path), "--out", str(tmp_path / "q.csv"),
                "--meta", str(meta)]) == 2
    assert "lacks the column(s) lat, lon" in capsys.readouterr().err
    assert cli(["predict", str(photos), "--model", str(with_geo_prior.path), "--out", str(tmp_path / "q.csv"),
                "--meta", str(meta), "--lat", "3"]) == 2
    assert "use one of them" in capsys.readouterr().err


def test_batches_keep_order_and_values(predictor):
    images = [random_image(seed=i) for i in range(5)]
    together = predictor.predict(images, batch_size=2)
    alone = [predictor.predict(img)[0] for img in images]
    for a, b in zip(together, alone):
        assert a.biome == b.biome and a.month == b.month
        np.testing.assert_allclose(list(a.biome_probs.values()), list(b.biome_probs.values()), atol=1e-5)


def test_arrays_and_pil_images_predict_like_files(predictor, photo):
    from_file = predictor.predict(photo)[0]
    image = Image.open(photo)
    for source in (image, np.asarray(image)):
        result = predictor.predict(source)[0]
        np.testing.assert_allclose(list(result.biome_probs.values()), list(from_file.biome_probs.values()),
                                   atol=1e-6)


def test_on_error_skips_an_unreadable_image_and_continues(predictor, photo, tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_text("not an image")
    seen = []
    results = predictor.predict([photo, bad, photo], on_error=lambda src, err: seen.append((src, err)))
    assert [r.path for r in results] == [str(photo), str(photo)]
    assert seen[0][0] == bad and isinstance(seen[0][1], ImageError)


# --------------------------------------------------------------------------- TTA

def d4_symmetric_image(n: int) -> Image.Image:
    """Unchanged by every rotation and flip: a function of |dx|, |dy| symmetric in the two."""
    c = (n - 1) / 2
    dy, dx = np.abs(np.mgrid[0:n, 0:n] - c)
    r2, cross, chebyshev = dx ** 2 + dy ** 2, dx * dy, np.maximum(dx, dy)
    rgb = np.stack([r2 / r2.max(), cross / cross.max(), (chebyshev % 5) / 4], axis=-1)
    return Image.fromarray((rgb * 255).astype(np.uint8))


def test_tta_equals_plain_prediction_on_a_rotation_symmetric_image(predictor):
    image = d4_symmetric_image(SIZE)
    x = predictor.to_tensor(image)
    assert all(torch.equal(dihedral(x, k), x) for k in range(8))  # the premise of the test
    plain, tta = predictor.predict(image)[0], predictor.predict(image, tta=True)[0]
    np.testing.assert_allclose(list(tta.biome_probs.values()), list(plain.biome_probs.values()), atol=1e-6)
    np.testing.assert_allclose(list(tta.month_probs.values()), list(plain.month_probs.values()), atol=1e-6)


@pytest.mark.parametrize("transpose", [Image.Transpose.ROTATE_90, Image.Transpose.FLIP_LEFT_RIGHT,
                                       Image.Transpose.TRANSPOSE])
def test_tta_is_invariant_to_rotating_or_flipping_the_input(predictor, transpose):
    image = random_image(SIZE, SIZE, seed=3)
    plain = predictor.predict(image)[0]
    tta = predictor.predict(image, tta=True)[0]
    turned = predictor.predict(image.transpose(transpose), tta=True)[0]
    np.testing.assert_allclose(list(turned.biome_probs.values()), list(tta.biome_probs.values()), atol=1e-5)
    np.testing.assert_allclose(list(turned.month_probs.values()), list(tta.month_probs.values()), atol=1e-5)
    # ...while the single view does change: TTA really averaged something.
    assert not np.allclose(list(tta.biome_probs.values()), list(plain.biome_probs.values()), atol=1e-6)


# --------------------------------------------------------------------------- Grad-CAM

def test_grad_cam_maps_have_the_input_size_and_lie_in_0_1(predictor, photo):
    result = predictor.predict(photo)[0]
    cams = explain.grad_cams(predictor, photo, result)
    assert set(cams) == {"biome", "month"}
    for cam in cams.values():
        assert cam.shape == (SIZE, SIZE) and cam.dtype == np.float32
        assert np.isfinite(cam).all() and cam.min() >= 0 and cam.max() <= 1
        assert cam.max() in (0.0, 1.0)  # normalised, or no positive evidence at all
    assert explain.grad_cams(predictor, photo, size=50)["biome"].shape == (50, 50)


def test_grad_cam_follows_the_channels_the_class_reads():
    """A class scoring 2 * mean(channel a) - mean(channel b): its Grad-CAM is relu(2 A_a - A_b), scaled."""
    torch.manual_seed(0)
    model = BiomeSeasonNet("resnet18", num_biomes=3).eval()
    a, b = 17, 40
    with torch.no_grad():
        for head in model.heads.values():
            head.weight.zero_()
            head.bias.zero_()
        model.heads["biome"].weight[1, a] = 2.0
        model.heads["biome"].weight[1, b] = -1.0
    x = torch.randn(1, 3, 128, 128)
    cams = explain.class_activation_maps(model, x, {"biome": 1, "month": 0}, size=128)

    with torch.no_grad():
        features = model.forward_features(x)                               # (1, 512, 4, 4)
    evidence = F.relu(2 * features[:, a] - features[:, b])[:, None]        # (1, 1, 4, 4)
    expected = F.interpolate(evidence, size=(128, 128), mode="bilinear", align_corners=False)[0, 0]
    assert expected.max() > 0
    np.testing.assert_allclose(cams["biome"], (expected / expected.max()).numpy(), atol=1e-5)
    assert cams["month"].max() == 0  # a zero head has no evidence anywhere


# --------------------------------------------------------------------------- images

def save(image: Image.Image, path: Path, **kw) -> Path:
    image.save(path, **kw)
    return path


@pytest.mark.parametrize("mode", ["L", "P", "RGBA", "CMYK", "I;16", "1", "LA"])
def test_every_image_mode_predicts(predictor, tmp_path, mode):
    base = random_image()
    image = Image.fromarray(np.asarray(base.convert("L"), np.uint16) * 257) if mode == "I;16" else base.convert(mode)
    path = save(image, tmp_path / f"img.{'jpg' if mode == 'CMYK' else 'png'}")
    [result] = predictor.predict(path)
    assert result.biome in BIOMES and 1 <= result.month <= 12
    assert sum(result.biome_probs.values()) == pytest.approx(1, abs=1e-5)


def test_exif_rotated_photo_is_turned_upright(predictor, tmp_path):
    upright = np.zeros((40, 60, 3), np.uint8)
    upright[:, :30] = (255, 0, 0)
    upright[:, 30:] = (0, 0, 255)
    stored = Image.fromarray(upright).transpose(Image.Transpose.ROTATE_90)     # as a sideways camera saves it
    exif = Image.Exif()
    exif[0x0112] = 6                                                          # "rotate 90 clockwise to view"
    path = save(stored, tmp_path / "sideways.jpg", exif=exif, quality=95)
    shown = np.asarray(predict.images.open_rgb(path), np.int16)
    assert shown.shape == upright.shape
    assert np.abs(shown - upright).mean() < 10
    assert predictor.predict(path)[0].biome in BIOMES


def test_a_big_jpeg_is_decoded_at_reduced_scale(predictor, tmp_path):
    path = save(random_image(2000, 1500), tmp_path / "big.jpg", quality=80)
    small = predictor.open(path, scene=False)
    assert SIZE <= min(small.size) < 2 * SIZE
    assert scene.SCENE_SIZE <= min(predictor.open(path).size) < 2 * scene.SCENE_SIZE
    assert predictor.predict(path)[0].biome in BIOMES


# --------------------------------------------------------------------------- errors

def test_a_non_image_is_an_error_naming_the_file(predictor, tmp_path, photo):
    text = tmp_path / "notes.jpg"
    text.write_text("these are my notes")
    truncated = tmp_path / "cut.jpg"
    save(random_image(200, 200), truncated, quality=90)
    truncated.write_bytes(truncated.read_bytes()[:1500])
    for bad in (text, truncated, tmp_path / "missing.png"):
        with pytest.raises(ImageError, match=bad.name):
            predictor.predict([photo, bad])


def test_no_model_says_how_to_train_one(tmp_path):
    with pytest.raises(ModelNotFoundError) as e:
        load_model(tmp_path / "models" / "best.pt")
    assert "make demo" in str(e.value) and "python -m biomeseason train" in str(e.value)


def test_the_default_model_is_the_users_then_the_shipped_then_the_demos(tmp_path, monkeypatch, checkpoint):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(predict, "ROOT", tmp_path / "repository")
    with pytest.raises(ModelNotFoundError, match="make demo"):
        default_model_path()
    demo = tmp_path / "runs" / "demo" / "model" / "best.pt"
    demo.parent.mkdir(parents=True)
    demo.write_bytes(checkpoint.read_bytes())
    assert default_model_path() == Path("runs/demo/model/best.pt")
    assert load_model().path == Path("runs/demo/model/best.pt")
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "earth.pt").write_bytes(checkpoint.read_bytes())
    assert default_model_path() == Path("models/earth.pt")
    (tmp_path / "models" / "best.pt").write_bytes(checkpoint.read_bytes())
    assert default_model_path() == Path("models/best.pt")


def test_the_repository_ships_a_model_that_loads_weights_only_with_its_prior():
    shipped = predict.ROOT / "models" / "earth.pt"
    predictor = load_model(shipped)
    assert predictor.geo is not None and predictor.geo.place_share is not None
    assert predictor.meta["earth"]["rule"] and predictor.meta["earth"]["figures"]
    assert shipped.stat().st_size <= 25 * 2**20


class WritesAMarker:
    """A pickle that, if it were ever unpickled unsafely, would create a file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


@pytest.mark.parametrize("writer", ["torch.save", "pickle"])
def test_a_foreign_pickle_is_refused_and_never_runs(tmp_path, writer):
    def write(path: Path, marker: Path):
        with open(path, "wb") as f:
            payload = {"model": WritesAMarker(marker)}
            torch.save(payload, f) if writer == "torch.save" else pickle.dump(payload, f, protocol=2)

    control, marker = tmp_path / "control-ran", tmp_path / "model-ran"
    write(tmp_path / "control.pt", control)
    with open(tmp_path / "control.pt", "rb") as f:  # the payload works when trusted...
        torch.load(f, weights_only=False) if writer == "torch.save" else pickle.load(f)
    assert control.exists()

    write(tmp_path / "best.pt", marker)
    with pytest.raises(CheckpointError, match="not a biomeseason checkpoint"):
        load_model(tmp_path / "best.pt")
    assert not marker.exists()  # ...and load_model never trusted it


def test_a_checkpoint_of_another_architecture_is_refused(tmp_path, checkpoint):
    payload = load_checkpoint(checkpoint)
    weights, meta = payload["model"], payload["meta"]

    save_checkpoint(tmp_path / "arch.pt", weights, {**meta, "arch": "resnet34"})
    with pytest.raises(CheckpointError, match=r"do not fit the resnet34 .*missing"):
        load_model(tmp_path / "arch.pt")

    save_checkpoint(tmp_path / "classes.pt", weights, {**meta, "biomes": BIOMES[:5]})
    with pytest.raises(CheckpointError, match=r"5 biomes.*wrong shape \(heads.biome"):
        load_model(tmp_path / "classes.pt")

    # These are refused on the metadata alone, before any weight is looked at.
    tiny = {"w": torch.zeros(1)}
    save_checkpoint(tmp_path / "unknown.pt", tiny, {**meta, "arch": "vit_b_16"})
    with pytest.raises(CheckpointError, match="vit_b_16"):
        load_model(tmp_path / "unknown.pt")

    old = {k: v for k, v in meta.items() if k != "image_size"}
    save_checkpoint(tmp_path / "old.pt", tiny, old)
    with pytest.raises(CheckpointError, match="image_size"):
        load_model(tmp_path / "old.pt")


# --------------------------------------------------------------------------- CLI

def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_cli_predicts_a_folder_and_skips_bad_files(checkpoint, predictor, tmp_path, capsys):
    folder = tmp_path / "photos"
    (folder / "trip" / "day2").mkdir(parents=True)
    good = [save(random_image(seed=1), folder / "a.png"),
            save(random_image(seed=2), folder / "trip" / "day2" / "b.jpg"),
            save(random_image(seed=3).convert("L"), folder / "trip" / "c.tif")]
    (folder / "fake.jpg").write_text("not a jpeg")
    save(random_image(300, 300, seed=4), folder / "trip" / "cut.jpg", quality=90)
    (folder / "trip" / "cut.jpg").write_bytes((folder / "trip" / "cut.jpg").read_bytes()[:2000])
    (folder / "notes.txt").write_text("ignored: not an image by name")
    (folder / ".DS_Store").write_bytes(b"\0\1")
    extra = save(random_image(seed=5), tmp_path / "extra.png")
    out = tmp_path / "pred.csv"

    code = cli(["predict", str(folder), str(extra), "--model", str(checkpoint), "--out", str(out),
                "--batch-size", "2", "--device", "cpu"])

    assert code == 0
    err = capsys.readouterr().err
    assert "fake.jpg: not an image" in err and "cut.jpg: truncated" in err and "2 unreadable" in err
    # The skipped files are on disk beside --out, with why; the last line counts them and names that file.
    skipped = predict_cli.skipped_path(out)
    assert skipped == tmp_path / "pred.skipped.csv"
    reasons = {Path(r["path"]).name: r["reason"] for r in read_csv(skipped)}
    assert reasons["fake.jpg"].startswith("not an image") and reasons["cut.jpg"].startswith("truncated")
    assert reasons["notes.txt"] == reasons[".DS_Store"] == predict_cli.IGNORED and len(reasons) == 4
    last = err.strip().splitlines()[-1]
    assert last.startswith("predicted 4 of 6 images") and "(1 not an image, 1 truncated;" in last
    assert last.endswith(f"every skipped file and why: {skipped}")
    rows = read_csv(out)
    assert sorted(r["path"] for r in rows) == sorted(map(str, good + [extra]))
    assert list(rows[0])[:6] == CSV_HEAD
    for row in rows:
        assert row["biome_top1"] == row["biome"] and row["month_top1"] == row["month"]
        assert float(row["biome_top1_p"]) >= float(row["biome_top2_p"]) >= float(row["biome_top3_p"])
        assert row["season"] == season_of(int(row["month"]))
        expected = predictor.predict(row["path"])[0]
        assert row["biome"] == expected.biome and float(row["biome_p"]) == pytest.approx(expected.biome_p, abs=1e-4)


def test_a_damaged_folder_ends_on_one_line_with_counts_a_few_examples_and_the_skipped_list(checkpoint, tmp_path,
                                                                                            capsys):
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(3):
        save(random_image(seed=i), folder / f"good_{i}.png")
    for i in range(9):
        (folder / f"bad_{i}.jpg").write_text("not a jpeg") if i % 3 else (folder / f"bad_{i}.png").write_bytes(b"")
    out = tmp_path / "pred.csv"
    assert cli(["predict", str(folder), "--model", str(checkpoint), "--out", str(out), "--workers", "2"]) == 0
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    assert "Traceback" not in err and last.startswith("predicted 3 of 12 images")
    assert "9 unreadable, skipped (6 not an image, 3 empty file; e.g. bad_0.png, bad_1.jpg, bad_2.jpg, ...)" in last
    assert "bad_5" not in last   # no more than a few examples: the list is in the file
    listed = read_csv(predict_cli.skipped_path(out))
    assert [Path(r["path"]).name for r in listed] == sorted(p.name for p in folder.glob("bad_*"))

    # Mended, the folder is predicted whole: the old list, ours, is emptied rather than left to mislead.
    for bad in folder.glob("bad_*"):
        bad.unlink()
    assert cli(["predict", str(folder), "--model", str(checkpoint), "--out", str(out)]) == 0
    assert read_csv(predict_cli.skipped_path(out)) == [] and "skipped" not in capsys.readouterr().err

    # A file of the user's where the list would go is refused before any work, as --out is.
    mine = tmp_path / "mine.csv"
    theirs = predict_cli.skipped_path(mine)
    theirs.write_text("my,own\n1,2\n")
    refused(capsys, cli(["predict", str(folder), "--model", str(checkpoint), "--out", str(mine)]), str(theirs))
    assert theirs.read_text() == "my,own\n1,2\n" and not mine.exists()


def test_cli_fails_only_when_nothing_could_be_predicted(checkpoint, tmp_path, capsys):
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "fake.png").write_text("no")
    out = tmp_path / "pred.csv"
    assert cli(["predict", str(folder), "--model", str(checkpoint), "--out", str(out)]) == 1
    assert not out.exists() and "nothing could be predicted" in capsys.readouterr().err

    assert cli(["predict", str(folder), "--model", str(tmp_path / "none.pt"), "--out", str(out)]) == 2
    assert "make demo" in capsys.readouterr().err


def test_an_empty_result_keeps_the_previous_csv(checkpoint, tmp_path, capsys):
    out = tmp_path / "pred.csv"
    good = save(random_image(), tmp_path / "good.png")
    assert cli(["predict", str(good), "--model", str(checkpoint), "--out", str(out)]) == 0
    before = out.read_bytes()
    (tmp_path / "fake.png").write_text("no")
    assert cli(["predict", str(tmp_path / "fake.png"), "--model", str(checkpoint), "--out", str(out)]) == 1
    assert out.read_bytes() == before
    assert "left as it was" in capsys.readouterr().err


def refused(capsys, code: int, *words) -> None:
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert err.startswith("error: ") and len(err.splitlines()) == 1, err
    for word in words:
        assert word in err


def test_bad_arguments_are_refused_before_any_work(checkpoint, tmp_path, capsys):
    photo = save(random_image(), tmp_path / "photo.png")
    listing = tmp_path / "mine.csv"
    listing.write_text("my,own\n1,2\n")
    before = {p: p.read_bytes() for p in (photo, listing)}
    base = ["predict", "--model", str(checkpoint)]
    refused(capsys, cli([*base, str(photo), "--out", str(photo), "--force"]), "photo.png")
    refused(capsys, cli([*base, str(photo), str(listing), "--out", str(listing), "--force"]), "input")
    refused(capsys, cli([*base, str(photo), "--out", str(tmp_path)]), "folder")
    refused(capsys, cli([*base, str(photo), "--out", str(listing)]), "--force")
    refused(capsys, cli([*base, str(photo), "--batch-size", "0", "--out", str(tmp_path / "p.csv")]),
            "--batch-size")
    refused(capsys, cli([*base, str(photo), "--max-pixels", "0", "--out", str(tmp_path / "p.csv")]),
            "--max-pixels")
    refused(capsys, cli([*base, str(tmp_path / "gone.jpg"), "--out", str(tmp_path / "p.csv")]), "gone.jpg")
    assert {p: p.read_bytes() for p in before} == before
    assert not (tmp_path / "p.csv").exists()
    assert cli([*base, str(photo), "--out", str(listing), "--force"]) == 0
    assert list(read_csv(listing)[0])[:6] == CSV_HEAD


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root may write anywhere")
def test_an_unwritable_out_is_refused(checkpoint, tmp_path, capsys):
    photo = save(random_image(), tmp_path / "photo.png")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        code = cli(["predict", str(photo), "--model", str(checkpoint), "--out", str(locked / "p.csv")])
        refused(capsys, code, "permission")
    finally:
        locked.chmod(0o700)


def test_a_too_large_image_is_skipped_with_its_reason(checkpoint, tmp_path, capsys):
    small = save(random_image(), tmp_path / "small.png")
    big = save(random_image(400, 300), tmp_path / "big.png")
    out = tmp_path / "p.csv"
    assert cli(["predict", str(small), str(big), "--model", str(checkpoint), "--out", str(out),
                "--max-pixels", "100000"]) == 0
    assert "big.png: too large: 400x300" in capsys.readouterr().err
    assert [r["path"] for r in read_csv(out)] == [str(small)]


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_run_keeps_the_previous_csv_and_leaves_no_temporary_file(checkpoint, tmp_path, sig,
                                                                                  spawn):
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(300):
        save(random_image(seed=i), folder / f"img_{i:03d}.png")
    results = tmp_path / "results"
    results.mkdir()
    out = results / "pred.csv"
    out.write_text(",".join(CSV_HEAD) + "\nprevious,run,0,1,0,winter\n")
    before = out.read_bytes()
    process = spawn([sys.executable, "-m", "biomeseason", "predict", str(folder), "--model",
                                str(checkpoint), "--out", str(out), "--batch-size", "1", "--device", "cpu"],
                               stderr=subprocess.PIPE, text=True, cwd=ROOT)
    deadline = time.monotonic() + 60
    while len(list(results.iterdir())) < 2 and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.01)   # a second file beside --out: the run is writing
    assert process.poll() is None, "the run ended before it could be interrupted"
    time.sleep(0.3)
    process.send_signal(sig)
    err = process.communicate(timeout=60)[1]
    assert process.returncode == 130, err
    assert "Traceback" not in err
    assert out.read_bytes() == before
    assert not [p for p in results.iterdir() if p.name.endswith(".tmp")]


# --------------------------------------------------------------------------- predict.ipynb

def notebook_text(cells) -> str:
    return "".join(o.get("text", "") for c in cells if c.cell_type == "code" for o in c.outputs)


def test_predict_notebook_is_committed_clean_with_a_parameters_cell():
    import nbformat

    nb = nbformat.read(ROOT / "predict.ipynb", as_version=4)
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")
    params = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1 and params[0] is next(c for c in nb.cells if c.cell_type == "code")
    for name in ("IMAGE_PATH", "MODEL_PATH = None", "TTA = False"):
        assert name in params[0].source
    assert all(not c.outputs and c.execution_count is None for c in nb.cells if c.cell_type == "code")


@pytest.mark.slow
def test_predict_notebook_runs_with_papermill_parameters_and_reruns_on_a_new_image(tmp_path):
    """Papermill with parameters (a real tile, the shipped model); then, in the same kernel, IMAGE_PATH is
    changed to another real tile and only the prediction cell is run again, as a user does: the model is not
    reloaded, and the two answers differ."""
    import nbformat
    import papermill

    checkpoint = ROOT / "models" / "earth.pt"
    predictor = load_model(checkpoint, camera="composite")   # Blue Marble tiles
    photo = ROOT / "data" / "bluemarble" / "Deciduous" / "Deciduous_europe-carpathian-0585-3002_Oct.png"
    second = ROOT / "data" / "bluemarble" / "DV" / "DV_sahara-0930-2625_Jul.png"

    nb = nbformat.read(ROOT / "predict.ipynb", as_version=4)
    predict_cell = next(c for c in nb.cells if "show_prediction(predictor, IMAGE_PATH" in c.source)
    load_at = next(i for i, c in enumerate(nb.cells) if "load_or_explain(MODEL_PATH" in c.source)
    assert load_at < nb.cells.index(predict_cell)
    rerun = [nbformat.v4.new_code_cell(f"IMAGE_PATH = {str(second)!r}\nloaded_before = id(predictor)"),
             nbformat.v4.new_code_cell(predict_cell.source),
             nbformat.v4.new_code_cell("print('same model object:', id(predictor) == loaded_before)")]
    # The interactive view, driven in the kernel as clicks would: another folder, another photo, a place.
    clicks = nbformat.v4.new_code_cell(
        "shown = bytes(view.picture.value)\n"
        f"view.folder.value = {str(second.parent)!r}\n"
        f"view.choice.value = {str(second)!r}\n"
        "print('view:', view.result.summary())\n"
        "print('redrawn:', bytes(view.picture.value) != shown)\n"
        "view.lat.value, view.lon.value = '26.25', '31.0'\n"
        "print('view given the place:', view.result.summary())")
    assert "bs.browse(predictor" in nb.cells[-1].source
    nb.cells.extend([clicks, *rerun])
    source, out = tmp_path / "in.ipynb", tmp_path / "predict.ipynb"
    nbformat.write(nb, source)

    papermill.execute_notebook(str(source), str(out), kernel_name="python3", cwd=str(ROOT),
                               parameters={"IMAGE_PATH": str(photo), "MODEL_PATH": str(checkpoint), "TTA": True,
                                           "CAMERA": "composite"},
                               progress_bar=False, execution_timeout=300)
    assert_clean_notebook(out)
    done = nbformat.read(out, as_version=4)
    first_run, second_run = done.cells[:-4], done.cells[-2:]
    viewed = notebook_text(done.cells[-4:-3])
    assert f"view: {predictor.predict(second, tta=True)[0].summary()}" in viewed and "redrawn: True" in viewed
    assert f"view given the place: {predictor.predict(second, tta=True, lat=26.25, lon=31.0)[0].summary()}" in viewed
    assert predictor.predict(photo, tta=True)[0].summary() in notebook_text(first_run)
    figures = [o for c in first_run if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {})]
    assert figures, "the prediction figure is missing"
    answers = [predictor.predict(image, tta=True)[0].summary() for image in (photo, second)]
    assert answers[1] in notebook_text(second_run) and answers[0] != answers[1]
    assert "same model object: True" in notebook_text(second_run)


@pytest.mark.slow
def test_predict_notebook_with_its_defaults_answers_a_real_tile_with_the_shipped_model(tmp_path):
    """A fresh clone: no model of the user's, nothing edited; the shipped model answers the shipped tile."""
    import nbformat
    import papermill

    out = tmp_path / "predict.ipynb"
    papermill.execute_notebook(str(ROOT / "predict.ipynb"), str(out), kernel_name="python3", cwd=str(ROOT),
                               parameters={"MODEL_PATH": str(ROOT / "models" / "earth.pt")}, progress_bar=False,
                               execution_timeout=300)
    assert_clean_notebook(out)
    text = notebook_text(nbformat.read(out, as_version=4).cells)
    expected = load_model(ROOT / "models" / "earth.pt").predict(
        ROOT / "data" / "bluemarble" / "Deciduous" / "Deciduous_europe-carpathian-0585-3002_Oct.png")[0]
    assert expected.summary() in text and "models/earth.pt" in out.read_text()   # the loaded model's line


@pytest.mark.slow
def test_predict_notebook_says_one_sentence_for_a_wrong_image_or_model(checkpoint, tmp_path):
    import nbformat
    import papermill

    (tmp_path / "bad.jpg").write_text("not an image")
    cases = [({"IMAGE_PATH": str(tmp_path / "missing.jpg"), "MODEL_PATH": str(checkpoint)}, "missing.jpg"),
             ({"IMAGE_PATH": str(tmp_path / "bad.jpg"), "MODEL_PATH": str(checkpoint)}, "not an image"),
             ({"IMAGE_PATH": str(tmp_path / "bad.jpg"), "MODEL_PATH": str(tmp_path / "no.pt")}, "make demo")]
    for parameters, words in cases:
        out = tmp_path / "out.ipynb"
        papermill.execute_notebook(str(ROOT / "predict.ipynb"), str(out), kernel_name="python3", cwd=str(ROOT),
                                   parameters=parameters, progress_bar=False, execution_timeout=300)
        outputs = [o for c in nbformat.read(out, as_version=4).cells if c.cell_type == "code" for o in c.outputs]
        assert not [o for o in outputs if o.output_type == "error"]
        assert words in "".join(o.get("text", "") for o in outputs)


# --------------------------------------------------------------------------- calibration, familiarity, views

def logits_by_hand(checkpoint: Path, image) -> dict[str, torch.Tensor]:
    model = BiomeSeasonNet("resnet18", num_biomes=len(BIOMES)).eval()
    model.load_state_dict(load_checkpoint(checkpoint)["model"])
    x = eval_transform(SIZE, IMAGENET_MEAN, IMAGENET_STD)(image)
    with torch.no_grad():
        return {k: v[0] for k, v in model(x[None]).items()}


def test_probabilities_are_divided_by_the_stored_temperature(tmp_path):
    calibration = {"biome": {"temperature": 2.5}, "month": {"temperature": 0.5}}
    path = make_checkpoint(tmp_path / "calibrated.pt", calibration=calibration)
    image = random_image(seed=11)
    [result] = load_model(path).predict(image)
    logits = logits_by_hand(path, image)
    np.testing.assert_allclose(list(result.biome_probs.values()), (logits["biome"] / 2.5).softmax(0), atol=1e-5)
    np.testing.assert_allclose(list(result.month_probs.values()), (logits["month"] / 0.5).softmax(0), atol=1e-5)


def familiar_checkpoint(tmp_path: Path, reference: Image.Image, other: Image.Image) -> Path:
    """A checkpoint whose familiarity score knows ``reference`` and sets the threshold halfway to ``other``."""
    from biomeseason.model.familiarity import Familiarity

    base = make_checkpoint(tmp_path / "base.pt")
    predictor = load_model(base)
    with torch.no_grad():
        x = torch.stack([predictor.to_tensor(reference), predictor.to_tensor(other)])
        features = predictor.model.embed(x).double().numpy()
    familiarity = Familiarity(features[:1], np.eye(features.shape[1]))
    familiarity.threshold = float(familiarity.score(features)[1]) / 2
    fam_meta, tensors = familiarity.to_checkpoint()
    payload = load_checkpoint(base)
    return save_checkpoint(tmp_path / "familiar.pt", payload["model"], {**payload["meta"], "familiarity": fam_meta},
                           extra=tensors)


def test_unfamiliar_flag_and_score_come_from_the_stored_familiarity(tmp_path, checkpoint):
    known, strange = random_image(seed=1), Image.new("RGB", (48, 40), (255, 255, 255))
    predictor = load_model(familiar_checkpoint(tmp_path, known, strange))
    ok, flagged = predictor.predict([known, strange])
    assert ok.unfamiliar is False and ok.familiarity_score == pytest.approx(0, abs=1e-3)
    assert flagged.unfamiliar is True and flagged.familiarity_score > predictor.familiarity.threshold
    assert ok.to_row()["unfamiliar"] is False and flagged.to_row()["unfamiliar"] is True
    old = load_model(checkpoint).predict(known)[0]      # written before familiarity existed
    assert old.unfamiliar is None and old.familiarity_score is None
    assert old.to_row()["unfamiliar"] == "" and old.to_row()["familiarity"] == ""


def test_a_flagged_image_gets_no_bold_answer_and_a_warning(tmp_path, capsys):
    import matplotlib
    matplotlib.use("Agg")
    known, strange = random_image(seed=1), Image.new("RGB", (48, 40), (255, 255, 255))
    predictor = load_model(familiar_checkpoint(tmp_path, known, strange))
    for image, flagged in ((known, False), (strange, True)):
        path = save(image, tmp_path / f"{flagged}.png")
        result = explain.show_prediction(predictor, path)
        assert (predict.UNFAMILIAR_WARNING in capsys.readouterr().out) is flagged
        fig = explain.plot_prediction(path, result)
        title = fig.axes[0].title
        assert (title.get_fontweight() == "bold") is not flagged
        assert (predict.UNFAMILIAR_WARNING.split()[0] in title.get_text()) is flagged


def test_the_notebook_cell_says_a_bad_hemisphere_in_one_sentence(north_frame, photo, capsys):
    import matplotlib
    matplotlib.use("Agg")
    assert explain.show_prediction(north_frame, photo, hemisphere="east") is None
    printed = capsys.readouterr().out.strip()
    assert "edit HEMISPHERE and run again" in printed and len(printed.splitlines()) == 1
    assert explain.show_prediction(north_frame, photo, lat=95.0) is None
    printed = capsys.readouterr().out.strip()
    assert "edit LAT and run again" in printed and len(printed.splitlines()) == 1
    result = explain.show_prediction(north_frame, photo, hemisphere="south")
    assert result.hemisphere == "south" and capsys.readouterr().out.startswith(result.summary())
    assert result.summary().endswith("southern hemisphere")


@pytest.mark.parametrize("view, expected", [("upright", [0, 4]), ("overhead", list(range(8)))])
def test_tta_uses_only_the_views_the_model_was_trained_with(tmp_path, view, expected):
    path = make_checkpoint(tmp_path / f"{view}.pt", view=view)
    predictor = load_model(path)
    assert predictor.tta_views == expected
    image = random_image(SIZE, SIZE, seed=2)
    [tta] = predictor.predict(image, tta=True)
    x = predictor.to_tensor(image)[None]
    with torch.no_grad():
        mean = torch.stack([predictor.model(dihedral(x, k))["biome"].softmax(1)[0] for k in expected]).mean(0)
    np.testing.assert_allclose(list(tta.biome_probs.values()), mean, atol=1e-5)


# --------------------------------------------------------------------------- scene

def framed_photo(path: Path) -> tuple[Path, tuple[int, int, int, int]]:
    """Earth (noise) pasted into black margins with a white caption band below."""
    frame = np.zeros((300, 400, 3), np.uint8)
    box = (50, 30, 350, 240)
    frame[box[1]:box[3], box[0]:box[2]] = np.asarray(random_image(300, 210, seed=8))
    frame[260:] = 245
    frame[270:280, 20:200] = 10      # a line of "text"
    return save(Image.fromarray(frame), path), box


def test_prediction_crops_to_the_scene_and_reports_the_box(predictor, checkpoint, tmp_path):
    path, drawn = framed_photo(tmp_path / "framed.png")
    result = predictor.predict(path)[0]
    inter = np.prod(np.clip(np.minimum(result.scene_box[2:], drawn[2:]) - np.maximum(result.scene_box[:2],
                                                                                     drawn[:2]), 0, None))
    union = np.prod(np.subtract(result.scene_box[2:], result.scene_box[:2])) + 300 * 210 - inter
    assert inter / union >= 0.9 and result.image_size == (400, 300)
    x = predictor.transform(Image.open(path).convert("RGB").crop(result.scene_box))[None]
    np.testing.assert_allclose(list(result.biome_probs.values()), predictor.probabilities(x)["biome"][0], atol=1e-5)
    whole = predictor.predict(path, scene=False)[0]
    assert whole.scene_box == (0, 0, 400, 300)

    out = tmp_path / "p.csv"
    assert cli(["predict", str(path), "--model", str(checkpoint), "--out", str(out), "--workers", "0"]) == 0
    assert read_csv(out)[0]["scene_box"] == ",".join(map(str, result.scene_box))
    assert cli(["predict", str(path), "--model", str(checkpoint), "--out", str(out), "--no-scene",
                "--workers", "0"]) == 0
    assert read_csv(out)[0]["scene_box"] == "0,0,400,300"


# --------------------------------------------------------------------------- streaming and resume

@pytest.fixture
def folder_of_photos(tmp_path) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(11):
        save(random_image(60 + i, 50, seed=20 + i), folder / f"img_{i:02d}.{'jpg' if i % 2 else 'png'}")
    (folder / "bad.jpg").write_text("not an image")
    return folder


def test_streaming_with_workers_equals_one_image_at_a_time(predictor, checkpoint, folder_of_photos, tmp_path):
    out = tmp_path / "p.csv"
    assert cli(["predict", str(folder_of_photos), "--model", str(checkpoint), "--out", str(out),
                "--workers", "2", "--batch-size", "4", "--device", "cpu"]) == 0
    rows = read_csv(out)
    assert [r["path"] for r in rows] == [str(p) for p in sorted(folder_of_photos.glob("img_*"))]
    assert not list(tmp_path.glob("*.partial"))
    for row in rows:
        alone = predictor.predict(row["path"])[0]
        assert row["biome"] == alone.biome and int(row["month"]) == alone.month
        assert float(row["biome_p"]) == pytest.approx(alone.biome_p, abs=1e-4)
        assert float(row["month_p"]) == pytest.approx(alone.month_p, abs=1e-4)
        assert row["sha256"] == alone.sha256 and len(row["sha256"]) == 64


def interrupt_forward(monkeypatch, at_call: int):
    """Make the predictor's forward pass raise KeyboardInterrupt (Ctrl-C) at its ``at_call``-th call;
    returns the real one, to put back with ``monkeypatch.setattr(predict.Predictor, "_forward", it)``."""
    forward, calls = predict.Predictor._forward, []

    def interrupted(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == at_call:
            raise KeyboardInterrupt
        return forward(self, *args, **kwargs)

    monkeypatch.setattr(predict.Predictor, "_forward", interrupted)
    return forward


def test_resume_after_an_interrupted_run_gives_the_same_csv(checkpoint, folder_of_photos, tmp_path, monkeypatch,
                                                            capsys):
    base = ["predict", str(folder_of_photos), "--model", str(checkpoint), "--batch-size", "3", "--workers", "0"]
    complete = tmp_path / "complete.csv"
    assert cli([*base, "--out", str(complete)]) == 0

    out = tmp_path / "p.csv"
    out.write_text(",".join(predict.COLUMNS) + "\nprevious,run,0,1,0,winter" + "," * (len(predict.COLUMNS) - 6) + "\n")
    before = out.read_bytes()
    forward = interrupt_forward(monkeypatch, at_call=3)
    assert cli([*base, "--out", str(out)]) == 130
    assert out.read_bytes() == before                   # --out untouched
    partial = predict_cli.partial_path(out)
    assert len(read_csv(partial)) == 6                  # two whole batches kept
    assert "--resume" in capsys.readouterr().err
    monkeypatch.setattr(predict.Predictor, "_forward", forward)

    assert cli([*base, "--out", str(out), "--resume"]) == 0
    assert not partial.exists() and not list(tmp_path.glob(".*tmp"))
    assert out.read_bytes() == complete.read_bytes()
    assert "6 rows kept" in capsys.readouterr().err
    # The bad file, met before the interruption, is in the resumed run's list, once: the list is whole.
    skipped = predict_cli.skipped_path(out).read_bytes()
    assert skipped == predict_cli.skipped_path(complete).read_bytes() and skipped.count(b"bad.jpg") == 1

    # Resuming a complete run predicts nothing and changes nothing.
    assert cli([*base, "--out", str(out), "--resume"]) == 0
    assert out.read_bytes() == complete.read_bytes()


# --------------------------------------------------------------------------- answers on screen

def test_a_few_images_are_answered_on_screen_and_nothing_is_written(checkpoint, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    for i in range(2):
        random_image(seed=i).save(tmp_path / f"photo{i}.png")
    assert cli(["predict", "photo0.png", "photo1.png", "--model", str(checkpoint), "--workers", "0"]) == 0
    out = capsys.readouterr().out
    lines = out.strip().splitlines()
    assert lines[0].split()[:4] == ["image", "biome", "month", "season"] and len(lines) == 3
    expected = load_model(checkpoint).predict(tmp_path / "photo1.png")[0]
    assert "photo1.png" in lines[2] and f"{expected.biome} ({expected.biome_p:.2f})" in lines[2]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photo0.png", "photo1.png"]   # no CSV, no folder


def test_json_lines_for_scripts(checkpoint, tmp_path, capsys):
    import json

    random_image().save(tmp_path / "photo.png")
    assert cli(["predict", str(tmp_path / "photo.png"), "--model", str(checkpoint), "--json", "--workers", "0"]) == 0
    [row] = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    assert row["path"].endswith("photo.png") and row["biome"] in BIOMES and 0 <= row["biome_p"] <= 1


def test_many_images_stream_to_a_csv_of_ours_with_a_summary(checkpoint, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(predict_cli, "SHOWN", 2)
    (tmp_path / "photos").mkdir()
    for i in range(3):
        random_image(seed=i).save(tmp_path / "photos" / f"p{i}.png")
    assert cli(["predict", "photos", "--model", str(checkpoint), "--workers", "0"]) == 0
    printed = capsys.readouterr()
    rows = read_csv(tmp_path / predict_cli.BATCH_OUT)
    assert len(rows) == 3 and "biomes: " in printed.out and str(predict_cli.BATCH_OUT) in printed.err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photos", "runs"]


def test_a_photo_of_known_footprint_is_seen_at_the_scale_the_model_learnt(tmp_path, photo):
    from biomeseason.model.presets import at_footprint

    big = np.asarray(random_image(300, 200, seed=3))
    small = at_footprint(big, 60.0, 7.4)                             # 60 km at 7.4 km a pixel: 8 pixels across
    assert small.shape == (5, 8, 3) and small.dtype == np.uint8
    assert abs(small.mean() - big.mean()) < 3                         # an area average keeps the colours
    assert at_footprint(big, 10000.0, 7.4) is big                     # coarser already: as it is
    assert at_footprint(big, 1.2, 7.4, smallest=25).shape == (17, 25, 3)   # never below the smallest view
    # the smallest view the Earth model learnt: a 32 px tile cropped to the least share of its area
    assert predict.smallest_view_of({"augmentation": {"crop_scale": [0.6, 1.0]}}) == 25
    assert predict.smallest_view_of({"augmentation": {"crop_scale": [0.25, 1.0]}}) == 16
    assert predict.smallest_view_of({}) == 32
    plain = load_model(make_checkpoint(tmp_path / "plain.pt"))
    with pytest.raises(ValueError, match="does not know the ground scale"):
        plain.predict(photo, footprint_km=60.0)
    scaled = load_model(make_checkpoint(tmp_path / "earth.pt", km_per_pixel=7.4))
    scaled.smallest_view = 4                                           # 29.6 km: 60 km is 8 px, 20 km is not
    as_is, told, auto = (scaled.predict(photo, footprint_km=f, scene=False)[0] for f in (None, 60.0, "auto"))
    pixels = np.asarray(Image.open(photo).convert("RGB"))
    reduced = scaled.predict(Image.fromarray(at_footprint(pixels, 60.0, 7.4)), scene=False)
    assert told.biome_probs == pytest.approx(reduced[0].biome_probs, abs=1e-5)
    assert told.biome_probs != pytest.approx(as_is.biome_probs, abs=1e-5)
    # finer ground than the smallest view is shown at it: 20 km and 1 km alike, as 4 px, not as 3 or 2
    fine, finer = (scaled.predict(photo, footprint_km=f, scene=False)[0] for f in (20.0, 1.0))
    at_smallest = scaled.predict(Image.fromarray(at_footprint(pixels, 4 * 7.4, 7.4)), scene=False)[0]
    assert fine.biome_probs == pytest.approx(at_smallest.biome_probs, abs=1e-5)
    assert finer.biome_probs == pytest.approx(at_smallest.biome_probs, abs=1e-5)
    assert finer.biome_probs != pytest.approx(
        scaled.predict(Image.fromarray(at_footprint(pixels, 1.0, 7.4)), scene=False)[0].biome_probs, abs=1e-5)
    # "auto": the mean of the image as it is and at each of FOOTPRINTS, none finer than the smallest view
    assert scaled.auto_footprints() == list(predict.FOOTPRINTS)
    scaled.smallest_view = 25                                          # 185 km: 120 and 60 km are seen at it, once
    assert scaled.auto_footprints() == [240.0, 25 * 7.4]
    auto = scaled.predict(photo, footprint_km="auto", scene=False)[0]
    views = [as_is] + [scaled.predict(photo, footprint_km=f, scene=False)[0] for f in (240.0, 25 * 7.4)]
    mean = {b: np.mean([v.biome_probs[b] for v in views]) for b in scaled.biomes}
    assert auto.biome_probs == pytest.approx(mean, abs=1e-5)
    with pytest.raises(ValueError, match="footprint_km"):
        scaled.predict(photo, footprint_km="wide")
    with pytest.raises(ValueError, match="above 0"):
        scaled.predict(photo, footprint_km=-5.0)


def test_the_footprint_comes_from_the_lens_and_the_height(tmp_path):
    from biomeseason.predict.scene import Prepared

    ready = Prepared("p.jpg", box=(0, 0, 1000, 800), size=(2000, 1600), focal_35mm=400.0)
    # 36 mm / 400 mm x 400 km = 36 km across the frame; the scene is half the frame's width
    assert predict._from_focal(ready, 400.0) == pytest.approx(18.0)
    assert predict._from_focal(ready, None) is None
    assert predict._from_focal(Prepared("q.jpg", box=(0, 0, 10, 10), size=(10, 10)), 400.0) is None


def test_predict_footprint_options_are_checked(with_geo_prior, photo, tmp_path, capsys):
    for bad, said in ((["--footprint-km", "wide"], "--footprint-km wide: must be a number of km above 0, or auto"),
                      (["--footprint-km", "0"], "--footprint-km 0: must be"),
                      (["--altitude-km", "-1"], "--altitude-km -1.0: must be a height above 0 km")):
        assert cli(["predict", str(photo), "--model", str(with_geo_prior.path), "--out", str(tmp_path / "q.csv"),
                    *bad]) == 2
        assert said in capsys.readouterr().err
    meta = tmp_path / "m.csv"
    meta.write_text(f"path,footprint_km\n{photo},-3\n")
    assert cli(["predict", str(photo), "--model", str(with_geo_prior.path), "--out", str(tmp_path / "r.csv"),
                "--meta", str(meta)]) == 2
    assert "footprint_km of" in capsys.readouterr().err
