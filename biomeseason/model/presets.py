"""Train and eval transforms, shared by training and prediction.

Both take a PIL image or a uint8 tensor (3, H, W) and return a normalised float
tensor (3, S, S). What the training augmentation may change follows the view,
which is recorded in the checkpoint:

* ``overhead`` (nadir scenes, map tiles) has no "up": all eight rotations/flips.
* ``upright`` (ground photos, oblique views, anything with a horizon):
  horizontal flips only; the sky stays on top.

Colour jitter touches brightness, contrast and saturation, never hue: hue
carries the season (autumn red, dry-season gold, snow white). A simulated
camera (``camera``, a share ``camera`` of the images) shows the ground as
other sensors and atmospheres would; ``min_crop`` sets the smallest footprint
a random crop shows (a share of the image's area).
"""
from __future__ import annotations

import numpy as np
import torch
from torchvision.transforms import v2

from .camera import Camera, RandomCamera

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
VIEWS = ("overhead", "upright")

# The training augmentation, mild: scenes are small and the labels subtle. This
# dict is what a run's config.json and checkpoint list, and what the transform is built from.
AUGMENTATION = {
    "crop_scale": (0.6, 1.0),      # RandomResizedCrop area fraction
    "crop_ratio": (0.8, 1.25),     # and aspect ratio range
    "blur_p": 0.2,                 # share of images blurred
    "blur_sigma": (0.1, 1.0),      # Gaussian sigma in pixels (3x3 kernel at most 1 px wide)
    "brightness": 0.1,
    "contrast": 0.1,
    "saturation": 0.1,
    "hue": 0.0,                    # never: hue is the month signal
}


class RandomDihedral(torch.nn.Module):
    """One of the 8 rotations/flips of the square, uniformly (the dihedral group D4)."""

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        k = int(torch.randint(8, ()))
        return dihedral(img, k)


def dihedral(img: torch.Tensor, k: int) -> torch.Tensor:
    """The k-th (0..7) element of D4 applied to the last two dims; 0 is identity, 4 a horizontal flip."""
    if k >= 4:
        img = img.flip(-1)
    return torch.rot90(img, k % 4, dims=(-2, -1))


def tta_views(view: str) -> list[int]:
    """The ``dihedral`` indices that are valid views of an image of this kind (test-time augmentation)."""
    if view not in VIEWS:
        raise ValueError(f"view must be one of {VIEWS}, not {view!r}")
    return list(range(8)) if view == "overhead" else [0, 4]


def flips_for(view: str) -> str:
    """How a view is flipped in training, in words (for config.json and the notebook)."""
    return "8 rotations/flips" if view == "overhead" else "horizontal flips"


def augmentation_settings(view: str, augment: bool = True, camera: float = 0.0, min_crop: float | None = None) -> dict:
    """The training augmentation as plain values, as listed in the run config and the checkpoint."""
    if not augment:
        return {"augment": False}
    values = {k: list(v) if isinstance(v, tuple) else v for k, v in _augmentation(min_crop).items()}
    return {"augment": True, "view": view, "flips": flips_for(view), **values,
            **({"camera": Camera(p=camera).settings()} if camera > 0 else {})}


def _augmentation(min_crop: float | None) -> dict:
    return AUGMENTATION if min_crop is None else {**AUGMENTATION, "crop_scale": (min_crop, 1.0)}


def _to_uint8_tensor():
    # PIL -> uint8 tensor; a tensor passes through unchanged.
    return v2.Compose([v2.ToImage(), v2.ToDtype(torch.uint8, scale=True)])


def resize_short_side(size: int):
    """The resize used everywhere (cache, eval, prediction): short side -> size."""
    return v2.Resize(size, antialias=True)


def train_transform(image_size: int, view: str = "upright", mean=IMAGENET_MEAN, std=IMAGENET_STD,
                    augment: bool = True, camera: float = 0.0, min_crop: float | None = None) -> v2.Compose:
    """``camera``: the share of images seen through a random simulated camera (0: none); ``min_crop``: the
    smallest crop's share of the image's area (default ``AUGMENTATION["crop_scale"]``)."""
    if view not in VIEWS:
        raise ValueError(f"view must be one of {VIEWS}, not {view!r}")
    if not augment:
        return eval_transform(image_size, mean, std)
    a = _augmentation(min_crop)
    return v2.Compose([
        _to_uint8_tensor(),
        v2.RandomResizedCrop(image_size, scale=a["crop_scale"], ratio=a["crop_ratio"], antialias=True),
        RandomDihedral() if view == "overhead" else v2.RandomHorizontalFlip(),
        *([RandomCamera(Camera(p=camera))] if camera > 0 else []),
        v2.RandomApply([v2.GaussianBlur(3, sigma=a["blur_sigma"])], p=a["blur_p"]),
        v2.ColorJitter(brightness=a["brightness"], contrast=a["contrast"], saturation=a["saturation"]),
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(mean, std),
    ])


def at_footprint(image, footprint_km: float, km_per_pixel: float, smallest: int = 2):
    """A (h, w, 3) uint8 array or PIL image of ``footprint_km`` across (its longer side) as a model whose
    training pixels were ``km_per_pixel`` saw such ground: reduced (area average) to that many pixels, but never
    to fewer than ``smallest`` (the fewest the model learnt from: a 1.2 km patch brought to the maps' scale would
    be one flat colour, which no training image was); ``eval_transform`` then enlarges it to the input side, as
    training enlarged its small tiles and crops. An image already coarser than that is given back as it is."""
    from PIL import Image

    im = image if isinstance(image, Image.Image) else Image.fromarray(image)
    w, h = im.size
    side = max(2, smallest, round(footprint_km / km_per_pixel))
    if side >= max(w, h):
        return image
    size = (side, max(1, round(side * h / w))) if w >= h else (max(1, round(side * w / h)), side)
    small = im.resize(size, Image.BOX)
    return small if isinstance(image, Image.Image) else np.array(small)


def eval_transform(image_size: int, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> v2.Compose:
    return v2.Compose([eval_pixels(image_size), normalise(mean, std)])


def eval_pixels(image_size: int) -> v2.Compose:
    """The first steps of ``eval_transform``: the uint8 (3, S, S) image, resized and centre-cropped."""
    return v2.Compose([_to_uint8_tensor(), resize_short_side(image_size), v2.CenterCrop(image_size)])


def normalise(mean=IMAGENET_MEAN, std=IMAGENET_STD) -> v2.Compose:
    """The last steps of ``eval_transform``: uint8 -> floats in [0, 1], normalised; on one image or a batch."""
    return v2.Compose([v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std)])
