"""The network, the losses and the checkpoint format, without any data."""
import colorsys
import json
import pickle
import types

import pytest
import torch

from biomeseason.model.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from biomeseason.model.network import BiomeSeasonNet, build_model, load_backbone_weights, load_matching
from biomeseason.model.presets import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    VIEWS,
    augmentation_settings,
    dihedral,
    train_transform,
    tta_views,
)
from biomeseason.training.loop import TrainConfig, _biome_weights, circular_soft_targets, masked_losses


@pytest.mark.parametrize("arch,features", [("resnet18", 512), ("resnet50", 2048)])
def test_heads_have_the_right_shapes(arch, features):
    model = BiomeSeasonNet(arch, num_biomes=5).eval()
    x = torch.randn(3, 3, 64, 64)
    out = model(x)
    assert out["biome"].shape == (3, 5) and out["month"].shape == (3, 12)
    assert model.forward_features(x).shape == (3, features, 2, 2)
    assert all(torch.isfinite(v).all() for v in out.values())


def test_every_parameter_gets_a_gradient():
    torch.manual_seed(0)
    model = BiomeSeasonNet("resnet18", num_biomes=4)
    x, biome, month = torch.randn(4, 3, 64, 64), torch.tensor([0, 1, 2, 3]), torch.tensor([0, 5, 11, 3])
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    # Residual blocks start as identity (zero-initialised last BN), so the convolutions
    # inside them only receive gradient once that BN has moved: check after one step.
    for _ in range(2):
        optimizer.zero_grad()
        loss_b, loss_m = masked_losses(model(x), biome, month, 1.0)
        (loss_b + loss_m).backward()
        optimizer.step()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []


def test_masked_loss_matches_a_hand_computation():
    biome_logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 0.0], [0.0, 1.0, 3.0]])
    month_logits = torch.randn(3, 12, generator=torch.Generator().manual_seed(1))
    biome = torch.tensor([0, -1, 2])    # second image has no biome
    month = torch.tensor([-1, 11, 0])   # first image has no month
    loss_b, loss_m = masked_losses({"biome": biome_logits, "month": month_logits}, biome, month, 0.0)
    # By hand: mean of -log softmax at the true class over the labelled rows only.
    lb = [-torch.log_softmax(biome_logits[i], 0)[biome[i]] for i in (0, 2)]
    lm = [-torch.log_softmax(month_logits[i], 0)[month[i]] for i in (1, 2)]
    assert loss_b.item() == pytest.approx(float(sum(lb) / 2), rel=1e-6)
    assert loss_m.item() == pytest.approx(float(sum(lm) / 2), rel=1e-6)


def test_by_default_every_biome_weighs_alike_in_the_loss_however_many_images_it_has():
    assert TrainConfig().balance == "weights"
    # Biome 0 has six images, biome 1 two, biome 2 one; -1 is an image without a biome (left out).
    biome = torch.tensor([0, 0, 0, 0, 0, 0, 1, 1, 2, -1])
    weights = _biome_weights(types.SimpleNamespace(biome=biome), 3)
    counts = torch.tensor([6.0, 2.0, 1.0])
    assert torch.allclose(weights * counts, torch.full((3,), 3.0))   # 9 images, 3 biomes: 3 each
    logits = torch.randn(10, 3, generator=torch.Generator().manual_seed(2))
    logits[:6, 0] += 3.0   # the many images of biome 0 are easy: an unweighted mean would hide the others
    loss_b, _ = masked_losses({"biome": logits, "month": torch.zeros(10, 12)}, biome,
                              torch.full((10,), -1), 1.0, weights)
    # Over the training set, the weighted loss is the mean over biomes of each biome's mean loss.
    per_image = -torch.log_softmax(logits[:9], 1)[torch.arange(9), biome[:9]]
    per_biome = [per_image[biome[:9] == b].mean() for b in range(3)]
    assert loss_b.item() == pytest.approx(float(sum(per_biome) / 3), rel=1e-5)
    assert loss_b.item() != pytest.approx(float(per_image.mean()), rel=1e-3)
    # Any batch's loss is the plain mean of its images' weighted losses, not divided by the batch's
    # weights: so batches cut apart (several processes, whose gradients DistributedDataParallel
    # averages) give what the whole batch gives.
    halves = [masked_losses({"biome": logits[i:i + 4], "month": torch.zeros(4, 12)}, biome[i:i + 4],
                            torch.full((4,), -1), 1.0, weights)[0] for i in (0, 4)]
    whole = masked_losses({"biome": logits[:8], "month": torch.zeros(8, 12)}, biome[:8],
                          torch.full((8,), -1), 1.0, weights)[0]
    assert whole.item() == pytest.approx((halves[0].item() + halves[1].item()) / 2, rel=1e-5)


