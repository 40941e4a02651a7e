"""The network: a torchvision ResNet backbone with one linear head per task.

    model = BiomeSeasonNet("resnet18", num_biomes=7)
    out = model(x)            # {"biome": (B, 7), "month": (B, 12)}

``forward_features`` returns the last convolutional map (B, C, h, w), unpooled,
so Grad-CAM can look at it; ``forward_head`` pools and applies the heads;
``embed`` gives the pooled features (B, C) that the familiarity score uses. The
model knows nothing of files: weights come in through ``load_backbone_weights``
with a state dict that the caller has loaded safely.
"""
from __future__ import annotations

import copy

import torch
from torch import nn
from torchvision import models

ARCHS = {
    "resnet18": models.resnet18,
    "resnet34": models.resnet34,
    "resnet50": models.resnet50,
}
NUM_MONTHS = 12
STEM = 4   # conv1, bn1, relu, maxpool: the first layers of the backbone
# What a camera kind owns in a model that reads several kinds of camera (``model.kinds``; ``train
# --own-camera``): the first convolution and the first stage, where cameras differ (colour, contrast,
# haze, blur, noise), every batch norm (scale, shift and statistics) and the heads. The rest is shared.
OWN_LAYERS = ("backbone.0.", "backbone.4.", "heads.")


class BiomeSeasonNet(nn.Module):
    def __init__(self, arch: str = "resnet18", num_biomes: int = 7, num_months: int = NUM_MONTHS,
                 dropout: float = 0.0):
        super().__init__()
        if arch not in ARCHS:
            raise ValueError(f"unknown architecture {arch!r}; choose one of {sorted(ARCHS)}")
        # Never downloads: pretrained weights come from a file. Zero-initialised last BN of
        # each residual block starts every block as identity, which trains faster from scratch.
        resnet = ARCHS[arch](weights=None, zero_init_residual=True)
        self.arch = arch
        self.num_features = resnet.fc.in_features
        # Everything up to and including layer4: (B, 3, H, W) -> (B, C, H/32, W/32).
        self.backbone = nn.Sequential(
            resnet.conv1, resnet.bn1, resnet.relu, resnet.maxpool,
            resnet.layer1, resnet.layer2, resnet.layer3, resnet.layer4,
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.heads = nn.ModuleDict({
            "biome": nn.Linear(self.num_features, num_biomes),
            "month": nn.Linear(self.num_features, num_months),
        })

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, h, w). In eval mode on a CPU the stem (up to the max-pool) runs on a channels-last
        copy and the layers after it get the usual layout back: torch's max-pool over the usual
        layout took 6 ms of 32 images of 64 px, 0.35 ms over channels-last; the whole network
        0.76 ms an image instead of 0.91-1.13, and one image 7.0 ms instead of 7.5 (2 threads).
        The later layers are no faster in channels-last. The features were the same to the bit on
        the machine measured (oneDNN); training keeps the usual layout."""
        if self.training or x.device.type != "cpu":
            return self.backbone(x)
        x = x.contiguous(memory_format=torch.channels_last)
        for i, layer in enumerate(self.backbone):
            x = layer(x)
            if i == STEM - 1:
                x = x.contiguous()
        return x

    def forward_head(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        pooled = self.dropout(self.pool(features).flatten(1))  # (B, C)
        return {task: head(pooled) for task, head in self.heads.items()}

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.forward_head(self.forward_features(x))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled backbone features (B, C), as the heads see them (without dropout)."""
        return self.pool(self.forward_features(x)).flatten(1)

    def parameter_groups(self) -> tuple[list, list]:
        """(backbone parameters, head parameters) that learn (``requires_grad``; not those ``train_camera_own``
        keeps): they may learn at different rates."""
        return ([p for p in self.backbone.parameters() if p.requires_grad],
                [p for p in self.heads.parameters() if p.requires_grad])


def camera_own(model: nn.Module) -> list[str]:
    """The names in ``model.state_dict()`` that a camera kind has of its own (``OWN_LAYERS`` and every
    batch norm), in state-dict order; every other weight is shared by all kinds."""
    norms = tuple(f"{name}." for name, m in model.named_modules()
                  if isinstance(m, nn.modules.batchnorm._BatchNorm))
    return [k for k in model.state_dict() if k.startswith(OWN_LAYERS + norms)]


