"""Train and eval transforms, shared by training and prediction.

Both take a PIL image or a uint8 tensor (3, H, W) and return a normalised float
tensor (3, S, S). Overhead imagery has no "up", so training uses all eight
rotations/flips; colour jitter is limited to brightness and contrast because
hue carries the season (autumn red, dry-season gold, snow white).
"""
from __future__ import annotations

import torch
from torchvision.transforms import v2

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# Defaults of the training augmentation (mild: scenes are small and labels subtle).
CROP_SCALE = (0.6, 1.0)     # RandomResizedCrop area fraction
CROP_RATIO = (0.8, 1.25)    # aspect ratio range
BRIGHTNESS = 0.1
CONTRAST = 0.1


class RandomDihedral(torch.nn.Module):
    """One of the 8 rotations/flips of the square, uniformly (the dihedral group D4)."""

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        k = int(torch.randint(8, ()))
        return dihedral(img, k)


def dihedral(img: torch.Tensor, k: int) -> torch.Tensor:
    """The k-th (0..7) element of D4 applied to the last two dims; 0 is identity."""
    if k >= 4:
        img = img.flip(-1)
    return torch.rot90(img, k % 4, dims=(-2, -1))


def _to_uint8_tensor():
    # PIL -> uint8 tensor; a tensor passes through unchanged.
    return v2.Compose([v2.ToImage(), v2.ToDtype(torch.uint8, scale=True)])


def resize_short_side(size: int):
    """The resize used everywhere (cache, eval, prediction): short side -> size."""
    return v2.Resize(size, antialias=True)


def train_transform(image_size: int, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> v2.Compose:
    return v2.Compose([
        _to_uint8_tensor(),
        v2.RandomResizedCrop(image_size, scale=CROP_SCALE, ratio=CROP_RATIO, antialias=True),
        RandomDihedral(),
        v2.ColorJitter(brightness=BRIGHTNESS, contrast=CONTRAST),
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(mean, std),
    ])


def eval_transform(image_size: int, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> v2.Compose:
    return v2.Compose([
        _to_uint8_tensor(),
        resize_short_side(image_size),
        v2.CenterCrop(image_size),
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(mean, std),
    ])
