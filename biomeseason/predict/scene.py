"""Find the Earth in a whole photo: the part worth classifying.

    box, notes = find_scene(image)       # PIL RGB -> (left, top, right, bottom), reasons
    earth = image.crop(box)

Astronaut and aerial photos often carry more than the Earth: black margins
from a scanner or a letterbox, a caption band (a uniform light or dark strip
with text), the dark frame of a window, or black space above the limb. A
classifier trained on ground seen from above reads all of those as evidence,
so prediction crops them away first. The steps, on a copy at most
``WORK_SIDE`` pixels a side:

1. Bands: from each edge, rows (then columns) of one neutral colour; a band
   is taken only if it is black, holds text (strongly contrasting pixels) or
   is perfectly flat, so a bank of cloud or dark forest along an edge stays. A band must end
   within ``MAX_BAND`` of the side and must differ from what lies beyond it.
2. Dark border: black pixels, or dark, smooth and grey ones (``DARK``,
   ``FLAT``, ``DARK_TINT``), connected to the edge of what is left: margins,
   window frames, space. Dark ground (forest, water) is tinted or textured and
   is kept.
3. The largest remaining region, holes filled; its bounding box is then
   trimmed, one edge row or column at a time, until every edge is at least
   ``EDGE_EARTH`` Earth, so a curved limb or a round window leaves no corner
   of black in the crop.

An image with nothing to remove, or where less than ``MIN_EARTH`` of it would
remain, gives the whole image.

``prepare`` is what a decoding worker of ``predict`` does with one file: read
it at reduced scale, find the scene, crop; ``ordered_map`` runs it in worker
processes. Nothing here imports torch, so the workers start light.
"""
from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

from ..io import images
from ..io.images import ImageError
from ..io.workers import bounded_map, process_pool
from ..prepare.clean import exif_focal_35mm, exif_month_and_place

WORK_SIDE = 256     # the finder works on a copy this size (long side); boxes are scaled back
BLACK = 20          # brightest channel at most this (0..255), grain or not: space, margins
DARK = 48           # mean grey at most this: dark enough to be a frame or space...
FLAT = 6.0          # ...with local standard deviation at most this: smooth, unlike dark ground...
DARK_TINT = 12      # ...and grey: channels within this of each other (dark forest and water are tinted)
NEUTRAL = 12        # a band's colour: channels within this of each other (white, grey, black)
BAND_TOL = 16       # a band pixel: every channel within this of the band colour
BAND_SHARE = 0.6    # a band row (or column): at least this share of band pixels
TEXT_CONTRAST = 96  # a text pixel: some channel this far from the band colour
TEXT_SHARE = 0.003  # a light band holds text if at least this share of its pixels are text
MAX_BAND = 0.25     # a band is at most this share of the side
EDGE_EARTH = 0.95   # every edge of the final box is at least this share Earth
MIN_EARTH = 0.10    # below this share of the image, the finder gives up: the whole image
MIN_BORDER = 0.005  # dark regions smaller than this share of the image are details, not borders

Box = tuple[int, int, int, int]


def find_scene(image: Image.Image) -> tuple[Box, list[str]]:
    """(left, top, right, bottom) of the Earth in ``image`` (PIL, any mode), and what was removed."""
    width, height = image.size
    scale = min(1.0, WORK_SIDE / max(width, height))
    small = image.convert("RGB")
    if scale < 1:
        small = small.resize((max(1, round(width * scale)), max(1, round(height * scale))),
                             Image.Resampling.BOX)
    rgb = np.asarray(small, dtype=np.float32)              # (H, W, 3)
    h, w = rgb.shape[:2]
    notes: list[str] = []

    top, bottom = _strip_bands(rgb, notes, ("top", "bottom"))
    left, right = _strip_bands(rgb[top:bottom].transpose(1, 0, 2), notes, ("left", "right"))
    inner = rgb[top:bottom, left:right]
    earth = ~_dark_border(inner)
    if earth.all() and not notes:
        return (0, 0, width, height), []
    if not earth.any():
        return (0, 0, width, height), ["no Earth found; whole image used"]
    if not earth.all():
        notes.append("dark border removed (margin, window frame or space)")

    # The largest region left; an opening first cuts thin bridges (a frame's reflections).
    opened = _dilate(_dilate(_erode(_erode(earth)))) if min(earth.shape) > 8 else earth
    labels, count = ndimage.label(opened if opened.any() else earth)
    sizes = np.bincount(labels.ravel())[1:]
    region = _fill_holes(labels == 1 + int(np.argmax(sizes)))
    t, b, lft, rgt = _trim(region, *_bounds(region))
    if (b - t) * (rgt - lft) < MIN_EARTH * h * w:
        return (0, 0, width, height), ["too little Earth found; whole image used"]

    # Back to the caller's pixels: outward at the edge of the image, inward elsewhere.
    t, b, lft, rgt = t + top, b + top, lft + left, rgt + left
    box = (_scale(lft, w, width), _scale(t, h, height), _scale(rgt, w, width), _scale(b, h, height))
    return box, notes


