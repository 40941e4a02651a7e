"""Real 12-megapixel photos for the speed benches (imported by them; not a benchmark).

No camera photo of the Earth ships with the project, so the benches make 4000 x 3000 JPEGs
from the real imagery they have, as a camera would store them:

- Blue Marble: a 40 x 30 degree window of one monthly map of ``data/bluemarble_maps/`` (the
  repository's copy; 600 x 450 px of real imagery, clear of the held-out boxes), one place
  and month per photo;
- scikit-image's sample photos (astronaut, coffee, cat, rocket, ...), cropped to 4:3;

each enlarged to 4000 x 3000 (bicubic), with a camera's luminance grain (normal, ``GRAIN`` levels,
the same in the three channels: a camera's colour noise is smoothed away by its JPEG's halved chroma)
so the file holds about as much detail as a phone's 12-megapixel JPEG (2 to 3.5 MB at quality 90,
where an enlarged image without grain would compress to a third and decode faster than
any photo), and saved at JPEG quality 90. Photo ``i`` takes source ``i % len(SOURCES)`` and
grain seed ``i``: every file is distinct.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
MAPS = ROOT / "data" / "bluemarble_maps"
PHOTO_SIZE = (4000, 3000)
GRAIN = 2.5
QUALITY = 90
PX_PER_DEGREE = 15
WINDOW = (600, 450)   # 40 x 30 degrees of a map

# (name, longitude, latitude of the window's centre, month): twelve places, one per month.
PLACES = [("Sahara", 8, 22, 1), ("Amazon", -60, -6, 2), ("Europe", 15, 50, 3), ("Siberia", 100, 62, 4),
          ("Australia", 134, -25, 5), ("India", 78, 22, 6), ("Great Plains", -100, 40, 7),
          ("Canadian boreal", -100, 56, 8), ("Pampas", -62, -34, 9), ("Miombo", 25, -12, 10),
          ("China", 112, 33, 11), ("Kazakhstan", 66, 48, 12)]
SAMPLES = ["astronaut", "coffee", "chelsea", "rocket", "retina", "hubble_deep_field",
           "immunohistochemistry", "grass", "gravel"]
SOURCES = [f"Blue Marble {name}, month {month}" for name, *_, month in PLACES] + \
          [f"scikit-image {name}" for name in SAMPLES]


def _map_window(lon: float, lat: float, month: int, mask: np.ndarray) -> np.ndarray:
    """(450, 600, 3) uint8 of the month's map around (lon, lat), moved east until it is clear of
    the held-out boxes (no data)."""
    from biomeseason.io import images

    w, h = WINDOW
    x = int((lon + 180) * PX_PER_DEGREE) - w // 2
    y = min(max(int((90 - lat) * PX_PER_DEGREE) - h // 2, 0), mask.shape[0] - h)
    for _ in range(mask.shape[1] // 30):
        if not mask[y:y + h, x % mask.shape[1]:x % mask.shape[1] + w].any() and x % mask.shape[1] + w <= mask.shape[1]:
            break
        x += 30
    else:
        raise ValueError(f"no window of {w} x {h} px at row {y} is clear of the held-out boxes")
    x %= mask.shape[1]
    world = np.asarray(images.open_rgb(MAPS / f"world.2004{month:02d}.3x5400x2700.jpg"))
    return world[y:y + h, x:x + w]


def _sample(name: str) -> np.ndarray:
    """A scikit-image sample photo as (h, w, 3) uint8, cropped to 4:3 around its centre."""
    from skimage import data

    a = getattr(data, name)()
    a = np.stack([a] * 3, -1) if a.ndim == 2 else a[..., :3]
    h, w = a.shape[:2]
    if w * 3 > h * 4:
        cw = h * 4 // 3
        a = a[:, (w - cw) // 2:(w - cw) // 2 + cw]
    else:
        ch = w * 3 // 4
        a = a[(h - ch) // 2:(h - ch) // 2 + ch]
    return a


def sources() -> list[np.ndarray]:
    """The 21 real images, small, in ``SOURCES`` order."""
    from biomeseason.io import images

    mask = images.read_codes(MAPS / "hidden_mask.png") > 0
    return [_map_window(lon, lat, month, mask) for _, lon, lat, month in PLACES] + [_sample(n) for n in SAMPLES]


def photos(folder: Path, n: int = len(SOURCES)) -> list[tuple[Path, str]]:
    """``n`` distinct 12-megapixel JPEGs in ``folder``: [(path, what it shows)]."""
    small = sources()
    made = []
    for i in range(n):
        source = i % len(small)
        rng = np.random.default_rng(i)
        big = np.asarray(Image.fromarray(small[source]).resize(PHOTO_SIZE, Image.Resampling.BICUBIC), np.float32)
        big += rng.normal(0, GRAIN, (*big.shape[:2], 1)).astype(np.float32)   # luminance grain
        path = folder / f"photo_{i:04d}.jpg"
        Image.fromarray(np.clip(big, 0, 255).astype(np.uint8)).save(path, quality=QUALITY)
        made.append((path, SOURCES[source]))
    return made
