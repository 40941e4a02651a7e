"""The one place that opens image files: decoding, orientation, colour, limits.

    from biomeseason.io.images import read_image, ImageError
    record = read_image("photo.jpg", min_size=96)    # decoded at 1/8 scale if that still covers 96 px
    record.image          # PIL RGB, upright (EXIF), sRGB, 8 bits
    record.original_size  # (w, h) of the file's full-size raster
    record.notes          # e.g. ['first of 12 frames', 'ICC profile converted to sRGB']

Preprocessing, training, prediction and colours all read through here, so a
photo looks the same to each of them. Every failure is an ``ImageError`` whose
``reason`` starts with a short kind (``not an image``, ``empty file``,
``truncated``, ``too large``, ``too small``, ``unreadable``, ``corrupt``,
``unsupported``) followed by the details: the text written to rejected.csv.

What real archives bring and how each is handled:

* JPEG: decoded at the smallest 1/2, 1/4 or 1/8 DCT scale that still covers
  ``min_size`` (``Image.draft``); most of our speed on 12-megapixel photos.
* EXIF orientation: applied. Malformed EXIF costs the orientation, not the image.
* ICC profiles (Display P3, Adobe RGB, CMYK press profiles): converted to sRGB
  with LittleCMS, so colours mean the same in every file.
* CMYK without a profile, palette, grey, alpha: converted to RGB; transparent
  areas become black (space or no-data in Earth imagery), or are kept with
  ``keep_alpha``.
* 16-bit and float: scaled to 8 bits (16-bit by 1/257, float in [0, 1] by 255,
  other floats stretched from their min to max), never clipped.
* Animated GIF/WebP/APNG and multi-page TIFF: the first frame, said in ``notes``.
* A pixel limit (``max_pixels``): a larger image is refused from its header,
  before any pixel is decoded, so one huge file cannot take all memory.
"""
from __future__ import annotations

import io
import os
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

from .files import UsageError

MAX_PIXELS = 89_478_485     # PIL's own decompression-bomb limit (about 9459 x 9459)
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".gif", ".webp", ".jp2"}
ALPHA_MODES = ("RGBA", "LA", "PA", "La", "RGBa")
_SRGB = ImageCms.createProfile("sRGB")


class ImageError(ValueError):
    """A file or object that cannot be used as an image; ``reason`` says why in a few words."""

    def __init__(self, source, reason: str):
        super().__init__(f"{source}: {reason}")
        self.source = str(source)
        self.reason = reason

    def __reduce__(self):   # whole across processes (a worker's error reaches the parent as itself)
        return type(self), (self.source, self.reason)

    @property
    def kind(self) -> str:
        return self.reason.split(":", 1)[0]


@dataclass
class ImageRecord:
    image: Image.Image                       # RGB (or RGBA with keep_alpha), upright, sRGB, 8-bit
    original_size: tuple[int, int]           # (w, h) of the full-size raster in the file
    format: str = ""                         # JPEG, PNG, ... ('' for in-memory images)
    frames: int = 1
    notes: list[str] = field(default_factory=list)

    @property
    def note(self) -> str:
        return "; ".join(self.notes)


def is_image_name(path) -> bool:
    """Whether a file name has an image suffix (used to pick files from folders)."""
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def find_images(paths) -> tuple[list[Path], list[Path]]:
    """(images, ignored): files named directly, plus image files found recursively in folders.

    In folders, hidden files (``.DS_Store``) and names without an image suffix
    are ignored, not tried; a file named directly is always tried, so a
    mislabelled one is reported. Shared by the colours and prediction commands.
    """
    found, ignored = [], []
    for path in map(Path, paths):
        if not path.is_dir():
            found.append(path)
            continue
        for f in sorted(q for q in path.rglob("*") if q.is_file()):
            hidden = any(part.startswith(".") for part in f.relative_to(path).parts)
            (found if is_image_name(f) and not hidden else ignored).append(f)
    return found, ignored


def check_paths_exist(paths) -> None:
    """Refuse, before any work, an input path that is not there."""
    for path in map(Path, paths):
        if not path.exists():
            raise UsageError(f"{path}: no such file or folder")


