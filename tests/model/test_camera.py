"""The simulated camera: what it does to a tile follows the measured physics, and it is reproducible."""
import numpy as np
import pytest
import torch

from biomeseason.model.camera import KINDS, Camera, smooth_noise
from biomeseason.model.presets import augmentation_settings, train_transform


def forest(size=32) -> torch.Tensor:
    """A Blue Marble-like rainforest tile: very dark green, almost no blue, a little texture."""
    g = torch.Generator().manual_seed(0)
    base = torch.tensor([25.0, 38.0, 11.0])[:, None, None]
    return (base + 4 * torch.randn(3, size, size, generator=g)).clamp(0, 255).to(torch.uint8)


def mean_rgb(x: torch.Tensor) -> torch.Tensor:
    return x.float().mean(dim=(1, 2))


def test_top_of_atmosphere_adds_blue_haze_and_the_composite_camera_barely_moves_the_tile():
    tile, g = forest(), torch.Generator().manual_seed(1)
    toa = torch.stack([mean_rgb(Camera().only("l1c")(tile, g)) for _ in range(20)]).mean(0)
    own = torch.stack([mean_rgb(Camera().only("bluemarble")(tile, g)) for _ in range(20)]).mean(0)
    before = mean_rgb(tile)
    # Path radiance is mostly blue: blue rises far more than red (the Amazon: 11 -> 69 in blue, 26 -> 41 in red).
    assert toa[2] - before[2] > (toa[0] - before[0]) + 15 and toa[2] - before[2] > 20
    assert (own - before).abs().max() < 6


def test_the_camera_keeps_shape_and_kind_and_is_the_same_for_a_seed():
    tile = forest()
    a = Camera()(tile, torch.Generator().manual_seed(3))
    b = Camera()(tile, torch.Generator().manual_seed(3))
    assert a.shape == tile.shape and a.dtype == torch.uint8 and torch.equal(a, b)
    floats = Camera().only("astronaut")(tile.float() / 255, torch.Generator().manual_seed(3))
    assert floats.dtype == torch.float32 and 0 <= floats.min() and floats.max() <= 1


def test_a_share_of_none_leaves_every_image_alone_and_bad_settings_are_refused():
    tile = forest()
    assert all(torch.equal(Camera(p=0.0)(tile), tile) for _ in range(5))
    with pytest.raises(ValueError, match="unknown camera kind"):
        Camera(mix={"fisheye": 1.0})
    with pytest.raises(ValueError, match="within 0..1"):
        Camera(p=1.5)


def test_an_oblique_view_is_hazier_toward_its_top():
    flat = torch.full((3, 64, 64), 30, dtype=torch.uint8)
    kind = KINDS["astronaut"]
    camera = Camera(kinds={"oblique": type(kind)(oblique_p=1.0, oblique=(1.0, 1.0), cloud_p=0.0, jpeg_p=0.0,
                                                 haze_blue=(0.2, 0.2), noise=(0, 0), blur=(0, 0))},
                    mix={"oblique": 1.0})
    out = camera(flat, torch.Generator().manual_seed(0)).float()
    assert out[2, :8].mean() > out[2, -8:].mean() + 10


def test_clouds_come_from_a_smooth_field_in_the_unit_range():
    field = smooth_noise(32, 48, np.random.default_rng(0))
    assert field.shape == (32, 48) and field.min() >= 0 and field.max() <= 1
    # smooth: neighbours differ far less than the field's range
    assert np.abs(field[:, 1:] - field[:, :-1]).mean() < 0.1


def test_training_records_the_camera_and_the_footprints_it_saw():
    settings = augmentation_settings("overhead", True, camera=0.7, min_crop=0.1)
    assert settings["camera"]["p"] == 0.7 and set(settings["camera"]["mix"]) == set(KINDS)
    assert settings["crop_scale"] == [0.1, 1.0]
    assert "camera" not in augmentation_settings("overhead", True)
    x = train_transform(32, "overhead", camera=1.0, min_crop=0.1)(forest(48))
    assert x.shape == (3, 32, 32) and torch.isfinite(x).all()


def test_a_normalised_batch_through_the_camera_keeps_its_share_and_the_rest_to_the_bit():
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    pixels = torch.rand(6, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    batch = (pixels - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    untouched = Camera(p=0.0).batch(batch, mean, std)
    assert untouched.shape == batch.shape and torch.allclose(untouched, batch, atol=1e-5)
    seen = Camera(p=1.0).batch(batch, mean, std, torch.Generator().manual_seed(1))
    assert seen.shape == batch.shape
    changed = (seen - batch).abs().flatten(1).amax(dim=1) > 1e-3
    assert changed.all()
    again = Camera(p=1.0).batch(batch, mean, std, torch.Generator().manual_seed(1))
    assert torch.equal(seen, again)   # the same draws for the same seed