def train_camera_own(model: nn.Module) -> int:
    """Let only the weights a camera kind owns learn (``camera_own``); the shared ones keep their values.
    Returns how many numbers learn."""
    own = set(camera_own(model))
    for name, p in model.named_parameters():
        p.requires_grad_(name in own)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def for_inference(model: BiomeSeasonNet) -> BiomeSeasonNet:
    """A copy of ``model`` for evaluation on a CPU: each batch norm folded into the convolution
    before it, and every weight in channels-last layout.

    Channels-last weights send every convolution to oneDNN; over the usual layout torch runs a
    batch of one image through its own im2col convolution instead, which took 17-19 ms of one
    64 px image where oneDNN took 10 (ResNet-18, one thread; bench/predict.py). Folding saves
    another twentieth. The answers move by about 1e-7 (float rounding of the folded weights).
    """
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    fast = copy.deepcopy(model).eval()
    for module in list(fast.modules()):
        if isinstance(module, nn.Sequential):
            pairs = list(zip(range(len(module) - 1), module, list(module)[1:]))
            for i, conv, bn in pairs:
                if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                    module[i], module[i + 1] = fuse_conv_bn_eval(conv, bn), nn.Identity()
        for k in range(1, 4):   # torchvision's residual blocks: conv1, bn1, conv2, bn2 (, conv3, bn3)
            conv, bn = getattr(module, f"conv{k}", None), getattr(module, f"bn{k}", None)
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                setattr(module, f"conv{k}", fuse_conv_bn_eval(conv, bn))
                setattr(module, f"bn{k}", nn.Identity())
    return fast.to(memory_format=torch.channels_last)


def load_matching(model: BiomeSeasonNet, state_dict: dict, old_classes: dict[str, list],
                  new_classes: dict[str, list]) -> dict[str, int]:
    """Start ``model`` from another of our models: the whole backbone, and head rows by class name.

    ``old_classes``/``new_classes`` map each head to its class list; a class
    present in both keeps its learnt row, a new class starts fresh. Returns how
    many classes of each head were carried over. Raises ValueError if the
    backbones differ.
    """
    backbone = {k.removeprefix("backbone."): v for k, v in state_dict.items() if k.startswith("backbone.")}
    try:
        model.backbone.load_state_dict(backbone, strict=True)
    except RuntimeError as e:
        raise ValueError(f"its backbone does not fit {model.arch}: {str(e).splitlines()[0]}") from None
    carried = {}
    with torch.no_grad():
        for task, head in model.heads.items():
            old = [str(c) for c in old_classes.get(task, [])]
            weight, bias = state_dict.get(f"heads.{task}.weight"), state_dict.get(f"heads.{task}.bias")
            carried[task] = 0
            if weight is None or bias is None or weight.shape[1] != head.in_features:
                continue
            for i, name in enumerate(str(c) for c in new_classes[task]):
                if name in old:
                    head.weight[i] = weight[old.index(name)]
                    head.bias[i] = bias[old.index(name)]
                    carried[task] += 1
    return carried


def load_backbone_weights(model: BiomeSeasonNet, state_dict: dict) -> list[str]:
    """Copy torchvision ImageNet ResNet weights into the backbone; returns what was not used.

    The keys are torchvision's (``conv1.weight``, ``layer1.0.bn1.bias``...);
    the ImageNet classifier ``fc.*`` is not ours and is skipped.
    """
    names = ["conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4"]
    renamed, unused = {}, []
    for key, value in state_dict.items():
        top, _, rest = key.partition(".")
        if top in names:
            renamed[f"{names.index(top)}.{rest}"] = value
        else:
            unused.append(key)
    try:
        model.backbone.load_state_dict(renamed, strict=True)
    except RuntimeError as e:
        raise ValueError(f"weights do not fit {model.arch}: {str(e).splitlines()[0]}") from None
    return unused


def build_model(meta: dict) -> BiomeSeasonNet:
    """The network described by checkpoint metadata (weights not loaded)."""
    return BiomeSeasonNet(meta["arch"], num_biomes=len(meta["biomes"]), num_months=len(meta["months"]))


def select_device(name: str = "auto", local_rank: int = 0) -> torch.device:
    """'auto' picks cuda, then mps, then cpu; ``local_rank`` is the GPU of this process."""
    if name == "auto":
        if torch.cuda.is_available():
            name = "cuda"
        elif getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            name = "mps"
        else:
            name = "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("device cuda was asked for but no CUDA device is available")
        torch.cuda.set_device(local_rank)
        return torch.device("cuda", local_rank)
    return torch.device(name)