def read_image(source, *, min_size: int | None = None, max_pixels: int = MAX_PIXELS,
               min_side: int = 1, keep_alpha: bool = False, reduce: bool = False) -> ImageRecord:
    """Decode ``source`` (path, the file's bytes, file object, PIL image or uint8/float array).

    ``min_size``: the short side the caller needs; a JPEG is decoded at the
    smallest DCT scale that still covers it, and with ``reduce`` any image is
    then box-reduced by an integer factor while it still covers it.
    ``min_side``: a smaller original is refused as too small.
    Raises ImageError for anything that cannot be used.
    """
    name = name_of(source)
    if isinstance(source, np.ndarray):
        return _finish(_from_array(source, name), name, "", min_size, keep_alpha, reduce, [])
    if isinstance(source, Image.Image):
        # Not ours to draft: that would change the caller's image in place.
        return _finish(source, name, source.format or "", min_size, keep_alpha, reduce, [],
                       original=source.size)
    if isinstance(source, (bytes, bytearray)):
        if not source:
            raise ImageError(name, "empty file: 0 bytes")
        fp = io.BytesIO(source)
    elif hasattr(source, "read"):
        fp = source
    else:
        fp = _open_path(source, name)
    try:
        # PIL's own bomb check would refuse before telling the size; ours reads
        # the header alone (no pixels yet), then decides.
        with _pixel_limit(None), warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            try:
                im = Image.open(fp)
                original = im.size
                if original[0] * original[1] > max_pixels:
                    raise ImageError(name, f"too large: {original[0]}x{original[1]} = "
                                           f"{original[0] * original[1]:,} pixels, above the limit of "
                                           f"{max_pixels:,} (raise --max-pixels if you trust the file)")
                if min(original) < min_side:
                    raise ImageError(name, f"too small: {original[0]}x{original[1]} "
                                           f"(short side below {min_side} px)")
                notes = []
                frames = int(getattr(im, "n_frames", 1) or 1)
                if frames > 1:
                    notes.append(f"first of {frames} frames used")
                if min_size and im.format == "JPEG":
                    im.draft(im.mode if im.mode in ("RGB", "L", "CMYK") else None,
                             _draft_request(original, min_size))
                im.load()
            except ImageError:
                raise
            except UnidentifiedImageError:
                raise ImageError(name, "not an image: no image format recognised") from None
            except OSError as e:
                kind = "truncated" if "truncated" in str(e) or "broken data" in str(e) else "corrupt"
                raise ImageError(name, f"{kind}: {e}") from None
            except Exception as e:  # plugins raise many types on malformed data; one file must not end a run
                raise ImageError(name, f"corrupt: {type(e).__name__}: {e}") from None
        return _finish(im, name, im.format or "", min_size, keep_alpha, reduce, notes,
                       original=original, frames=frames)
    finally:
        if fp is not source:
            fp.close()