def _scale(value: int, small: int, full: int) -> int:
    return full if value >= small else round(value * full / small)


def _strip_bands(rgb: np.ndarray, notes: list[str], sides: tuple[str, str]) -> tuple[int, int]:
    """(start, end) along axis 0 once bands at either end are removed; repeated, so a margin
    and then a caption are both found."""
    start, end = 0, rgb.shape[0]
    for _ in range(3):
        before = (start, end)
        cut = _band_length(rgb[start:end])
        if cut:
            start += cut
            notes.append(f"band removed at the {sides[0]}")
        cut = _band_length(rgb[start:end][::-1])
        if cut:
            end -= cut
            notes.append(f"band removed at the {sides[1]}")
        if (start, end) == before:
            break
    return start, end


def _band_length(rgb: np.ndarray) -> int:
    """Rows of a band at the start of ``rgb`` (H, W, 3), or 0 if it does not start with one."""
    n = rgb.shape[0]
    if n < 8:
        return 0
    colour = np.median(rgb[0], axis=0)                                   # (3,)
    if np.ptp(colour) > NEUTRAL:
        return 0
    gap = max(2, n // 50)                                                 # text lines may interrupt
    # A band ends within MAX_BAND of the side: rows beyond that and the gap cannot decide it.
    rgb = rgb[:min(n, int(MAX_BAND * n) + gap)]
    distance = _channel_max(np.abs(rgb - colour))                         # (H, W)
    share = (distance <= BAND_TOL).mean(axis=1)                          # (H,)
    # End of the band: the first row that starts `gap` non-band rows in a row.
    quiet = np.convolve(share < BAND_SHARE, np.ones(gap), mode="valid") == gap
    ends = np.flatnonzero(quiet)
    end = int(ends[0]) if ends.size else n
    if end == 0 or end > MAX_BAND * n:
        return 0
    band = distance[:end]
    dark = colour.max() <= BLACK
    text = (band > TEXT_CONTRAST).mean() >= TEXT_SHARE
    flat = (band <= FLAT).mean() >= 0.99                                  # a scanner's margin, not cloud
    return end if dark or text or flat else 0


def _dark_border(rgb: np.ndarray) -> np.ndarray:
    """(H, W) bool: dark, smooth regions touching the edge (margins, frames, space)."""
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    grey = (r + g + b) / np.float32(3)                                    # = rgb.mean(axis=2), faster
    if grey.min() > DARK:   # no pixel dark enough (BLACK < DARK): the filters below would find none
        dark = np.zeros(grey.shape, bool)
    else:
        mean = ndimage.uniform_filter(grey, 5)
        spread = np.sqrt(np.maximum(ndimage.uniform_filter(grey * grey, 5) - mean * mean, 0))
        smooth = (mean <= DARK) & (spread <= FLAT)
        # Black whatever its grain: no channel above BLACK within a 3 x 3 window (a maximum filter,
        # done as a dilation of the bright pixels: the same mask, five times faster).
        black = ~_dilate_square(_channel_max(rgb) > BLACK)
        dark = black | (smooth & _neutral(rgb, smooth))
    # A closing (twice, beyond the image all dark) fills stars, dust and text specks.
    dark = _erode(_erode(_dilate(_dilate(dark, True), True), True), True)
    labels, count = ndimage.label(dark)
    if count == 0:
        return dark
    edge = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    sizes = np.bincount(labels.ravel(), minlength=count + 1)
    border = edge[(edge > 0) & (sizes[edge] >= MIN_BORDER * dark.size)]
    return np.isin(labels, border)


def _neutral(rgb: np.ndarray, where: np.ndarray) -> np.ndarray:
    """(H, W) bool: the channels' 5 x 5 means within DARK_TINT of each other (frames are grey; forest
    is green), computed where it matters: around the bounding box of ``where`` (2 pixels out, the
    filter's reach, so every value in the box is the whole image's filter's to the bit); False elsewhere."""
    neutral = np.zeros(where.shape, bool)
    if not where.any():
        return neutral
    t, b, lft, rgt = _bounds(where)
    t0, l0 = max(t - 2, 0), max(lft - 2, 0)
    part = rgb[t0:min(b + 2, rgb.shape[0]), l0:min(rgt + 2, rgb.shape[1])]
    colour = [ndimage.uniform_filter(part[..., i], 5) for i in range(3)]
    tint = np.maximum(np.maximum(*colour[:2]), colour[2]) - np.minimum(np.minimum(*colour[:2]), colour[2])
    neutral[t:b, lft:rgt] = (tint <= DARK_TINT)[t - t0:b - t0, lft - l0:rgt - l0]
    return neutral


# Binary morphology with the 3 x 3 cross (and, for _dilate_square, the 3 x 3 square), as
# scipy.ndimage's binary_dilation, binary_erosion and binary_fill_holes with their default
# structure and ``border`` as the value beyond the image: the same masks to the pixel
# (tests/predict/test_scene.py), by whole-array shifts; scipy's took half the finder's time.

def _dilate(mask: np.ndarray, border: bool = False) -> np.ndarray:
    p = np.pad(mask, 1, constant_values=border)
    return p[1:-1, 1:-1] | p[:-2, 1:-1] | p[2:, 1:-1] | p[1:-1, :-2] | p[1:-1, 2:]


def _erode(mask: np.ndarray, border: bool = False) -> np.ndarray:
    p = np.pad(mask, 1, constant_values=border)
    return p[1:-1, 1:-1] & p[:-2, 1:-1] & p[2:, 1:-1] & p[1:-1, :-2] & p[1:-1, 2:]


def _dilate_square(mask: np.ndarray) -> np.ndarray:
    p = np.pad(mask, 1, constant_values=False)
    rows = p[:, :-2] | p[:, 1:-1] | p[:, 2:]                             # (H + 2, W): separable
    return rows[:-2] | rows[1:-1] | rows[2:]


def _fill_holes(mask: np.ndarray) -> np.ndarray:
    """``mask`` with every background region that does not touch the edge filled."""
    labels, _ = ndimage.label(~mask)
    edge = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    return mask | (~np.isin(labels, edge[edge > 0]) & (labels > 0))


def _channel_max(rgb: np.ndarray) -> np.ndarray:
    """``rgb.max(axis=2)`` of an (H, W, 3) array; numpy reduces a last axis of three slowly."""
    return np.maximum(np.maximum(rgb[..., 0], rgb[..., 1]), rgb[..., 2])


def _bounds(mask: np.ndarray) -> tuple[int, int, int, int]:
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def _trim(mask: np.ndarray, top: int, bottom: int, left: int, right: int) -> tuple[int, int, int, int]:
    """Shrink the box, poorest edge first, until every edge row and column is EDGE_EARTH Earth."""
    rows = np.pad(mask, ((0, 0), (1, 0))).cumsum(1)                     # (H, W + 1): Earth along each row
    cols = np.pad(mask, ((1, 0), (0, 0))).cumsum(0)                     # (H + 1, W): down each column
    while bottom - top > 2 and right - left > 2:
        width, height = right - left, bottom - top
        edges = [(rows[top, right] - rows[top, left]) / width,
                 (rows[bottom - 1, right] - rows[bottom - 1, left]) / width,
                 (cols[bottom, left] - cols[top, left]) / height,
                 (cols[bottom, right - 1] - cols[top, right - 1]) / height]
        worst = min(range(4), key=edges.__getitem__)                      # the first of equals, as argmin
        if edges[worst] >= EDGE_EARTH:
            break
        if worst == 0:
            top += 1
        elif worst == 1:
            bottom -= 1
        elif worst == 2:
            left += 1
        else:
            right -= 1
    return top, bottom, left, right


# --------------------------------------------------------------------------- images made ready

SCENE_SIZE = 256   # short side (at least) at which the scene is looked for


@dataclass
class Prepared:
    """One image made ready for the model, by a worker process or in this one: small and
    picklable, no torch. ``error`` (the reason) or ``done`` (resume) mean no image."""

    name: str
    image: np.ndarray | None = None              # (h, w, 3) uint8: the scene, decoded small
    box: tuple[int, int, int, int] | None = None # the scene in the upright full-size image
    size: tuple[int, int] | None = None          # (w, h) of the upright full-size image
    sha256: str = ""
    notes: list[str] = field(default_factory=list)
    error: str = ""
    done: bool = False
    lat: float | None = None                     # EXIF GPS latitude, when the file has one
    lon: float | None = None                     # EXIF GPS longitude, likewise
    focal_35mm: float | None = None              # EXIF focal length in 35 mm terms, for the footprint
    footprint_km: float | None = None            # set by the predictor: told, or from the focal length
    hemisphere: str = ""                         # set by the predictor: told, from lat, or its default


_DONE: frozenset = frozenset()   # (path, sha256) already predicted; set in each worker for --resume


def start_worker(done) -> None:
    """In each worker: what --resume skips (signals are set by ``workers.process_pool``)."""
    global _DONE
    _DONE = frozenset(done)


def prepare(source, image_size: int, scene: bool = True, max_pixels: int = images.MAX_PIXELS,
            done=None) -> Prepared:
    """Read (at reduced scale), find the scene, crop. Never raises for a bad image: the
    reason is in ``error``. A file whose (path, sha256) is in ``done`` is not decoded."""
    name = images.name_of(source)
    data, hasher, hashing = source, None, None
    if isinstance(source, (str, Path)):
        try:
            data = Path(source).read_bytes()
        except OSError:
            data = source   # let the reader say why in its words (no such file, a folder, ...)
        else:
            done = _DONE if done is None else done
            hasher = hashlib.sha256()
            if done:   # resuming: the hash says whether the file needs decoding at all
                hasher.update(data)
                if (name, hasher.hexdigest()) in done:
                    return Prepared(name, sha256=hasher.hexdigest(), done=True)
            else:      # hashed on another core while this one decodes (both let go of the GIL)
                hashing = _hashing_thread().submit(hasher.update, data)
    try:
        # The scene finder needs more pixels than a small model: margins and captions must show.
        size = max(image_size, SCENE_SIZE) if scene else image_size
        record = images.read_image(data, min_size=size, reduce=True, max_pixels=max_pixels)
    except ImageError as e:
        return Prepared(name, sha256=_digest(hasher, hashing), error=e.reason)
    img = record.image
    w, h = img.size
    ow, oh = record.original_size
    size = (ow, oh) if (ow >= oh) == (w >= h) else (oh, ow)   # upright, as the decoded image
    box, notes = ((0, 0, w, h), [])
    if scene:
        box, notes = find_scene(img)
        img = img.crop(box)
    full_box = (round(box[0] * size[0] / w), round(box[1] * size[1] / h),
                round(box[2] * size[0] / w), round(box[3] * size[1] / h))
    _, lat, lon = exif_month_and_place(record.image)
    return Prepared(name, np.array(img), full_box, size, _digest(hasher, hashing), [*record.notes, *notes],
                    lat=lat, lon=lon, focal_35mm=exif_focal_35mm(record.image))


@functools.cache
def _hashing_thread() -> ThreadPoolExecutor:
    """The thread that hashes files beside the decode, started once: starting one a file, and waiting
    for it to start, cost 1 to 5 ms on a busy 2-core machine (more than the hash of a 2 MB photo)."""
    return ThreadPoolExecutor(1, thread_name_prefix="sha256")


# A forked child has none of its parent's threads: it starts its own.
os.register_at_fork(after_in_child=_hashing_thread.cache_clear)


def _digest(hasher, hashing: Future | None) -> str:
    """The hex SHA-256 of a file's bytes once its hashing (if any) is done; "" for no file."""
    if hashing is not None:
        hashing.result()
    return "" if hasher is None else hasher.hexdigest()


def ordered_map(fn, items, workers: int, window: int, done=()) -> Iterator:
    """``map(fn, items)`` in order, in worker processes when ``workers`` > 1, with at most
    ``window`` items in flight, so memory stays bounded however many items there are."""
    if workers <= 1:
        yield from map(fn, items)
        return
    with process_pool(workers, initializer=start_worker, initargs=(frozenset(done),)) as pool:
        yield from bounded_map(pool, fn, items, window)