def test_a_head_with_no_labels_in_the_batch_contributes_zero_but_stays_in_the_graph():
    out = {"biome": torch.randn(2, 3, requires_grad=True), "month": torch.randn(2, 12, requires_grad=True)}
    loss_b, loss_m = masked_losses(out, torch.tensor([1, 2]), torch.tensor([-1, -1]), 1.0)
    assert loss_m.item() == 0.0 and loss_m.requires_grad


def test_circular_soft_labels_wrap_december_to_january():
    t = circular_soft_targets(torch.tensor([0, 11, 5]), 12, sigma=1.0)
    assert torch.allclose(t.sum(1), torch.ones(3))
    assert t[0].argmax() == 0 and t[0, 11] == pytest.approx(t[0, 1].item())  # Jan: Dec and Feb alike
    assert t[1, 0] == pytest.approx(t[1, 10].item())                       # Dec: Jan and Nov alike
    assert t[2, 0] < t[2, 4]                                               # far months get less
    assert torch.equal(circular_soft_targets(torch.tensor([3]), 12, 0.0)[0], torch.eye(12)[3])


META = {"arch": "resnet18", "biomes": ["a", "b", "c"], "months": list(range(1, 13)),
        "hemisphere": "north", "image_size": 64, "mean": [0.5] * 3, "std": [0.25] * 3}


def test_checkpoint_round_trip_rebuilds_the_model(tmp_path):
    model = BiomeSeasonNet("resnet18", 3).eval()
    path = save_checkpoint(tmp_path / "m.pt", model.state_dict(), META)
    payload = load_checkpoint(path)
    assert payload["meta"] == json.loads(json.dumps(META))
    again = build_model(payload["meta"]).eval()
    again.load_state_dict(payload["model"])
    x = torch.randn(1, 3, 64, 64)
    assert torch.equal(model(x)["biome"], again(x)["biome"])
    assert not list(tmp_path.glob(".*.tmp"))  # the temporary file was renamed away


def test_meta_must_be_json(tmp_path):
    with pytest.raises(TypeError):
        save_checkpoint(tmp_path / "m.pt", {}, {"bad": object()})
    assert not (tmp_path / "m.pt").exists()