def read_codes(source, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """A single-band map of class codes (land cover, climate zones, a mask) as a (H, W) uint8 array,
    its values as stored: no colour conversion, no orientation, no scaling."""
    name = name_of(source)
    fp = _open_path(source, name)
    try:
        with _pixel_limit(max_pixels):
            try:
                im = Image.open(fp)
                if im.mode not in ("L", "P", "1"):
                    raise ImageError(name, f"unsupported: a map of codes must have one 8-bit band, not {im.mode}")
                return np.asarray(im if im.mode != "1" else im.convert("L"), dtype=np.uint8)
            except ImageError:
                raise
            except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as e:
                raise ImageError(name, f"unreadable: {e}") from None
    finally:
        fp.close()


def open_rgb(source, **options) -> Image.Image:
    """``read_image(...).image``: the decoded RGB image alone."""
    return read_image(source, **options).image


def _open_path(source, name: str):
    path = Path(source)
    try:
        if path.is_dir():
            raise ImageError(name, "not an image: it is a folder")
        fp = open(path, "rb")
    except FileNotFoundError:
        raise ImageError(name, "unreadable: no such file") from None
    except PermissionError:
        raise ImageError(name, "unreadable: permission denied") from None
    except OSError as e:
        raise ImageError(name, f"unreadable: {e.strerror or e}") from None
    if os.fstat(fp.fileno()).st_size == 0:
        fp.close()
        raise ImageError(name, "empty file: 0 bytes")
    return fp


def _finish(im: Image.Image, name: str, fmt: str, min_size, keep_alpha: bool, reduce: bool,
            notes: list[str], original=None, frames: int = 1) -> ImageRecord:
    try:
        im = ImageOps.exif_transpose(im)
    except Exception as e:  # malformed EXIF is common and must not cost the image
        notes.append(f"EXIF unreadable ({type(e).__name__}); orientation not applied")
    try:
        im, converted = _icc_to_srgb(im)
    except Exception as e:  # a broken profile costs the conversion, not the image
        converted = False
        notes.append(f"ICC profile unusable ({type(e).__name__}); colours taken as sRGB")
    if converted:
        notes.append("ICC profile converted to sRGB")
    try:
        im = to_rgba(im) if keep_alpha and _has_alpha(im) else to_rgb(im)
    except ValueError as e:
        raise ImageError(name, f"unsupported: {e}") from None
    if reduce and min_size:
        factor = min(im.size) // min_size
        if factor >= 2:
            im = im.reduce(factor)  # box average: cheap and alias-free
    return ImageRecord(im, tuple(original or im.size), fmt, frames, notes)


def _icc_to_srgb(im: Image.Image) -> tuple[Image.Image, bool]:
    """(image in sRGB, whether a conversion happened); images without a profile pass through."""
    icc = im.info.get("icc_profile")
    if not icc or im.mode not in ("RGB", "RGBA", "CMYK", "L", "LA"):
        return im, False
    profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
    description = (ImageCms.getProfileDescription(profile) or "").strip().lower()
    if im.mode in ("RGB", "RGBA") and description.startswith("srgb"):
        return im, False
    if im.mode in ("L", "LA"):
        return im, False  # grey stays grey
    out_mode = "RGBA" if im.mode == "RGBA" else "RGB"
    converted = ImageCms.profileToProfile(im, profile, _SRGB, outputMode=out_mode)
    converted.info.pop("icc_profile", None)
    return converted, True


def _has_alpha(im: Image.Image) -> bool:
    return im.mode in ALPHA_MODES or (im.mode == "P" and "transparency" in im.info)


def to_rgba(im: Image.Image) -> Image.Image:
    if im.mode.startswith("I") or im.mode == "F":
        return _scale_to_8bit(im).convert("RGBA")
    return im.convert("RGBA")


def to_rgb(im: Image.Image) -> Image.Image:
    """8-bit RGB; raises ValueError for a mode PIL cannot convert."""
    if im.mode.startswith("I") or im.mode == "F":
        return _scale_to_8bit(im)
    if _has_alpha(im):
        # Transparent areas become black: in Earth imagery they are space or no-data.
        rgba = im.convert("RGBA")
        black = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        return Image.alpha_composite(black, rgba).convert("RGB")
    if im.mode == "RGB":
        return im
    try:
        return im.convert("RGB")
    except ValueError as e:
        raise ValueError(f"colour mode {im.mode} cannot be converted to RGB ({e})") from None


def _scale_to_8bit(im: Image.Image) -> Image.Image:
    """16-bit, 32-bit and float grey to 8 bits; PIL's own convert would clip at 255 (all white)."""
    a = np.asarray(im, dtype=np.float64)
    finite = a[np.isfinite(a)]
    if im.mode == "F":
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        if lo >= 0.0 and hi <= 1.0:
            a = a * 255.0                         # reflectance-like floats: 0..1 is black..white
        else:
            a = (a - lo) / (hi - lo or 1.0) * 255.0  # no fixed range: stretch
    elif im.mode.startswith("I;16") or (finite.size and finite.max() > 255):
        # "I" is also how older files store 16 bits; values above 255 say so.
        a = a / 257.0  # 0..65535 -> 0..255
    a = np.where(np.isfinite(a), a, 0.0)           # NaN (no-data) becomes black, never NaN colours
    grey = Image.fromarray(np.clip(np.rint(a), 0, 255).astype(np.uint8), "L")
    return grey.convert("RGB")


def _from_array(array: np.ndarray, name: str) -> Image.Image:
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (1, 3, 4)):
        raise ImageError(name, f"unsupported: expected an (H, W), (H, W, 3) or (H, W, 4) array, "
                               f"got shape {array.shape}")
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if array.dtype == np.uint16:
        array = np.rint(array / 257.0).astype(np.uint8)
    elif array.dtype != np.uint8:
        if not np.issubdtype(array.dtype, np.floating) or np.nanmin(array) < 0 or np.nanmax(array) > 1:
            raise ImageError(name, "unsupported: arrays must be uint8 (0..255), uint16, or float in [0, 1]")
        array = np.rint(np.nan_to_num(array) * 255).astype(np.uint8)
    return Image.fromarray(np.ascontiguousarray(array))


@contextmanager
def _pixel_limit(max_pixels: int | None):
    """PIL checks image sizes against a module global; set ours for the duration."""
    before = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = max_pixels
    try:
        yield
    finally:
        Image.MAX_IMAGE_PIXELS = before


def _draft_request(original: tuple[int, int], size: int) -> tuple[int, int]:
    """The (w, h) that a JPEG draft must still cover: short side ``size``, long side rounded up."""
    w, h = original
    if w <= h:
        return size, -(-h * size // w)
    return -(-w * size // h), size


def short_side_size(width: int, height: int, size: int) -> tuple[int, int]:
    """(w, h) once the short side is shrunk to ``size``; unchanged if already no larger."""
    short = min(width, height)
    if short <= size:
        return width, height
    target = (max(1, round(width * size / short)), max(1, round(height * size / short)))
    return tuple(size if side == short else t for side, t in zip((width, height), target))


def resize_short_side(im: Image.Image, size: int) -> Image.Image:
    """Shrink so the short side is ``size``; never enlarge."""
    target = short_side_size(*im.size, size)
    if target == im.size:
        return im
    # reducing_gap: a box pre-shrink before Lanczos; visually the same, much faster on big PNGs.
    return im.resize(target, Image.Resampling.LANCZOS, reducing_gap=3.0)


def name_of(source) -> str:
    if isinstance(source, (str, Path)):
        return str(source)
    if isinstance(source, (bytes, bytearray)):
        return "<bytes>"
    return getattr(source, "filename", "") or getattr(source, "name", "") or "<image>"
