"""Camera kinds: one checkpoint reading composites as its base model did and photos as its photo model did."""
from pathlib import Path

import numpy as np
import pytest
import torch
from test_predict import make_checkpoint, random_image

from biomeseason.model import kinds
from biomeseason.model.checkpoint import load_checkpoint, save_checkpoint
from biomeseason.model.network import BiomeSeasonNet, camera_own, train_camera_own
from biomeseason.predict.predictor import load_model
from biomeseason.predict.rows import SettingError


def photo_of(base: Path, path: Path, shared_too: bool = False, scale: float = 0.05) -> Path:
    """A photo kind of ``base``: its own weights moved by ``scale`` (and, ``shared_too``, one shared weight)."""
    payload = load_checkpoint(base)
    weights = {k: v.clone() for k, v in payload["model"].items()}
    generator = torch.Generator().manual_seed(1)
    for k in camera_own(BiomeSeasonNet("resnet18", num_biomes=len(payload["meta"]["biomes"]))):
        if weights[k].is_floating_point():
            weights[k] += scale * torch.randn(weights[k].shape, generator=generator)
    if shared_too:
        weights["backbone.6.0.conv1.weight"] += 0.01
    return save_checkpoint(path, weights, {**payload["meta"], "calibration": {"biome": {"temperature": 2.0}}})


def both_kinds(base: Path, folder: Path) -> tuple[Path, Path]:
    """(``photo_of(base)``, one checkpoint of both kinds: ``base`` the composite), written in ``folder``."""
    photo = photo_of(base, folder / "photo.pt")
    model = BiomeSeasonNet("resnet18", num_biomes=len(load_checkpoint(base)["meta"]["biomes"]))
    state, meta, extra = kinds.combine(load_checkpoint(base), load_checkpoint(photo), camera_own(model))
    return photo, save_checkpoint(folder / "both.pt", state, meta, extra=extra)


@pytest.fixture(scope="module")
def two(tmp_path_factory):
    folder = tmp_path_factory.mktemp("kinds")
    base = make_checkpoint(folder / "base.pt")
    return base, *both_kinds(base, folder)


def probabilities(predictor, images) -> np.ndarray:
    return np.array([[r.biome_probs[b] for b in predictor.biomes] for r in predictor.predict(images)])


def test_each_kind_answers_exactly_as_its_own_model_did(two):
    base, photo, both = two
    images = [random_image(seed=s) for s in range(4)]
    composite = load_model(both, camera="composite")
    assert (composite.camera, composite.cameras) == ("composite", ["composite", "photo"])
    np.testing.assert_array_equal(probabilities(composite, images), probabilities(load_model(base), images))
    np.testing.assert_array_equal(probabilities(load_model(both, camera="photo"), images),
                                  probabilities(load_model(photo), images))
    assert not np.allclose(probabilities(composite, images), probabilities(load_model(photo), images))
    assert load_model(both, camera="photo").calibration["biome"] == {"temperature": 2.0}


def test_photos_are_the_default_and_a_kind_the_file_lacks_is_refused(two):
    base, _, both = two
    assert load_model(both).camera == "photo" and "reads photo images" in repr(load_model(both))
    with pytest.raises(SettingError, match="one of composite, photo, not 'satellite'"):
        load_model(both, camera="satellite")
    plain = load_model(base, camera="photo")   # a model of one kind reads every image one way
    assert plain.camera is None and plain.cameras == []


def test_only_the_kinds_own_weights_are_stored_twice(two):
    base, _, both = two
    payload = load_checkpoint(both)
    stored = [k for k in payload["extra"] if k.startswith("kind.photo.model.")]
    own = camera_own(BiomeSeasonNet("resnet18", num_biomes=len(payload["meta"]["biomes"])))
    assert sorted(stored) == sorted(f"kind.photo.model.{k}" for k in own)
    assert "backbone.0.weight" in own and "backbone.4.1.bn2.running_var" in own and "heads.biome.weight" in own
    convolutions = [k for k, v in load_checkpoint(base)["model"].items() if v.ndim == 4]
    assert [k for k in convolutions if k in own] == ["backbone.0.weight"] + [k for k in convolutions
                                                                             if k.startswith("backbone.4.")]
    assert payload["model"].keys() == load_checkpoint(base)["model"].keys()


def test_a_model_whose_shared_weights_moved_is_not_a_kind_of_the_base(tmp_path):
    base = make_checkpoint(tmp_path / "base.pt")
    moved = photo_of(base, tmp_path / "moved.pt", shared_too=True)
    model = BiomeSeasonNet("resnet18", num_biomes=len(load_checkpoint(base)["meta"]["biomes"]))
    with pytest.raises(ValueError, match=r"1 shared weights \(backbone.6.0.conv1.weight\).*--own-camera"):
        kinds.combine(load_checkpoint(base), load_checkpoint(moved), camera_own(model))


def test_shared_weights_held_in_single_precision_match_a_half_precision_base():
    half = {"w": torch.randn(8).half()}
    assert kinds._same(half["w"], half["w"].float())
    assert not kinds._same(half["w"], half["w"].float() + 1e-3)


def test_training_the_kinds_own_weights_leaves_the_shared_ones_as_they_were():
    torch.manual_seed(0)
    model = BiomeSeasonNet("resnet18", num_biomes=3)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    learning = train_camera_own(model)
    assert 0 < learning < sum(p.numel() for p in model.parameters()) / 20
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    out = model(torch.randn(4, 3, 32, 32))
    (out["biome"].sum() + out["month"].sum()).backward()
    optimizer.step()
    own = set(camera_own(model))
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in after if k not in own)
    assert any(not torch.equal(before[k], after[k]) for k in own if after[k].is_floating_point())
