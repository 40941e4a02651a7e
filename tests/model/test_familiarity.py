"""The familiarity score: made-up features, then a small trained model against images unlike its data."""
import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from biomeseason.io.images import open_rgb
from biomeseason.model.checkpoint import load_checkpoint, save_checkpoint
from biomeseason.model.familiarity import IMAGE_STATS, Familiarity, image_statistics
from biomeseason.model.network import BiomeSeasonNet, build_model
from biomeseason.model.presets import IMAGENET_MEAN, IMAGENET_STD, eval_transform
from biomeseason.prepare.manifest import read_manifest
from biomeseason.training.loop import TrainConfig, fit


def clusters(n, rng, centres):
    labels = rng.integers(0, len(centres), n)
    return centres[labels] + rng.normal(0, 1, (n, centres.shape[1])), labels


def test_about_five_percent_of_familiar_points_are_flagged_and_far_points_all_are():
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 4, (3, 8))
    train, labels = clusters(600, rng, centres)
    val, _ = clusters(400, rng, centres)
    fresh, _ = clusters(2000, rng, centres)
    fam = Familiarity().fit(train, labels)
    fam.set_threshold(val)
    assert 0.02 < fam.flags(fam.score(fresh)).mean() < 0.09
    far = centres.mean(0) + rng.normal(0, 1, (50, 8)) + 25.0
    assert fam.flags(fam.score(far)).all()
    # Nearest class, not the pooled cloud: a point at a class centre is familiar.
    assert fam.score(centres).max() < fam.threshold


def normalised(pil_images):
    tf = eval_transform(32)
    return torch.stack([tf(im) for im in pil_images]).numpy()


def test_image_statistics_describe_what_they_say():
    rng = np.random.default_rng(0)
    black = Image.new("RGB", (40, 40))
    noise = Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8))
    stats = dict(zip(["black", "noise"], image_statistics(normalised([black, noise]), IMAGENET_MEAN, IMAGENET_STD)))
    col = {name: i for i, name in enumerate(IMAGE_STATS)}
    assert stats["black"][col["dark_share"]] == 1 and stats["black"][col["flat_share"]] == 1
    assert stats["black"][col["mean_g"]] == pytest.approx(0, abs=1e-6)
    assert abs(stats["noise"][col["channel_correlation"]]) < 0.2  # independent channels
    assert np.array_equal(image_statistics(stats["noise"][None]), stats["noise"][None])  # already statistics


def test_the_score_survives_a_checkpoint_and_older_checkpoints_have_none(tmp_path):
    rng = np.random.default_rng(1)
    centres = rng.normal(0, 4, (2, 512))
    train, labels = clusters(80, rng, centres)
    images = rng.normal(0, 1, (80, 3, 32, 32))
    fam = Familiarity().fit(train, labels, images)
    fam.set_threshold(*clusters(40, rng, centres)[:1], images[:40])
    meta, tensors = fam.to_checkpoint()
    model = BiomeSeasonNet("resnet18", 2)
    base = {"arch": "resnet18", "biomes": ["a", "b"], "months": list(range(1, 13))}
    path = save_checkpoint(tmp_path / "m.pt", model.state_dict(), {**base, "familiarity": meta}, extra=tensors)
    again = Familiarity.from_checkpoint(load_checkpoint(path))
    probe, _ = clusters(10, rng, centres)
    assert np.allclose(again.score(probe, images[:10]), fam.score(probe, images[:10]))
    assert again.threshold == fam.threshold
    save_checkpoint(tmp_path / "old.pt", model.state_dict(), base)
    assert Familiarity.from_checkpoint(load_checkpoint(tmp_path / "old.pt")) is None


