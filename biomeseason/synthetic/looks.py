"""How real imagery looks, laid over a synthetic scene: measured colours, sky, view and sensor.

Used by ``scene.render_scene``; every random choice comes from the
scene's generator, so a seed still gives the same bytes.

- Colours: the ground (land, water, snow; before clouds) is mapped so that
  its CIELAB mean and spread match a draw from the table measured on real
  Blue Marble tiles of the same biome and month in one measured region,
  drawn per scene (``realstats``). The mapping
  is fitted in CIELAB on a 32 x 32 sample of the scene and applied as one
  affine map in RGB, which costs a few multiply-adds per pixel instead of a
  full CIELAB round trip.
- Sky: thin or thick cloud and its shadow (``features``), haze with the
  atmosphere's blue shift, sun glint on open water.
- View: ``nadir`` (straight down) or ``orbital`` (oblique, with perspective,
  haze growing with distance and, in most frames, the curved limb with its
  thin blue glow and black space above); ``mixed`` draws one per scene.
- Sensor: low resolution (rendered small and upsampled), noise; JPEG
  artefacts are added when the file is written.
"""
from __future__ import annotations

import warnings

import numpy as np
from PIL import Image
from skimage.color import lab2rgb, rgb2lab

from . import realstats

LOOKS = ("nadir", "orbital", "mixed")
ORBITAL_SHARE = 0.1        # of `mixed` scenes
LIMB_SHARE = 0.7           # of orbital scenes that show the horizon
CLEAR_SHARE = 0.85         # scenes drawn without cloud: composites and many photos are clear
MAX_CLOUD = 0.35           # cloud never hides more than this share of a scene, so the ground stays readable
THIN_CLOUD = (0.3, 0.9)   # cloud opacity factor: thin veils to thick decks
LOWRES_SHARE = 0.4         # scenes rendered small and upsampled
LOWRES_SIDES = (32, 32, 48, 64)   # never below the 32 px of a real tile: smaller ones erase what tells biomes apart
SPREAD = 0.3               # sampled colour means spread this share of the between-tile sd of one measured
#                            region; the places themselves differ more, and wider spreads blur the month
HAZE_SHARE = 0.2           # scenes with extra haze and blue shift beyond the month's own haze
HAZE_MAX = 0.12
GLINT_SHARE = 0.3          # scenes with water showing sun glint
NOISE_SHARE = 0.3
NOISE_SD = (0.5, 3.0)      # sensor noise, 0..255 units
JPEG_SHARE = 0.3           # files written at a low JPEG quality ...
JPEG_QUALITY = (40, 80)    # ... drawn from this range
SKY_BLUE = np.asarray([150, 180, 225], np.float32)     # path radiance of a clear atmosphere
LIMB_GLOW = np.asarray([90, 150, 235], np.float32)
SPACE = np.asarray([3, 5, 10], np.float32)
CLOUD_WHITE = 232.0
SHADOW = 0.45              # light lost in a cloud's shadow


def choose_view(look: str, rng) -> str:
    if look not in LOOKS:
        raise ValueError(f"look must be one of {LOOKS}, got {look!r}")
    if look == "mixed":
        return "orbital" if rng.random() < ORBITAL_SHARE else "nadir"
    return look


def render_side(size: int, rng) -> int:
    """The side the ground is rendered at: `size`, or a low resolution to be upsampled."""
    if rng.random() < LOWRES_SHARE:
        return min(size, int(rng.choice(LOWRES_SIDES)))
    return size


# ------------------------------------------------------------------ colours measured on real imagery

def _at_day(table: np.ndarray, day: float) -> np.ndarray:
    x = (day - 15.2) / 30.44
    i = int(np.floor(x))
    w = np.float32(x - i)
    return (1 - w) * table[i % 12] + w * table[(i + 1) % 12]


def colour_target(prefix: str, day: float, rng) -> tuple[np.ndarray, np.ndarray]:
    """A CIELAB mean and within-scene sd for a scene of biome `prefix` on `day`, drawn from the table."""
    regions = realstats.load()[prefix]["regions"]
    # One measured place per scene: a Gaussian over a blend of places would put most scenes between them.
    t = regions[list(regions)[rng.integers(len(regions))]]
    mean = _at_day(t["lab"], day) + SPREAD * _at_day(t["lab_sd"], day) * rng.standard_normal(3)
    sd = _at_day(t["within_sd"], day) + _at_day(t["within_sd_sd"], day) * rng.standard_normal(3)
    mean[0] = np.clip(mean[0], 3, 97)
    return mean.astype(np.float32), np.maximum(sd, (1.0, 0.3, 0.3)).astype(np.float32)


