"""Colour clusters: the pixel sample of an image, clustered in CIELAB into a Palette.

- Pixels: the image is read by ``biomeseason.images`` (EXIF orientation, ICC
  profile, 16-bit and float, a pixel limit), decoded small (JPEG DCT scaling,
  then an integer box ``reduce``) to at most ``MAX_SIDE`` pixels a side, and at most
  ``MAX_SAMPLES`` pixels are drawn with a seeded generator. Transparent pixels
  are never drawn; optionally, near-black pixels connected to the image border
  (space around the Earth's limb, scanner or letterbox frames) are left out and
  counted. White is a real colour (snow, cloud) and always stays.
- Clusters: k-means in CIELAB, so that distances are perceptual; a shade
  shared by many pixels becomes one colour. An image with fewer distinct
  colours than ``k`` gives exactly those colours.
- Each cluster is named by ``colors_names``.
"""
from __future__ import annotations

import os

import numpy as np
from PIL import Image
from scipy import ndimage
from skimage.color import lab2rgb
from sklearn.cluster import KMeans

from . import images
from .colors_names import ColorNamer, lab_of
from .workers import one_thread  # noqa: F401  (colors and colors_analysis take it from here)

SEED = 0                 # pixel sample and k-means initialisation
MAX_SIDE = 256           # decode/reduce to at most this many pixels a side (~65k pixels)
MAX_SAMPLES = 10_000     # pixels clustered; clustering all pixels moves the centres by ~0.3 dE
N_INIT = 10              # k-means restarts, on RESTART_SAMPLES pixels
RESTART_SAMPLES = 2_000  # enough to find the basin of the best optimum, cheap to restart on
MIN_ALPHA = 128          # pixels less opaque than this are transparent
FRAME_MAX_RGB = 32       # near-black: every channel <= this (about L* <= 12)

# ------------------------------------------------------------------ pixels ---

def _read(image, max_pixels: int = images.MAX_PIXELS) -> Image.Image:
    """RGB, or RGBA if the image has transparency, decoded small (see images.read_image)."""
    return images.read_image(image, min_size=MAX_SIDE, max_pixels=max_pixels, keep_alpha=True).image


def _rgba_small(im: Image.Image) -> tuple[np.ndarray, np.ndarray]:
    """(H, W, 3) uint8 colours and (H, W) bool opaque mask, at most MAX_SIDE a side."""
    has_alpha = im.mode == "RGBA"
    # Premultiplied alpha, so a transparent pixel adds no colour to the boxes
    # it is averaged into by reduce.
    im = im.convert("RGBA").convert("RGBa") if has_alpha else im.convert("RGB")
    factor = -(-max(im.size) // MAX_SIDE)
    if factor > 1:
        im = im.reduce(factor)
    if not has_alpha:
        rgb = np.asarray(im)
        return rgb, np.ones(rgb.shape[:2], bool)
    rgba = np.asarray(im.convert("RGBA"))
    return rgba[..., :3], rgba[..., 3] >= MIN_ALPHA


def _frame_mask(rgb: np.ndarray, opaque: np.ndarray) -> np.ndarray:
    """Near-black pixels connected to the border: space or a frame, not a shadow."""
    dark = opaque & (rgb.max(axis=2) <= FRAME_MAX_RGB)
    labels, _ = ndimage.label(dark, structure=np.ones((3, 3)))
    edge = np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])
    touching = np.unique(edge[edge > 0])
    return np.isin(labels, touching)