def test_the_precision_is_stored_as_its_upper_triangle_and_the_whole_matrix_still_reads():
    rng = np.random.default_rng(2)
    centres = rng.normal(0, 4, (3, 64))
    fam = Familiarity().fit(*clusters(200, rng, centres))
    fam.set_threshold(clusters(50, rng, centres)[0])
    meta, tensors = fam.to_checkpoint()
    n = len(fam.parts["features"].precision)
    assert tensors["familiarity.features.precision_upper"].shape == (n * (n + 1) // 2,)
    assert "familiarity.features.precision" not in tensors
    again = Familiarity.from_checkpoint({"meta": {"familiarity": meta}, "extra": tensors})
    np.testing.assert_array_equal(again.parts["features"].precision, fam.parts["features"].precision)
    whole = {k: v for k, v in tensors.items() if "precision" not in k}   # as checkpoints before the triangle
    whole["familiarity.features.precision"] = torch.from_numpy(fam.parts["features"].precision)
    older = Familiarity.from_checkpoint({"meta": {"familiarity": meta}, "extra": whole})
    probe = clusters(20, rng, centres)[0]
    np.testing.assert_array_equal(older.score(probe), fam.score(probe))


# ---------------------------------------------------------------- a trained model against odd images

def unlike_the_training_data() -> dict[str, Image.Image]:
    rng = np.random.default_rng(0)
    noise = Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    text = Image.new("RGB", (64, 64), "white")
    draw = ImageDraw.Draw(text)
    for y in range(3, 60, 10):
        draw.text((2, y), "Lorem ipsum dolor", fill="black")
    black = Image.new("RGB", (64, 64), "black")
    room = Image.new("RGB", (64, 64), (226, 214, 192))                  # a painted wall
    draw = ImageDraw.Draw(room)
    draw.rectangle([0, 44, 63, 63], fill=(138, 98, 58))                 # wooden floor
    draw.rectangle([6, 28, 30, 48], fill=(92, 52, 42))                  # a sofa
    draw.rectangle([38, 8, 58, 28], fill=(168, 196, 224))               # a window
    draw.rectangle([40, 34, 60, 50], fill=(62, 60, 70))                 # a cupboard
    return {"noise": noise, "text on white": text, "black frame": black, "indoor room": room}


@pytest.fixture(scope="module")
def small_model(tmp_path_factory):
    """Three synthetic scenes per biome and month, a ResNet-18 trained two epochs at 32 px."""
    from biomeseason.prepare.preprocess import preprocess
    from biomeseason.synthetic.generate import write_scenes

    base = tmp_path_factory.mktemp("familiar")
    write_scenes(base / "raw", per_class=3, seed=0, size=64, progress=False)
    preprocess(base / "raw", base / "processed", size=64, seed=0, workers=1, progress=False)
    result = fit(TrainConfig.from_dict(dict(data=str(base / "processed"), out=str(base / "run"), image_size=32,
                                            epochs=2, batch_size=16, lr=2e-3, progress=False)))
    return base / "processed", result


def score(payload, pil_images):
    """What prediction does: features and images of the batch, scored by the checkpoint's familiarity."""
    meta = payload["meta"]
    model = build_model(meta).eval()
    model.load_state_dict(payload["model"])
    tf = eval_transform(meta["image_size"], meta["mean"], meta["std"])
    x = torch.stack([tf(im) for im in pil_images])
    with torch.no_grad():
        feats = model.embed(x)
    fam = Familiarity.from_checkpoint(payload)
    return fam.flags(fam.score(feats.numpy(), x.numpy()))


def test_images_unlike_the_training_data_are_flagged_and_the_test_split_mostly_not(small_model):
    processed, result = small_model
    payload = load_checkpoint(result.out / "best.pt")
    odd = unlike_the_training_data()
    flagged = dict(zip(odd, score(payload, odd.values())))
    assert all(flagged.values()), flagged
    manifest = read_manifest(processed)
    test = manifest[manifest["split"] == "test"]
    share = score(payload, [open_rgb(processed / p) for p in test["path"]]).mean()
    assert share <= 0.10
    assert share == pytest.approx(result.metrics["test"]["unfamiliar_share"])  # training measured the same
    assert result.metrics["val"]["unfamiliar_share"] <= 0.10