def match_colours(img: np.ndarray, mean: np.ndarray, sd: np.ndarray) -> np.ndarray:
    """(3, n, n) RGB 0..255 -> the same scene with CIELAB mean `mean` and sd near `sd`.

    The sd is measured at the 32 px scale of the real tiles, so finer detail
    rides on top as it would in a sharper image of the same place.
    """
    n = img.shape[1]
    step = max(1, n // 32)
    x = np.clip(img[:, ::step, ::step].reshape(3, -1).T / np.float32(255), 0, 1)   # (N, 3)
    lab = rgb2lab(x[None])[0]
    m, s = lab.mean(0), lab.std(0) + 1e-3
    gain = np.clip(sd / s, (0.1, 0.1, 0.1), (2.0, 1.5, 1.5))
    with warnings.catch_warnings():   # out-of-gamut targets are clipped, as a camera would
        warnings.simplefilter("ignore", UserWarning)
        target = lab2rgb(((lab - m) * gain + mean)[None])[0]      # (N, 3) in 0..1
    # Affine RGB map by least squares, pulled gently towards a plain shift
    # so that flat scenes (rainforest) do not get a wild map.
    X = np.c_[x, np.ones(len(x))]
    prior = np.vstack([np.eye(3), target.mean(0) - x.mean(0)])
    ridge = 0.02 * len(x) * np.diag([1, 1, 1, 0])
    M = np.linalg.solve(X.T @ X + ridge, X.T @ target + ridge @ prior).astype(np.float32)   # (4, 3)
    out = np.empty_like(img)
    for c in range(3):
        out[c] = M[0, c] * img[0] + M[1, c] * img[1] + M[2, c] * img[2] + np.float32(255) * M[3, c]
    return out


# ------------------------------------------------------------------ sky

def haze(img: np.ndarray, amount: float, colour, rng) -> np.ndarray:
    """Month haze (dust, smoke or blue) plus, in some scenes, the atmosphere's blue path radiance."""
    if amount > 0:
        img *= np.float32(1 - amount)
        img += (np.asarray(colour, np.float32) * np.float32(amount))[:, None, None]
    if rng.random() < HAZE_SHARE:
        blue = np.float32(rng.uniform(0.03, HAZE_MAX))
        img *= 1 - blue
        img += (SKY_BLUE * blue)[:, None, None]
    return img


def glint(img: np.ndarray, water: np.ndarray, grid, rng) -> None:
    """Sun glint: a bright, soft patch where the water mirrors the sun (in place)."""
    if not water.any() or rng.random() >= GLINT_SHARE:
        return
    n = img.shape[1]
    yy, xx = grid
    cy, cx = rng.uniform(-0.2, 1.2, 2) * n
    r = np.float32(rng.uniform(0.2, 0.6) * n)
    g = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (r * r)) * np.float32(rng.uniform(60, 200))
    img += (g * water)[None] * np.asarray([1.0, 0.98, 0.9], np.float32)[:, None, None]


# ------------------------------------------------------------------ view and sensor

def to_view(img: np.ndarray, size: int, view: str, rng) -> np.ndarray:
    """(3, m, m) ground in 0..255 -> (size, size, 3) uint8 as seen: nadir (upsampled if small) or oblique."""
    arr = np.moveaxis(np.clip(img, 0, 255).astype(np.uint8), 0, -1)
    m = arr.shape[0]
    if view == "nadir":
        if m == size:
            return arr
        return np.asarray(Image.fromarray(arr).resize((size, size), Image.BILINEAR))
    return _oblique(arr, size, rng)


def _oblique(arr: np.ndarray, size: int, rng) -> np.ndarray:
    """Perspective view of the ground square from an oblique camera, far side up."""
    m = arr.shape[0]
    limb = rng.random() < LIMB_SHARE
    yh = rng.uniform(0.08, 0.25) * size if limb else -rng.uniform(0.1, 0.5) * size   # horizon row
    yf = yh - 0.03 * size                       # far edge of the ground, hidden in the haze at the horizon
    w = rng.uniform(0.4, 1.5) * size            # the near edge reaches this far beyond each side
    dst = [(0, yf), (size, yf), (size + w, size), (-w, size)]
    src = [(0, 0), (m, 0), (m, m), (0, m)]
    view = np.asarray(Image.fromarray(arr).transform((size, size), Image.PERSPECTIVE, _coeffs(dst, src),
                                                     Image.BILINEAR), np.float32)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    # Haze thickens towards the horizon (longer path through the atmosphere).
    near = np.clip((yy - yf) / (size - yf), 0, 1)
    fog = np.float32(rng.uniform(0.2, 0.6)) * (1 - near) ** 2 + np.float32(rng.uniform(0, 0.1))
    if limb:
        r = rng.uniform(2.5, 6.0) * size
        cx, cy = size / 2 + rng.uniform(-0.4, 0.4) * size, yh + r
        d = np.hypot(xx - cx, yy - cy) - np.float32(r)                 # > 0 above the limb
        fog = np.maximum(fog, np.exp(np.minimum(d, 0) / np.float32(0.05 * size)))
        fog[yy < yf] = 1
    fog = np.clip(fog, 0, 1)[..., None]
    out = view * (1 - fog) + fog * SKY_BLUE
    if limb:
        space = (d > 0)[..., None]
        glow = np.exp(-np.maximum(d, 0) / np.float32(rng.uniform(0.01, 0.03) * size))[..., None]
        out = np.where(space, SPACE + glow * LIMB_GLOW, out)
    return np.clip(out, 0, 255).astype(np.uint8)


def _coeffs(dst, src) -> tuple:
    """PIL PERSPECTIVE coefficients mapping output points `dst` to input points `src`."""
    A, b = [], []
    for (x, y), (u, v) in zip(dst, src):
        A += [[x, y, 1, 0, 0, 0, -u * x, -u * y], [0, 0, 0, x, y, 1, -v * x, -v * y]]
        b += [u, v]
    return tuple(np.linalg.solve(np.asarray(A, float), np.asarray(b, float)))


def sensor(arr: np.ndarray, rng) -> np.ndarray:
    """Sensor noise in some scenes, (size, size, 3) uint8 in and out."""
    if rng.random() >= NOISE_SHARE:
        return arr
    noise = rng.standard_normal(arr.shape, dtype=np.float32) * np.float32(rng.uniform(*NOISE_SD))
    return np.clip(arr + noise, 0, 255).astype(np.uint8)


def jpeg_quality(default: int, rng) -> int:
    """The JPEG quality of one file: usually `default`, sometimes low enough to show blocks."""
    return int(rng.integers(*JPEG_QUALITY)) if rng.random() < JPEG_SHARE else int(default)
