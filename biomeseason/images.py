"""Any PIL image as 8-bit RGB: shared by preprocessing and prediction.

Grey, palette, alpha, CMYK, 16-bit and float images all arrive from real
archives; each needs its own care so that nothing is clipped or invented.
"""
from __future__ import annotations

import numpy as np
from PIL import Image

ALPHA_MODES = ("RGBA", "LA", "PA", "La", "RGBa")


def to_rgb(im: Image.Image) -> Image.Image:
    """8-bit RGB; raises ValueError for a mode PIL cannot convert."""
    if im.mode.startswith("I") or im.mode == "F":
        return _scale_to_8bit(im)
    if im.mode in ALPHA_MODES or (im.mode == "P" and "transparency" in im.info):
        # Transparent areas become black: in Earth imagery they are space or no-data.
        rgba = im.convert("RGBA")
        black = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        return Image.alpha_composite(black, rgba).convert("RGB")
    if im.mode == "RGB":
        return im
    try:
        return im.convert("RGB")
    except ValueError as e:
        raise ValueError(f"unsupported colour mode {im.mode}: {e}") from None


def _scale_to_8bit(im: Image.Image) -> Image.Image:
    """16-bit and 32-bit grey to 8 bits; PIL's own convert would clip at 255 (all white)."""
    a = np.asarray(im, dtype=np.float64)
    if im.mode == "F":
        lo, hi = float(a.min()), float(a.max())  # floats have no fixed range: stretch
        a = (a - lo) / (hi - lo or 1.0) * 255.0
    elif im.mode.startswith("I;16") or a.max() > 255:
        # "I" is also how older files store 16 bits; values above 255 say so.
        a = a / 257.0  # 0..65535 -> 0..255
    grey = Image.fromarray(np.clip(np.rint(a), 0, 255).astype(np.uint8), "L")
    return grey.convert("RGB")
