"""Cleaning one raw file (runs in the worker processes): hash, decode, resize, store, fingerprint.

    settings = Settings(raw="data/raw", out="/tmp/build", size=256, min_side=32, max_pixels=...)
    outcome = clean_file(settings, 0, "Boreal_Jan.jpg", "images/Boreal_Jan.jpg")

Decoding is ``images.read_image`` (draft JPEG decoding, EXIF orientation, ICC
to sRGB, 16-bit and float scaling, first frame, pixel limit), so a photo looks
the same here as in prediction. A failure becomes the ``reason`` of the
outcome, never an exception: one bad file must not end a run of thousands.

The outcome is small on purpose (a few numbers and strings): a million of
them pass back to the parent, which streams the thumbnails to disk.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from PIL import Image

from ..io import files
from ..io.images import ImageError, read_image, resize_short_side

JPEG_QUALITY = 95           # stored images; chroma kept at full resolution (colour is a cue)
THUMB_SIZE = 16             # near-duplicate colour test: THUMB_SIZE x THUMB_SIZE x 3 bytes
THUMB_BYTES = THUMB_SIZE * THUMB_SIZE * 3
_EXIF_IFD, _GPS_IFD = 0x8769, 0x8825
_DATETIME_ORIGINAL, _DATETIME = 0x9003, 0x0132
_FOCAL_35MM = 0xA405
_GPS_LAT_REF, _GPS_LAT, _GPS_LON_REF, _GPS_LON = 1, 2, 3, 4
# pHash (as imagehash.phash computes it): 32x32 grey, the 8x8 lowest DCT-II frequencies, each bit
# "above the median". The DCT as two small matrix products: (8, 32) @ (32, 32) @ (32, 8).
_N = 32
_DCT = 2 * np.cos(np.pi * np.arange(8)[:, None] * (2 * np.arange(_N)[None, :] + 1) / (2 * _N))


@dataclass(frozen=True)
class Settings:
    raw: str                # folder the sources are relative to
    out: str                # folder the output paths are relative to
    size: int
    min_side: int
    max_pixels: int


@dataclass
class Outcome:
    index: int
    reason: str = ""            # non-empty: rejected
    sha256: str = ""
    width: int = 0              # of the stored image
    height: int = 0
    pixels: int = 0             # of the original, to keep the largest of an identical set
    phash: int = 0
    thumb: bytes = b""          # THUMB_BYTES, for the near-duplicate colour test
    note: str = ""
    exif_month: int = 0         # from DateTimeOriginal; 0 when absent
    exif_lat: float | None = None


def clean_file(settings: Settings, index: int, source: str, dest: str) -> Outcome:
    """Read, hash, decode, orient, convert, resize, store and fingerprint one file."""
    try:
        with open(os.path.join(settings.raw, source), "rb") as f:
            data = f.read()
    except OSError as e:
        reason = "permission denied" if isinstance(e, PermissionError) else (e.strerror or str(e))
        return Outcome(index, reason=f"unreadable: {reason.lower()}")
    if not data:
        return Outcome(index, reason="empty file: 0 bytes")
    sha = hashlib.sha256(data).hexdigest()
    try:
        record = read_image(data, min_size=settings.size, max_pixels=settings.max_pixels,
                            min_side=settings.min_side)
    except ImageError as e:
        return Outcome(index, reason=e.reason, sha256=sha)
    month, lat, _ = exif_month_and_place(record.image)
    im = resize_short_side(record.image, settings.size)
    notes = list(record.notes)
    if min(record.original_size) < settings.size:
        notes.append(f"kept at {im.width}x{im.height}: smaller than size {settings.size}, not upscaled")
    files.save_image(os.path.join(settings.out, dest), im, quality=JPEG_QUALITY, subsampling=0)
    phash, thumb = fingerprint(im)
    w, h = record.original_size
    return Outcome(index, sha256=sha, width=im.width, height=im.height, pixels=w * h, phash=phash,
                   thumb=thumb, note="; ".join(notes), exif_month=month, exif_lat=lat)


def store_pixels(jobs) -> list[tuple[bytes, str]]:
    """For the memory-mapped store: each (path, short_side, (w, h)) job's pixels at exactly
    that size, as (RGB bytes, "") or (b"", what is wrong)."""
    done = []
    for path, short_side, size in jobs:
        try:
            image = resize_short_side(read_image(path, min_size=short_side).image, short_side)
        except ImageError as e:
            done.append((b"", f"{e.source} cannot be read ({e.reason})"))
            continue
        if image.size != tuple(size):  # a JPEG draft may land a pixel off the planned size
            image = image.resize(tuple(size))
        done.append((image.tobytes(), ""))
    return done


_SETTINGS: Settings | None = None   # in each worker process, set by start_worker


def start_worker(settings: Settings) -> None:
    global _SETTINGS
    _SETTINGS = settings


def clean_chunk(chunk) -> list[Outcome]:
    """``clean_file`` over (index, source, dest) jobs, in a worker started with ``start_worker``."""
    return [clean_file(_SETTINGS, *job) for job in chunk]


def fingerprint(im: Image.Image) -> tuple[int, bytes]:
    """(64-bit perceptual hash, THUMB_SIZE^2 RGB thumbnail bytes) of an RGB image."""
    grey = np.asarray(im.convert("L").resize((_N, _N), Image.Resampling.LANCZOS), dtype=np.float64)
    low = _DCT @ grey @ _DCT.T                                    # (8, 8)
    bits = (low > np.median(low)).ravel()
    thumb = im.resize((THUMB_SIZE, THUMB_SIZE), Image.Resampling.BOX)
    return int(np.packbits(bits).view(">u8")[0]), thumb.tobytes()


def exif_month_and_place(im: Image.Image) -> tuple[int, float | None, float | None]:
    """(month of DateTimeOriginal or 0, GPS latitude, GPS longitude in degrees or None); malformed EXIF
    gives none of them."""
    try:
        exif = im.getexif()
        stamp = exif.get_ifd(_EXIF_IFD).get(_DATETIME_ORIGINAL) or exif.get(_DATETIME)
        month = 0
        if isinstance(stamp, str) and stamp.strip():
            try:
                month = datetime.strptime(stamp.strip()[:19], "%Y:%m:%d %H:%M:%S").month
            except ValueError:
                month = 0  # cameras write '0000:00:00 00:00:00' when the clock was never set
        gps = exif.get_ifd(_GPS_IFD)
        lat = _gps_degrees(gps, _GPS_LAT, _GPS_LAT_REF, "S", 90)
        lon = _gps_degrees(gps, _GPS_LON, _GPS_LON_REF, "W", 180) if lat is not None else None
        return month, lat, lon
    except Exception:  # EXIF in the wild is often malformed; it costs the labels, not the image
        return 0, None, None


def exif_focal_35mm(im: Image.Image) -> float | None:
    """The lens's focal length in 35 mm film terms (EXIF FocalLengthIn35mmFilm), or None: with the height
    it was taken from, it gives a photo's footprint (36 mm / focal x height)."""
    try:
        value = im.getexif().get_ifd(_EXIF_IFD).get(_FOCAL_35MM)
        return float(value) if value and float(value) > 0 else None
    except Exception:  # malformed EXIF costs the footprint, not the image
        return None


def _gps_degrees(gps, tag: int, ref_tag: int, negative: str, limit: float) -> float | None:
    """A GPS coordinate (degrees, minutes, seconds and a hemisphere letter) in signed degrees, or None."""
    if tag not in gps:
        return None
    d, m, s = (float(v) for v in gps[tag])
    value = d + m / 60 + s / 3600
    if str(gps.get(ref_tag, "")).upper().startswith(negative):
        value = -value
    return value if -limit <= value <= limit else None