class _WritesMarker:
    """Unpickling this would create a file: proof that code ran."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_a_pickle_that_runs_code_is_refused_and_nothing_runs(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    torch.save({"format": "biomeseason.checkpoint", "model": _WritesMarker(str(marker))}, evil)
    with pytest.raises(CheckpointError, match="refused"):
        load_checkpoint(evil)
    assert not marker.exists()
    plain = tmp_path / "plain.pkl"
    plain.write_bytes(pickle.dumps(_WritesMarker(str(marker))))
    with pytest.raises(CheckpointError):
        load_checkpoint(plain)
    assert not marker.exists()


def test_edited_truncated_and_foreign_files_are_refused(tmp_path):
    model = BiomeSeasonNet("resnet18", 3)
    path = save_checkpoint(tmp_path / "m.pt", model.state_dict(), META)
    payload = torch.load(path, weights_only=True)
    payload["model"]["heads.biome.bias"] += 1.0           # edit a weight, keep the old digest
    torch.save(payload, tmp_path / "edited.pt")
    with pytest.raises(CheckpointError, match="modified"):
        load_checkpoint(tmp_path / "edited.pt")
    (tmp_path / "cut.pt").write_bytes(path.read_bytes()[:5000])
    with pytest.raises(CheckpointError, match="damaged"):
        load_checkpoint(tmp_path / "cut.pt")
    torch.save(model.state_dict(), tmp_path / "bare.pt")  # a plain state dict is not ours
    with pytest.raises(CheckpointError, match="not a biomeseason checkpoint"):
        load_checkpoint(tmp_path / "bare.pt")
    payload = torch.load(path, weights_only=True)
    payload["version"] = 99
    torch.save(payload, tmp_path / "future.pt")
    with pytest.raises(CheckpointError, match="version 99"):
        load_checkpoint(tmp_path / "future.pt")
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")


def test_torchvision_imagenet_weights_load_into_the_backbone():
    from torchvision.models import resnet18

    reference = resnet18(weights=None)
    model = BiomeSeasonNet("resnet18", 3)
    unused = load_backbone_weights(model, reference.state_dict())
    assert sorted(unused) == ["fc.bias", "fc.weight"]
    assert torch.equal(model.backbone[0].weight, reference.conv1.weight)
    assert torch.equal(model.backbone[7][1].bn2.running_var, reference.layer4[1].bn2.running_var)
    with pytest.raises(ValueError, match="do not fit"):
        load_backbone_weights(BiomeSeasonNet("resnet50", 3), reference.state_dict())


def test_embed_gives_the_pooled_features_the_heads_see():
    model = BiomeSeasonNet("resnet18", 3).eval()
    x = torch.randn(2, 3, 64, 64)
    emb = model.embed(x)
    assert emb.shape == (2, model.num_features)
    assert torch.allclose(model.heads["biome"](emb), model(x)["biome"], atol=1e-6)


def test_extra_tensors_are_stored_and_covered_by_the_digest(tmp_path):
    model = BiomeSeasonNet("resnet18", 3)
    extra = {"familiarity.means": torch.randn(3, 512)}
    path = save_checkpoint(tmp_path / "m.pt", model.state_dict(), META, extra=extra)
    assert torch.equal(load_checkpoint(path)["extra"]["familiarity.means"], extra["familiarity.means"])
    payload = torch.load(path, weights_only=True)
    payload["extra"]["familiarity.means"][0, 0] += 1.0
    torch.save(payload, tmp_path / "edited.pt")
    with pytest.raises(CheckpointError, match="modified"):
        load_checkpoint(tmp_path / "edited.pt")
    # A checkpoint without extra tensors keeps the digest it had before they existed.
    plain = torch.load(save_checkpoint(tmp_path / "plain.pt", model.state_dict(), META), weights_only=True)
    assert "extra" not in plain and load_checkpoint(tmp_path / "plain.pt")["meta"] == META


def test_starting_from_another_model_copies_the_backbone_and_the_heads_of_shared_classes():
    torch.manual_seed(0)
    old = BiomeSeasonNet("resnet18", 3)
    new = BiomeSeasonNet("resnet18", 4)
    carried = load_matching(new, old.state_dict(), {"biome": ["a", "b", "c"], "month": list(range(1, 13))},
                            {"biome": ["c", "x", "a", "y"], "month": list(range(1, 13))})
    assert carried == {"biome": 2, "month": 12}
    assert torch.equal(new.backbone[0].weight, old.backbone[0].weight)
    assert torch.equal(new.heads["biome"].weight[0], old.heads["biome"].weight[2])   # c
    assert torch.equal(new.heads["biome"].weight[2], old.heads["biome"].weight[0])   # a
    assert not torch.equal(new.heads["biome"].weight[1], old.heads["biome"].weight[1])
    assert torch.equal(new.heads["month"].bias, old.heads["month"].bias)
    with pytest.raises(ValueError, match="does not fit"):
        load_matching(BiomeSeasonNet("resnet34", 3), old.state_dict(), {}, {"biome": [], "month": []})


# ---------------------------------------------------------------- augmentation follows the view

def _top_brighter_than_bottom(x: torch.Tensor) -> bool:
    h = x.shape[-2]
    return bool(x[..., : h // 3, :].mean() > x[..., -(h // 3):, :].mean())


def test_upright_views_keep_the_sky_on_top_and_overhead_views_turn():
    img = torch.zeros(3, 48, 48, dtype=torch.uint8)
    img[:, :16] = 230  # a bright sky above dark ground
    img[:, 16:, :24] = 90  # and something on the left, so flips show
    torch.manual_seed(0)
    upright = [train_transform(32, "upright")(img) for _ in range(40)]
    overhead = [train_transform(32, "overhead")(img) for _ in range(40)]
    assert all(_top_brighter_than_bottom(x) for x in upright)
    assert not all(_top_brighter_than_bottom(x) for x in overhead)
    left_brighter = [bool(x[..., :, :10].mean() > x[..., :, -10:].mean()) for x in upright]
    assert 0 < sum(left_brighter) < len(left_brighter)  # horizontal flips do happen


def test_colour_jitter_never_moves_the_hue():
    rgb = (200, 90, 40)  # autumn orange: its hue is the month signal
    img = torch.tensor(rgb, dtype=torch.uint8)[:, None, None].expand(3, 40, 40).clone()
    mean, std = torch.tensor(IMAGENET_MEAN)[:, None, None], torch.tensor(IMAGENET_STD)[:, None, None]
    hue = colorsys.rgb_to_hsv(*(c / 255 for c in rgb))[0]
    torch.manual_seed(1)
    seen = set()
    for view in VIEWS:
        for _ in range(30):
            x = (train_transform(32, view)(img) * std + mean).clamp(0, 1).mean(dim=(1, 2))
            seen.add(round(float(x.sum()), 3))
            assert colorsys.rgb_to_hsv(*x.tolist())[0] == pytest.approx(hue, abs=0.01)
    assert len(seen) > 10  # the jitter did change the colours, only not their hue
    settings = augmentation_settings("upright")
    assert settings["hue"] == 0 and settings["flips"] == "horizontal flips"


def test_test_time_views_follow_the_view():
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    assert tta_views("overhead") == list(range(8))
    assert tta_views("upright") == [0, 4]
    assert torch.equal(dihedral(x, 4), x.flip(-1))  # the one extra upright view is a horizontal flip
    with pytest.raises(ValueError):
        tta_views("sideways")