class Pixels:
    """The pixel sample of one image: colours, positions, and what was left out."""

    def __init__(self, image, seed: int = SEED, ignore_frame: bool = False,
                 max_pixels: int = images.MAX_PIXELS):
        rgb, keep = _rgba_small(_read(image, max_pixels))
        h, w = keep.shape
        self.ignored_transparent = 100.0 * (keep.size - keep.sum()) / keep.size
        frame = _frame_mask(rgb, keep) if ignore_frame else np.zeros_like(keep)
        self.ignored_frame = 100.0 * frame.sum() / keep.size
        keep &= ~frame
        index = np.flatnonzero(keep)
        if index.size == 0:
            what = "opaque" if not ignore_frame else "opaque, non-frame"
            raise ValueError(f"{_describe(image)}: no {what} pixels to analyse")
        if index.size > MAX_SAMPLES:
            rng = np.random.default_rng(seed)
            index = np.sort(rng.choice(index, MAX_SAMPLES, replace=False))
        self.rgb = rgb.reshape(-1, 3)[index]                   # (N, 3) uint8
        self.lab = lab_of(self.rgb)                             # (N, 3)
        y, x = np.divmod(index, w)
        self.xy = np.stack([(x + 0.5) / w, (y + 0.5) / h], 1)   # (N, 2) in (0, 1)


def _describe(image) -> str:
    return str(image) if isinstance(image, (str, os.PathLike)) else type(image).__name__


# ---------------------------------------------------------------- clusters ---

def _cluster(lab: np.ndarray, rgb: np.ndarray, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(centres (m, 3) in Lab, labels (N,)) with m <= k."""
    codes = rgb.astype(np.int32) @ np.array([1 << 16, 1 << 8, 1])
    distinct, first, labels = np.unique(codes, return_index=True, return_inverse=True)
    if distinct.size <= k:
        # k-means would split one colour in several identical clusters.
        return lab[first], labels
    # Restarts on a small subsample are cheap and find the basin; one run on the whole
    # sample then settles the centres. Three restarts on the whole sample cost as much
    # and still end in a poor optimum on about one photo in six (bench/colors.py).
    rng = np.random.default_rng(seed)
    subsample = lab[rng.choice(len(lab), min(len(lab), RESTART_SAMPLES), replace=False)]
    start = KMeans(n_clusters=k, n_init=N_INIT, random_state=seed).fit(subsample).cluster_centers_
    km = KMeans(n_clusters=k, init=start, n_init=1).fit(lab)
    return km.cluster_centers_, km.labels_


def _percentages(counts: np.ndarray, decimals: int = 2) -> np.ndarray:
    """Counts as percentages rounded so that they add up to exactly 100."""
    unit = 10 ** decimals
    exact = counts / counts.sum() * 100 * unit
    floor = np.floor(exact)
    short = int(round(100 * unit - floor.sum()))
    # largest remainders get the missing units; ties go to the larger count
    order = np.lexsort((-counts, -(exact - floor)))
    floor[order[:short]] += 1
    return floor / unit


def _to_rgb255(lab: np.ndarray) -> np.ndarray:
    return np.round(np.clip(lab2rgb(lab), 0, 1) * 255).astype(int)


class Palette(list):
    """Colour records, largest share first, plus what the sample left out.

    ``ignored_transparent`` and ``ignored_frame`` are percentages of the
    image's pixels (counted on the reduced image).
    """

    def __init__(self, records, ignored_transparent: float = 0.0, ignored_frame: float = 0.0):
        super().__init__(records)
        self.ignored_transparent = round(float(ignored_transparent), 2)
        self.ignored_frame = round(float(ignored_frame), 2)


def palette_of(pixels: Pixels, k: int, seed: int, namer: ColorNamer) -> tuple[Palette, np.ndarray]:
    """(Palette, labels of the sample pixels into it)."""
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    centres, labels = _cluster(pixels.lab, pixels.rgb, k, seed)
    counts = np.bincount(labels, minlength=len(centres))
    # by share, then by cluster number; a cluster k-means left empty is dropped
    order = np.lexsort((np.arange(len(counts)), -counts))[:np.count_nonzero(counts)]
    rank = np.full(len(counts), -1)
    rank[order] = np.arange(len(order))
    rgb = _to_rgb255(centres[order])
    shares = _percentages(counts[order])
    names = namer.name_rgb(rgb)
    records = [{"rgb": tuple(int(c) for c in colour), "hex": _hex(colour), "share": float(share), **name}
               for colour, share, name in zip(rgb, shares, names)]
    return Palette(records, pixels.ignored_transparent, pixels.ignored_frame), rank[labels]


def _hex(rgb) -> str:
    return "#{:02x}{:02x}{:02x}".format(*(int(c) for c in rgb))
