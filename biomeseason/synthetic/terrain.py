"""Terrain and texture for synthetic scenes: Gaussian noise fields, a river's course, farm fields, hill shading.

Fields come from inverse FFTs of random spectra (spectral synthesis); every
random choice comes from the scene's generator, so a seed gives the same bytes.
"""
from __future__ import annotations

import functools

import numpy as np
from scipy import fft as sfft
from scipy.special import ndtri

AMBIENT = 0.35           # skylight share of land illumination, so slopes facing away are not black


def threshold(p) -> float:
    """Threshold of a unit-std Gaussian field that leaves a share p of pixels below it."""
    return float(ndtri(np.clip(p, 1e-4, 1 - 1e-4)))


@functools.lru_cache(maxsize=32)
def _band(k: int):
    """Frequencies (cycles per image) along y and x of the k x k lowest-frequency block, in FFT order."""
    f = np.r_[0:k // 2, -(k // 2):0].astype(np.float32)
    return f[:, None], f[None, :]


def noise_pair(rng, n: int, beta: float, corner: float, band: float, aniso=None, exact=True):
    """Two independent Gaussian fields (unit std), amplitude spectrum ~ (1 + (f/corner)^2)^(-beta/2).

    Only frequencies below band * n are drawn (smooth fields need few random
    numbers); one complex inverse FFT gives both fields, because the real and
    imaginary parts of a spectrum without Hermitian symmetry are independent.
    """
    k = max(4, min(n, 2 * int(band * n / 2)))
    amp = _amplitude(n, k, beta, corner, aniso) if aniso else _cached_amplitude(n, k, beta, round(corner, 3))
    # Uniform draws are cheaper than Gaussian ones, and each field sums thousands of
    # them, so it is Gaussian all the same (sqrt(12) gives unit variance).
    w = rng.random((2, k, k), dtype=np.float32)
    w -= np.float32(0.5)
    w *= amp * np.float32(np.sqrt(12))
    block = np.empty((k, k), np.complex64)
    block.real, block.imag = w
    # Inverse FFT of the zero-padded block, one axis at a time: the first pass only
    # needs the k non-zero rows (a pruned 2-D FFT).
    half = k // 2
    rows = np.zeros((k, n), np.complex64)
    rows[:, :half], rows[:, n - half:] = block[:, :half], block[:, half:]
    rows = sfft.ifft(rows, axis=1)
    full = np.zeros((n, n), np.complex64)
    full[:half], full[n - half:] = rows[:half], rows[half:]
    z = sfft.ifft(full, axis=0)
    re, im = z.real, z.imag
    if exact:   # large-scale fields have few modes, so their sample std wanders; pin it
        re, im = re / (re[::4, ::4].std() + 1e-12), im / (im[::4, ::4].std() + 1e-12)
    return re, im


def _amplitude(n: int, k: int, beta: float, corner: float, aniso=None) -> np.ndarray:
    """The (k, k) amplitude spectrum, scaled so that each field has unit expected std."""
    fy, fx = _band(k)
    if aniso is not None:  # (angle, ratio): features stretched along `angle` (ridges)
        a, r = aniso
        u = fx * np.float32(np.cos(a)) + fy * np.float32(np.sin(a))
        v = fy * np.float32(np.cos(a)) - fx * np.float32(np.sin(a))
        f2 = (u * np.float32(r)) ** 2 + v ** 2
    else:
        f2 = fx ** 2 + fy ** 2
    amp = (1.0 + f2 / np.float32(corner) ** 2) ** np.float32(-beta / 2)
    amp[0, 0] = 0.0
    return amp * np.float32(n * n / np.sqrt(np.sum(amp * amp)))


_cached_amplitude = functools.lru_cache(maxsize=128)(_amplitude)


def patchwork(rng, n: int, scale: float, kinds: int):
    """Farm fields on a rotated grid: crop kind, a share draw and a phase (both uniform) per pixel,
    constant within a field."""
    cell = rng.uniform(10, 22) * n / 256 / scale
    a = rng.uniform(0, np.pi)
    yy, xx = grid(n)
    p = np.floor((xx * np.cos(a) + yy * np.sin(a)) / cell).astype(np.int32)
    q = np.floor((yy * np.cos(a) - xx * np.sin(a)) / (cell * rng.uniform(1, 2))).astype(np.int32)
    ids = (p * 7919 + q * 104729) & 4095
    kind = rng.integers(0, max(kinds, 1), 4096)
    share, phase = rng.random((2, 4096), dtype=np.float32)
    return kind[ids], share[ids], phase[ids]


def river_distance(rng, n: int, width: float, tributary: float = 0.6) -> np.ndarray:
    """Distance to a meandering river's centre line in half-widths (< 1 is water), (n, n).

    The centre line is a random smooth curve across the image at a random
    angle; with probability `tributary` a narrower branch joins it from one side.
    """
    yy, xx = grid(n)
    best, side = None, None
    for k in range(1 + (rng.random() < tributary)):
        a = rng.uniform(0, np.pi)
        u = xx * np.float32(np.cos(a)) + yy * np.float32(np.sin(a))
        v = (yy * np.float32(np.cos(a)) - xx * np.float32(np.sin(a)) + 1.5 * n).astype(np.int32)
        # Meanders: 1-D noise along the river with a steep spectrum, a few bends per image.
        m = 3 * n
        f = np.fft.rfftfreq(m) * m / 3
        amp = (1 + (f / 1.5) ** 2) ** -1.6
        amp[0] = 0
        c = np.fft.irfft(amp * (rng.normal(size=f.size) + 1j * rng.normal(size=f.size)), m)
        c = (c / c.std() * rng.uniform(0.05, 0.12) * n).astype(np.float32)
        slope = np.gradient(c)
        off = u - np.float32(rng.uniform(-0.25, 0.25) * n + n / 2 * (np.cos(a) + np.sin(a))) - c[v]
        d = np.abs(off) / (np.sqrt(1 + slope[v] ** 2) * np.float32(max(width, 0.5) * (0.55 if k else 1)))
        if k == 0:
            best, side = d, off > 0
        else:
            best = np.minimum(best, np.where(side, d, np.float32(np.inf)))
    return best


@functools.lru_cache(maxsize=8)
def grid(n: int):
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32)
    return yy, xx


def hillshade(h, slope, elev, rng):
    """Lambertian shading of the terrain relative to flat ground; low sun -> stronger relief."""
    gy = np.roll(h, -1, 0) - np.roll(h, 1, 0)
    gx = np.roll(h, -1, 1) - np.roll(h, 1, 1)
    k = np.float32(slope / (np.sqrt(np.mean(gx * gx + gy * gy)) + 1e-12))   # typical slope = `slope`
    az, el = rng.uniform(0, 2 * np.pi), np.radians(elev)
    sx, sy = np.float32(np.cos(el) * np.cos(az) * k), np.float32(np.cos(el) * np.sin(az) * k)
    dot = (np.float32(np.sin(el)) - sx * gx - sy * gy) / np.sqrt(1 + (k * k) * (gx * gx + gy * gy))
    return AMBIENT + (1 - AMBIENT) * np.clip(dot / np.float32(np.sin(el)), 0, 2)
