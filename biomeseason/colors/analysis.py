"""Colour analysis: an offline stand-in for the colour fields of Azure's image analysis.

    from biomeseason import colors
    colors.analyze_colors("photo.jpg")   # a dict of the five fields below

The palette comes from ``cluster``, clustered finer than ``colors.dominant_colors``
(``ANALYSIS_K``), and its basic names from ``names``.
"""
from __future__ import annotations

import numpy as np

from ..io import images
from .cluster import SEED, Pixels, one_thread, palette_of
from .names import ACHROMATIC_CHROMA, TABLE, chroma_of, lab_of, load_namer

ANALYSIS_K = 8           # analyze_colors clusters finer, so a small vivid patch can be the accent

# analyze_colors regions, as fractions of width and height: the foreground is
# the middle half in each direction (a quarter of the area), the background the
# ring within BORDER of an edge (44% of the area). Pixels in between count
# for neither, so a subject that fills the centre is not also the background.
CENTRE = 0.5
BORDER = 0.125
SALIENT_SHARE = 2.0       # percent; smaller clusters cannot be the accent colour
BW_MAX_COLOURED = 1.0     # percent of pixels above ACHROMATIC_CHROMA an image may have and be B&W


def analyze_colors(image, k: int = ANALYSIS_K, *, seed: int = SEED, ignore_frame: bool = False,
                   table: str = TABLE, max_pixels: int = images.MAX_PIXELS) -> dict:
    """An offline colour analysis with the fields of Azure's image analysis.

    - dominant_color_foreground: the basic name with the largest share in the
      centre region (the middle half of the width and of the height);
    - dominant_color_background: the same in the border ring (pixels within
      1/8 of the width or height from an edge);
    - dominant_colors: the basic names of the salient clusters (at least
      SALIENT_SHARE percent of the pixels), largest share first;
    - accent_color: hex of the most chromatic salient cluster;
    - is_bw_img: at most BW_MAX_COLOURED percent of the pixels have a chroma
      above ACHROMATIC_CHROMA (grayscale, black-and-white, faint casts).
    A region with no pixels (transparent, or all frame) gives None.
    """
    pixels = Pixels(image, ignore_frame=ignore_frame, max_pixels=max_pixels)
    namer = load_namer(table)
    with one_thread():
        palette, of_colour = palette_of(pixels, k, seed, namer)
    labels = of_colour[pixels.colour_of]                            # per pixel
    basic = np.array([c["basic_name"] for c in palette])           # per cluster
    y, x = ((np.arange(n) + 0.5) / n for n in pixels.shape)         # pixel centres, in (0, 1)
    centre = ((np.abs(y - 0.5) < CENTRE / 2)[:, None] & (np.abs(x - 0.5) < CENTRE / 2)).ravel()[pixels.index]
    border = ((np.minimum(y, 1 - y) < BORDER)[:, None] | (np.minimum(x, 1 - x) < BORDER)).ravel()[pixels.index]
    salient = [c for c in palette if c["share"] >= SALIENT_SHARE] or palette[:1]
    totals = {}
    for c in salient:
        totals[c["basic_name"]] = totals.get(c["basic_name"], 0.0) + c["share"]
    chroma = chroma_of(lab_of([c["rgb"] for c in salient]))
    coloured = 100.0 * np.average(chroma_of(pixels.lab) > ACHROMATIC_CHROMA, weights=pixels.counts)
    return {
        "dominant_color_foreground": _most_frequent(basic, labels[centre]),
        "dominant_color_background": _most_frequent(basic, labels[border]),
        "dominant_colors": sorted(totals, key=lambda name: (-totals[name], name)),
        "accent_color": salient[int(np.argmax(chroma))]["hex"],
        "is_bw_img": bool(coloured <= BW_MAX_COLOURED),
    }


def _most_frequent(names: np.ndarray, labels: np.ndarray):
    """The name of the clusters that ``labels`` (one a pixel) fall in most often (ties
    alphabetical), or None if there are no labels."""
    if labels.size == 0:
        return None
    totals = {}
    for name, count in zip(names, np.bincount(labels, minlength=len(names))):
        totals[name] = totals.get(name, 0) + int(count)
    return str(min(totals, key=lambda name: (-totals[name], name)))
