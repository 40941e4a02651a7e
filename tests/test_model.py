"""The network, the losses and the checkpoint format, without any data."""
import json
import pickle

import pytest
import torch

from biomeseason.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from biomeseason.model import BiomeSeasonNet, build_model, load_backbone_weights
from biomeseason.train import circular_soft_targets, masked_losses


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
