"""A random, physically plausible camera: what another sensor, another atmosphere and another rendering
make of the same ground.

    camera = Camera()                        # the measured ranges of CAMERA
    photo = camera(tile)                     # (3, H, W) uint8 or float in [0, 1] -> the same kind
    photo = camera(tile, generator=g)        # reproducible
    looks = camera.kinds["l1c"]              # one kind's ranges: "bluemarble", "l2a", "l1c", "astronaut"

The model learns the Earth from one camera: the Blue Marble composites (cloud-free, 7 km a pixel,
very dark greens, almost no blue). A photo from any other camera differs in ways a physical model
names (Kaufman's top-of-atmosphere signal: ``L = t * exposure * gain_c * ground_c ** gamma + haze_c``):

1. **Rendering** (``gamma``): how the product maps reflectance to 8 bits.
2. **Exposure** and **white balance** (per-channel ``gain`` relative to green).
3. **Transmission** ``t``: the atmosphere lowers contrast about the scene's mean.
4. **Path radiance** ``haze``: light scattered into the view, mostly blue (Rayleigh), green about half of
   it, red less; an oblique view looks through more air toward its horizon (``oblique``: the haze
   grows and the transmission falls from the bottom of the frame to its top).
5. **Clouds** (thin veils and thick cells, from smooth noise) with their **shadows** (the same field,
   shifted, darkening the ground).
6. The sensor: **blur**, **noise**, **JPEG** compression.

The ranges are measured, not guessed (``bench/cameras.py`` puts the table in its report): twelve
Sentinel-2 previews (``data/cameras/sentinel2``, L1C top-of-atmosphere and L2A surface reflectance)
and the six BigEarthNet patches (``data/cameras/bigearthnet``), each against the Blue Marble of the
same place and month. On the land scenes: rendering gamma 0.73 (L1C), 0.76-0.95 (L2A), 0.51-1.02
(BigEarthNet, by rendering); brightness ratio 0.69-1.60; red/green gain 0.90-1.30, blue/green
0.72-0.99; contrast 0.5-1.4 (a hazy tail to 0.3); a blue offset of 0-26 (L2A) and 25-70 (L1C) on
0..255, green 0.4-0.5 and red 0.2-0.45 of it; noise 1-3.7; blur up to 0.6 of a map pixel.

Hue is never turned for its own sake: white balance and haze move colours as a camera does, and the
month signal (green-up, leaf fall, snow) survives them because they act on the whole frame alike.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import torch
from scipy.ndimage import gaussian_filter, zoom
from torchvision.transforms.v2 import functional as TF


@dataclass(frozen=True)
class CameraRanges:
    """Ranges of one kind of camera; each draw is uniform in the range (log-uniform for ratios)."""
    gamma: tuple = (0.5, 1.05)             # rendering x ** gamma
    exposure: tuple = (0.7, 1.6)           # overall gain
    gain_red: tuple = (0.9, 1.3)           # white balance, relative to green
    gain_blue: tuple = (0.7, 1.0)
    transmission: tuple = (0.5, 1.3)       # contrast about the scene mean (> 1: a crisper sensor than 7 km)
    haze_blue: tuple = (0.0, 70 / 255)     # path radiance in blue, on 0..1
    haze_green: tuple = (0.4, 0.5)         # ... green as a share of blue
    haze_red: tuple = (0.2, 0.45)          # ... red as a share of blue
    oblique_p: float = 0.0                 # share of views looking toward a horizon
    oblique: tuple = (0.3, 1.0)            # extra haze at the top of the frame, relative to the bottom
    cloud_p: float = 0.3                   # share of frames with clouds
    cloud_cover: tuple = (0.05, 0.5)       # share of the frame under cloud
    cloud_opacity: tuple = (0.3, 1.0)      # thin veil .. thick cell
    shadow: tuple = (0.2, 0.6)             # how much a thick cloud's shadow darkens the ground
    blur: tuple = (0.0, 1.2)               # Gaussian sigma in pixels of a 64 px input (0.6 map pixels at 32 px)
    noise: tuple = (0.0, 3 / 255)          # Gaussian sensor noise, on 0..1
    jpeg_p: float = 0.5                    # share compressed
    jpeg_quality: tuple = (40, 95)


# One entry a kind of camera; ``mixed`` (the default) draws a kind per image.
KINDS = {
    # the training camera itself, with a little sensor noise: keeps the model sure of its own images
    "bluemarble": CameraRanges(gamma=(0.95, 1.05), exposure=(0.9, 1.1), gain_red=(0.97, 1.03),
                               gain_blue=(0.97, 1.03), transmission=(0.9, 1.1), haze_blue=(0.0, 5 / 255),
                               cloud_p=0.0, blur=(0.0, 0.5), noise=(0.0, 1 / 255), jpeg_p=0.2),
    # surface reflectance (Sentinel-2 L2A, Landsat SR, BigEarthNet): a gain and little haze
    "l2a": CameraRanges(gamma=(0.75, 1.05), exposure=(0.8, 1.5), haze_blue=(0.0, 26 / 255), transmission=(0.8, 1.4),
                        cloud_p=0.2),
    # top of atmosphere (Sentinel-2 L1C, MODIS true colour): blue path radiance, lower contrast
    "l1c": CameraRanges(gamma=(0.65, 1.0), exposure=(0.8, 1.7), haze_blue=(25 / 255, 70 / 255),
                        transmission=(0.3, 0.9), gain_blue=(0.7, 0.95), cloud_p=0.35),
    # handheld from orbit through a window: oblique, hazy, any white balance, JPEG
    "astronaut": CameraRanges(gamma=(0.5, 1.0), exposure=(0.7, 1.8), gain_red=(0.85, 1.3), gain_blue=(0.75, 1.15),
                              transmission=(0.3, 1.0), haze_blue=(0.0, 70 / 255), oblique_p=0.6, cloud_p=0.4,
                              jpeg_p=0.8, jpeg_quality=(50, 95)),
}
MIXED = {"bluemarble": 0.25, "l2a": 0.25, "l1c": 0.25, "astronaut": 0.25}


def _uniform(r, rng: np.random.Generator) -> float:
    return float(rng.uniform(float(r[0]), float(r[1])))


def _log_uniform(r, rng: np.random.Generator) -> float:
    return math.exp(rng.uniform(math.log(r[0]), math.log(r[1])))


def smooth_noise(h: int, w: int, rng: np.random.Generator, octaves: int = 3) -> np.ndarray:
    """(h, w) smooth random field in [0, 1]: a few octaves of white noise enlarged by cubic splines."""
    field_ = np.zeros((h, w), np.float32)
    for i in range(octaves):
        cells = 2 ** (i + 1) + 1
        coarse = rng.random((cells, cells)).astype(np.float32)
        field_ += zoom(coarse, (h / cells, w / cells), order=3, mode="nearest", grid_mode=True)[:h, :w] / 2 ** i
    lo, hi = field_.min(), field_.max()
    return (field_ - lo) / (hi - lo + 1e-6)


def render(x: np.ndarray, r: CameraRanges, rng: np.random.Generator) -> np.ndarray:
    """(H, W, 3) float32 in [0, 1] through one random camera of ranges ``r``; the result in [0, 1].

    NumPy and SciPy, not torch: a few thousand pixels an image, where torch's threads cost more than the work
    (a blur took 47 ms instead of 0.3 on a busy 2-core machine)."""
    h, w, _ = x.shape
    x = np.clip(x, 0, 1) ** np.float32(_log_uniform(r.gamma, rng))
    gains = np.array([_log_uniform(r.gain_red, rng), 1.0, _log_uniform(r.gain_blue, rng)], np.float32)
    x = x * (np.float32(_log_uniform(r.exposure, rng)) * gains)
    # How much more air the view crosses, row by row (1 at the bottom; an oblique view grows toward the top).
    air = np.ones((h, 1, 1), np.float32)
    if rng.random() < r.oblique_p:
        air = 1 + np.float32(_uniform(r.oblique, rng)) * np.linspace(1, 0, h, dtype=np.float32)[:, None, None]
    t_map = np.float32(_uniform(r.transmission, rng)) ** air                        # less contrast far off
    mean = x.mean(axis=(0, 1), keepdims=True)
    x = mean + t_map * (x - mean)
    blue = _uniform(r.haze_blue, rng)
    haze = np.array([blue * _uniform(r.haze_red, rng), blue * _uniform(r.haze_green, rng), blue], np.float32)
    x = x + haze * air
    if rng.random() < r.cloud_p:
        x = _clouds(x, r, rng)
    sigma = _uniform(r.blur, rng)
    if sigma > 0.05:
        x = gaussian_filter(x, sigma=(sigma, sigma, 0), mode="nearest", truncate=2.0)
    noise = _uniform(r.noise, rng)
    if noise > 0:
        x = x + np.float32(noise) * rng.standard_normal(x.shape, dtype=np.float32)
    x = np.clip(x, 0, 1)
    if rng.random() < r.jpeg_p:
        as_bytes = torch.from_numpy(np.ascontiguousarray((x * 255).round().astype(np.uint8).transpose(2, 0, 1)))
        x = TF.jpeg(as_bytes, int(_uniform(r.jpeg_quality, rng))).numpy().transpose(1, 2, 0).astype(np.float32) / 255
    return x


def _clouds(x: np.ndarray, r: CameraRanges, rng: np.random.Generator) -> np.ndarray:
    """Cloud of a random cover and opacity over the frame, and its shadow on the ground beside it."""
    h, w, _ = x.shape
    field_ = smooth_noise(h, w, rng)
    cover = _uniform(r.cloud_cover, rng)
    edge = np.quantile(field_, 1 - cover)
    cloud = np.clip((field_ - edge) / (1 - edge + 1e-6), 0, 1) ** 0.5 * np.float32(_uniform(r.cloud_opacity, rng))
    reach = max(1, h // 8)
    dy, dx = rng.integers(-reach, reach + 1, 2)
    shadow = np.roll(cloud, (int(dy), int(dx)), axis=(0, 1)) * np.float32(_uniform(r.shadow, rng))
    x = x * (1 - shadow[..., None])
    white = np.array([0.92, 0.93, 0.95], np.float32)
    return x * (1 - cloud[..., None]) + white * cloud[..., None]


@dataclass
class Camera:
    """A random camera per call: a kind drawn from ``mix`` (weights), then its ranges; ``p`` the share of
    images it touches (the rest pass unchanged)."""
    p: float = 1.0
    mix: dict = field(default_factory=lambda: dict(MIXED))
    kinds: dict = field(default_factory=lambda: dict(KINDS))

    def __post_init__(self):
        unknown = sorted(set(self.mix) - set(self.kinds))
        if unknown:
            raise ValueError(f"unknown camera kind(s) {', '.join(unknown)}; known: {', '.join(self.kinds)}")
        if not 0 <= self.p <= 1:
            raise ValueError(f"the camera's share p must be within 0..1, not {self.p}")

    def __call__(self, image: torch.Tensor, generator: torch.Generator | None = None,
                 kind: str | None = None) -> torch.Tensor:
        """(3, H, W) uint8 or float in [0, 1] -> the same kind. The draws come from ``generator`` (default:
        torch's own, which DataLoader workers seed apart)."""
        if kind is None and float(torch.rand((), generator=generator)) >= self.p:
            return image
        rng = np.random.default_rng(int(torch.randint(2**62, (), generator=generator)))
        if kind is None:
            names = list(self.mix)
            weights = np.array([float(self.mix[k]) for k in names])
            kind = names[int(rng.choice(len(names), p=weights / weights.sum()))]
        as_uint8 = image.dtype == torch.uint8
        x = image.permute(1, 2, 0).numpy().astype(np.float32)                       # (H, W, 3)
        out = render(x / 255 if as_uint8 else x, self.kinds[kind], rng)
        out = (out * 255).round().astype(np.uint8) if as_uint8 else out
        return torch.from_numpy(np.ascontiguousarray(out.transpose(2, 0, 1))).to(image.dtype)

    def batch(self, images: torch.Tensor, mean, std, generator: torch.Generator | None = None) -> torch.Tensor:
        """(B, 3, H, W) images normalised by ``mean`` and ``std`` -> the same batch, a share ``p`` of them
        through a random camera each (training on pairs: the clean batch for a teacher, these for the model)."""
        mean_ = torch.as_tensor(mean, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
        std_ = torch.as_tensor(std, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
        x = (images * std_ + mean_).clamp(0, 1).cpu()
        views = torch.stack([self(one, generator) for one in x]).to(images.device)
        return (views - mean_) / std_

    def settings(self) -> dict:
        """Plain values for a run's config and its checkpoint."""
        return {"p": self.p, "mix": dict(self.mix),
                "kinds": {k: {n: list(v) if isinstance(v, tuple) else v for n, v in asdict(r).items()}
                          for k, r in self.kinds.items() if k in self.mix}}

    def only(self, kind: str) -> Camera:
        """The same camera always of one kind (a bench's simulated camera)."""
        return replace(self, p=1.0, mix={kind: 1.0})


class RandomCamera(torch.nn.Module):
    """``Camera`` as a transform of a uint8 (3, H, W) tensor, for ``presets.train_transform``."""

    def __init__(self, camera: Camera):
        super().__init__()
        self.camera = camera

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.camera(image)
