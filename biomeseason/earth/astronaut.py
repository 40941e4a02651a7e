"""What an astronaut's handheld camera sees from the ISS, rendered from the twelve Blue Marble maps.

    from biomeseason.earth.astronaut import random_views, render_view

    view = render_view(month=7, lat=30.0, lon=31.2, focal_mm=400, tilt_deg=30, azimuth_deg=90)
    view.image            # (256, 256, 3) uint8
    view.footprint_km     # ground width along the image's centre row (None if it misses the Earth)
    view.centre           # (lat, lon) of the ground at the image centre, or None
    view.earth_share, view.earth_box, view.ground     # the ground's share, its box, each pixel's lat/lon
    views = random_views(16, rng=0, camera="astronaut", frame_p=0.3)   # for a bench or for training

    python bench/astronaut_views.py     # a contact sheet of lenses x tilts: bench/results/astronaut_views.jpg

The camera is a pinhole set up as on the station: ``altitude_km`` (380-420) above the nadir point,
a lens of ``focal_mm`` (50-1600) on a full-frame 36 x 24 mm sensor whose centre 24 x 24 mm square is
the view (training images are square), tilted ``tilt_deg`` off nadir toward ``azimuth_deg``
(clockwise from north). The image's top is the far side, toward the horizon, so a nadir view with
azimuth 0 is north-up, like the map. At 400 km a pixel of a 256 px view spans 24 / 256 / focal
radians: the view is 6 km across at 1600 mm, 190 km at 50 mm looking straight down, and a 50 mm lens
tilted 60 degrees reaches past the horizon (70 degrees off nadir at 400 km), where space begins.

Each pixel's ray meets the Earth, a sphere of 6371 km, or misses it:

* ground: the month's map at the ray's lat/lon, bilinear; a short lens samples a box-reduced copy
  of the map (a mipmap, blended between two levels) whose pixel matches the pixel's ground size,
  so a wide view is not a field of aliased dots; a long lens's few map pixels are simply upsampled.
  The air between the camera and the ground adds its own light and dims the ground by the air mass
  of the ray (a spherical atmosphere of scale height 8 km: 1 at nadir, about 40 at the horizon),
  with Rayleigh's blue-heavy optical depth plus an aerosol haze (``haze``, at 550 nm): Koschmieder's
  airlight, so the view whitens and blues toward the horizon. The maps are cloud-free composites of
  the ground as seen from straight above, so only the air beyond one vertical column is added.
* space: black, with the limb's thin blue glow: the light the atmosphere scatters along a ray that
  passes it at its tangent altitude (the chord through an exponential atmosphere), fading within
  a few tens of km above the horizon and bluer as it fades.

Optionally a camera from ``biomeseason.model.camera`` (exposure, white balance, haze, clouds, blur,
noise, JPEG) is applied to the ground and the glow, with its own oblique gradient turned off: the air
mass above already grows the haze toward the horizon pixel by pixel. And optionally part of a
window frame: a dark rounded opening, out of focus, that hides some corners or edges.

The hidden mask (``hidden_mask.png``: 17 boxes held out of the project) is never used for training:
every view reports ``hidden_share``, the share of its ground pixels whose map samples (their
bilinear neighbours at the mipmap level used) touch a hidden pixel; ``random_views`` redraws any
view for which it is not 0, so none of its views shows one hidden pixel.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from PIL import Image

from . import worldmap
from .worldmap import HEIGHT, WIDTH, majority_biome, map_path

R_EARTH = 6371.0                # km, a sphere
SENSOR_MM = 24.0                # the square view: the centre of a 36 x 24 mm full frame, its short side
FOCAL_MM = (50.0, 1600.0)       # the station's handheld lenses
TILT_DEG = (0.0, 60.0)          # off nadir
ALTITUDE_KM = (380.0, 420.0)    # the station's orbit
ALTITUDE = 400.0
MAP_KM = np.pi * R_EARTH / HEIGHT            # 7.41 km: a map pixel north to south
LEVELS = 6                                   # mipmap levels: map pixels of 7 to 240 km
SCALE_HEIGHT_KM = 8.0
# Vertical optical depths at red, green, blue (650, 550, 450 nm): Rayleigh's, and the aerosol's
# relative to 550 nm (Angstrom exponent 1.3).
RAYLEIGH = np.array([0.05, 0.10, 0.23])
AEROSOL = np.array([0.80, 1.00, 1.30])
HAZE = 0.1                      # aerosol optical depth at 550 nm of a clear day
HAZE_RANGE = (0.03, 0.4)        # what random_views draws: very clear to hazy
AIRLIGHT = np.array([150, 180, 225]) / 255   # sRGB colour of a thick layer of lit air (looks.SKY_BLUE)
SPACE = np.array([3, 5, 10]) / 255
TO_LINEAR = ((np.arange(256) / 255) ** 2.2).astype(np.float32)   # sRGB (as a 2.2 power) to linear light
FRAME_COLOUR = np.array([24, 23, 21])        # a window frame's dark metal, lit from the cabin
MAX_TRIES = 200                 # draws per view of random_views before it gives up on a region


@dataclass
class View:
    """One rendered view and where it looks."""
    image: np.ndarray                  # (size, size, 3) uint8
    footprint_km: float | None         # ground width along the centre row; None if the centre is space
    centre: tuple[float, float] | None   # (lat, lon) of the ground at the image centre
    earth_share: float                 # share of pixels showing the ground (not space, not the frame)
    earth_box: tuple[int, int, int, int] | None   # (left, top, right, bottom) of those pixels
    hidden_share: float                # share of ground pixels whose samples touch the hidden mask
    ground: np.ndarray = field(repr=False)   # (size, size, 2) float32 lat, lon; NaN in space
    # The settings it was rendered with: nadir point, lens, tilt, altitude, aerosol, window frame.
    month: int
    lat: float
    lon: float
    focal_mm: float
    tilt_deg: float
    azimuth_deg: float
    altitude_km: float
    haze: float
    frame: bool


# ------------------------------------------------------------------ the maps, read once

def _folder(maps_folder) -> str:
    return str(Path(maps_folder or worldmap.MAPS).resolve())


def _level_sizes() -> list[tuple[int, int]]:
    return [(round(WIDTH / 2 ** k), round(HEIGHT / 2 ** k)) for k in range(LEVELS)]


@functools.lru_cache(maxsize=12)
def month_levels(month: int, folder: str) -> tuple[np.ndarray, ...]:
    """The month's map and its box-reduced copies, (h, w, 3) uint8 each (12 months: about 700 MB)."""
    from ..io.images import read_image

    if not 1 <= month <= 12:
        raise ValueError(f"month must be 1..12, not {month}")
    image = read_image(map_path(month, Path(folder))).image
    if image.size != (WIDTH, HEIGHT):
        raise ValueError(f"{map_path(month, Path(folder))} is {image.size[0]}x{image.size[1]}, not {WIDTH}x{HEIGHT}")
    return tuple(np.asarray(image if k == 0 else image.resize(s, Image.BOX)) for k, s in enumerate(_level_sizes()))


@functools.lru_cache(maxsize=2)
def hidden_levels(folder: str) -> tuple[np.ndarray, ...]:
    """The hidden mask at each mipmap level, (h, w) bool: True where any hidden pixel lies under it."""
    from ..io.images import read_codes

    path = Path(folder) / "hidden_mask.png"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: views are only rendered beside the hidden mask they must avoid")
    mask = read_codes(path) > 0
    if mask.shape != (HEIGHT, WIDTH):
        raise ValueError(f"{path} is {mask.shape[1]}x{mask.shape[0]}, not {WIDTH}x{HEIGHT}")
    area = Image.fromarray(mask.astype(np.float32), "F")
    # A box average of 0s is exactly 0, so > 0 keeps every reduced pixel that covers a hidden one.
    return tuple(mask if k == 0 else np.asarray(area.resize(s, Image.BOX)) > 0 for k, s in enumerate(_level_sizes()))


@functools.lru_cache(maxsize=2)
def _land_pixels(folder: str) -> tuple[np.ndarray, np.ndarray]:
    """Flat indices of the map's land pixels outside the hidden mask (not water, not snow and ice),
    and their chance of being drawn: their area, so nadir points are uniform over the land."""
    landcover = worldmap.load_label_maps()[0]
    allowed = ~np.isin(landcover, (0, 15)) & ~hidden_levels(folder)[0]
    return _weighted(allowed)


def _weighted(allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    index = np.flatnonzero(allowed)
    if index.size == 0:
        raise ValueError("no pixel to draw a nadir point from (the mask allows none outside the hidden boxes)")
    area = np.cos(np.radians(worldmap.lat_of_rows()))[index // WIDTH]
    return index, area / area.sum()


# ------------------------------------------------------------------ geometry

def _basis(lat: float, lon: float, tilt_deg: float, azimuth_deg: float):
    """Unit vectors (Earth-centred): up at the nadir point, and the camera's forward, up and right."""
    la, lo, t, az = np.radians([lat, lon, tilt_deg, azimuth_deg])
    up_here = np.array([np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo), np.sin(la)])
    east = np.array([-np.sin(lo), np.cos(lo), 0.0])
    north = np.cross(up_here, east)
    toward = np.cos(az) * north + np.sin(az) * east
    forward = -np.cos(t) * up_here + np.sin(t) * toward
    image_up = np.sin(t) * up_here + np.cos(t) * toward      # the far side, toward the horizon
    return up_here, forward, image_up, np.cross(forward, image_up)


def _cast(origin: np.ndarray, rays: np.ndarray) -> dict:
    """Rays (n, 3), unit, from ``origin`` against the sphere: where they hit and how much air they cross."""
    b = rays @ origin                                            # (n,)
    c = origin @ origin - R_EARTH ** 2
    disc = b * b - c
    hit = (disc >= 0) & (b < 0)
    t = np.where(hit, -b - np.sqrt(np.maximum(disc, 0)), np.nan)
    point = origin + t[:, None] * rays                           # (n, 3), NaN where the ray misses
    normal = point / R_EARTH
    cos_z = np.clip(-(normal * rays).sum(1), 0, 1)
    r = R_EARTH / SCALE_HEIGHT_KM
    # Air mass of a spherical homogeneous atmosphere (Schoenberg): 1 straight down, ~40 grazing.
    air = np.sqrt((r * cos_z) ** 2 + 2 * r + 1) - r * cos_z
    # A miss crosses the atmosphere along a chord whose lowest point is at the tangent altitude.
    tangent = np.where(b < 0, np.sqrt(np.maximum(origin @ origin - b * b, 0)) - R_EARTH, np.inf)
    chord = np.sqrt(2 * np.pi * r) * np.exp(-np.maximum(tangent, 0) / SCALE_HEIGHT_KM)
    lat = np.degrees(np.arcsin(np.clip(normal[:, 2], -1, 1)))
    lon = np.degrees(np.arctan2(normal[:, 1], normal[:, 0]))
    return {"hit": hit, "t": t, "point": point, "cos_z": cos_z, "air": np.where(hit, air, 0.0),
            "chord": np.where(hit, 0.0, chord), "lat": lat, "lon": lon}


def _pixel_rays(size: int, focal_mm: float, forward, image_up, right) -> np.ndarray:
    """(size * size, 3) unit rays through the pixel centres, row by row from the top."""
    s = ((np.arange(size) + 0.5) / size - 0.5) * SENSOR_MM / focal_mm        # tangent of the angle off axis
    rays = forward + s[None, :, None] * right - s[:, None, None] * image_up  # (size, size, 3)
    return (rays / np.linalg.norm(rays, axis=-1, keepdims=True)).reshape(-1, 3)


def _footprint(origin, focal_mm, forward, right, steps: int = 64) -> tuple[float | None, tuple | None]:
    """Ground length (km) of the centre row from edge to edge (the arc its rays trace on the
    sphere, over the part that meets the Earth), and the centre's (lat, lon); None if it is space."""
    s = np.linspace(-0.5, 0.5, steps + 1) * SENSOR_MM / focal_mm
    rays = forward + s[:, None] * right
    cast = _cast(origin, rays / np.linalg.norm(rays, axis=1, keepdims=True))
    mid = steps // 2
    if not cast["hit"][mid]:
        return None, None
    normal = cast["point"] / R_EARTH
    both = cast["hit"][1:] & cast["hit"][:-1]
    chord = np.linalg.norm(normal[1:] - normal[:-1], axis=1)
    arc = 2 * R_EARTH * np.arcsin(np.clip(chord / 2, 0, 1))
    return float(arc[both].sum()), (float(cast["lat"][mid]), float(cast["lon"][mid]))


# ------------------------------------------------------------------ sampling the map

def _taps(shape, lat: np.ndarray, lon: np.ndarray):
    """Flat indices of the four map pixels around each point and their bilinear weights (n, 4)."""
    h, w = shape[:2]
    x = (lon + 180) * w / 360 - 0.5
    y = (90 - lat) * h / 180 - 0.5
    x0, y0 = np.floor(x), np.floor(y)
    fx, fy = x - x0, y - y0
    x0 = x0.astype(np.int64) % w
    x1 = (x0 + 1) % w                                 # longitude wraps at the date line
    y1 = np.clip(y0 + 1, 0, h - 1).astype(np.int64)   # latitude stops at the poles
    y0 = np.clip(y0, 0, h - 1).astype(np.int64)
    index = np.stack([y0 * w + x0, y0 * w + x1, y1 * w + x0, y1 * w + x1], 1)
    weight = np.stack([(1 - fx) * (1 - fy), fx * (1 - fy), (1 - fx) * fy, fx * fy], 1)
    return index, weight


def _sample(levels, hidden, lat, lon, level):
    """Linear-light colours (n, 3) float32 at fractional mipmap ``level`` (blending the two levels
    around it), and whether any tap that contributes touches the hidden mask (n,)."""
    low = np.floor(level).astype(int)
    frac = (level - low).astype(np.float32)
    colour = np.zeros((len(lat), 3), np.float32)
    touches = np.zeros(len(lat), bool)
    for k in range(LEVELS):
        flat, mask = levels[k].reshape(-1, 3), hidden[k].reshape(-1)
        for sel, share in ((low == k, 1 - frac), ((low + 1 == k) & (frac > 0), frac)):
            where = np.flatnonzero(sel)
            if where.size == 0:
                continue
            index, weight = _taps(levels[k].shape, lat[where], lon[where])
            weight = (weight * share[where, None]).astype(np.float32)                # (m, 4)
            # Light adds in linear units, not in the map's gamma-encoded ones.
            rgb = TO_LINEAR[np.take(flat, index.ravel(), axis=0)].reshape(-1, 4, 3)   # (m, 4, 3)
            colour[where] += np.einsum("mk,mkc->mc", weight, rgb)
            touches[where] |= np.take(mask, index).any(1)
    return colour, touches


# ------------------------------------------------------------------ the view

def render_view(month: int, lat: float, lon: float, focal_mm: float, tilt_deg: float = 0.0,
                azimuth_deg: float = 0.0, size: int = 256, altitude_km: float = ALTITUDE,
                frame: bool = False, rng=None, maps_folder=None, haze: float = HAZE, camera=None) -> View:
    """What a ``focal_mm`` lens at ``altitude_km`` above (``lat``, ``lon``) sees in ``month``, tilted
    ``tilt_deg`` off nadir toward ``azimuth_deg`` (clockwise from north; the image's top is that way).

    ``haze``: the aerosol's optical depth at 550 nm. ``camera``: None (the light reaching the lens),
    a kind of ``biomeseason.model.camera`` ("astronaut"), a ``Camera`` or a ``CameraRanges``.
    ``frame``: part of a window frame in front of the lens. ``rng``: a seed or numpy Generator for
    the camera's and the frame's draws (the geometry has none)."""
    settings = dict(month=int(month), lat=float(lat), lon=float(lon), focal_mm=float(focal_mm),
                    tilt_deg=float(tilt_deg), azimuth_deg=float(azimuth_deg), altitude_km=float(altitude_km),
                    haze=float(haze))
    return _finish(_scene(settings, size, _folder(maps_folder)), frame, camera, np.random.default_rng(rng))


def _scene(settings: dict, size: int, folder: str) -> dict:
    """The light reaching the lens: (size, size, 3) float 0..255, and what each pixel sees."""
    focal_mm, tilt_deg, altitude_km = settings["focal_mm"], settings["tilt_deg"], settings["altitude_km"]
    if not FOCAL_MM[0] / 2 <= focal_mm <= FOCAL_MM[1] * 2:
        raise ValueError(f"focal_mm must lie near {FOCAL_MM[0]:g}..{FOCAL_MM[1]:g}, not {focal_mm}")
    if not 0 <= tilt_deg < 89 or not 100 <= altitude_km <= 2000 or size < 2:
        raise ValueError(f"tilt_deg must lie in 0..89, altitude_km in 100..2000 and size >= 2, not "
                         f"{tilt_deg}, {altitude_km}, {size}")
    levels, hidden = month_levels(settings["month"], folder), hidden_levels(folder)
    up_here, forward, image_up, right = _basis(settings["lat"], settings["lon"], tilt_deg, settings["azimuth_deg"])
    origin = (R_EARTH + altitude_km) * up_here
    cast = _cast(origin, _pixel_rays(size, focal_mm, forward, image_up, right))
    hit = cast["hit"]
    tau = RAYLEIGH + settings["haze"] * AEROSOL                            # (3,)

    # Ground: the mipmap level whose pixel is as large as this pixel's patch of ground
    # (across: distance x angle; along the view: stretched by the incidence).
    across = cast["t"][hit] * SENSOR_MM / size / focal_mm
    patch = across / np.sqrt(np.maximum(cast["cos_z"][hit], 1e-3))
    level = np.clip(np.log2(patch / MAP_KM), 0, LEVELS - 1)
    ground, touches = _sample(levels, hidden, cast["lat"][hit], cast["lon"][hit], level)
    airlight = (AIRLIGHT ** 2.2).astype(np.float32)                       # linear light from here on
    # Only the air beyond one vertical column: the maps show the ground as seen straight down.
    through = np.exp(-tau * (cast["air"][hit, None] - 1)).astype(np.float32)
    linear = np.empty((size * size, 3), np.float32)
    linear[hit] = ground * through + airlight * (1 - through)
    # Space: the glow of the air along the ray, over black.
    glow = 1 - np.exp(-tau * cast["chord"][~hit, None])
    linear[~hit] = SPACE ** 2.2 + airlight * glow
    # How much of each pixel is air or ground, seen through the atmosphere (the camera's haze and
    # clouds); the rest is black space, which only the sensor touches.
    atmosphere = np.ones(size * size)
    atmosphere[~hit] = glow[:, 2]
    latlon = np.full((size * size, 2), np.nan, np.float32)
    latlon[hit] = np.stack([cast["lat"][hit], cast["lon"][hit]], 1)
    footprint, centre = _footprint(origin, focal_mm, forward, right)
    return {"settings": settings, "image": (np.clip(linear, 0, 1) ** (1 / 2.2) * 255).reshape(size, size, 3),
            "hit": hit.reshape(size, size), "atmosphere": atmosphere.reshape(size, size),
            "ground": latlon.reshape(size, size, 2), "hidden_share": float(touches.mean()) if touches.size else 0.0,
            "footprint": footprint, "centre": centre}


def _finish(scene: dict, frame: bool, camera, rng) -> View:
    """The scene through the camera and behind the window frame, as a View."""
    image, size = scene["image"], scene["image"].shape[0]
    if camera is not None:
        image = _through_camera(image, camera, rng, scene["atmosphere"])
    occluded = np.zeros((size, size))
    if frame:
        occluded = _window_frame(size, rng)
        image = image * (1 - occluded[..., None]) + _frame_colour(size, rng) * occluded[..., None]
    visible = scene["hit"] & (occluded < 0.5)
    rows, cols = np.flatnonzero(visible.any(1)), np.flatnonzero(visible.any(0))
    box = (int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1) if rows.size else None
    return View(image=np.clip(np.round(image), 0, 255).astype(np.uint8), footprint_km=scene["footprint"],
                centre=scene["centre"], earth_share=float(visible.mean()), earth_box=box,
                hidden_share=scene["hidden_share"], ground=scene["ground"], frame=bool(frame), **scene["settings"])


def _through_camera(image: np.ndarray, camera, rng, atmosphere: np.ndarray) -> np.ndarray:
    """``image`` (h, w, 3) float 0..255 through the simulated camera, where there is air to see through."""
    import torch

    from ..model.camera import Camera, CameraRanges

    if isinstance(camera, str):
        camera = Camera().only(camera)
    elif isinstance(camera, CameraRanges):
        camera = Camera(mix={"given": 1.0}, kinds={"given": camera})
    # The air mass already grows the haze toward the horizon, pixel by pixel; the camera's
    # top-to-bottom gradient would add it twice.
    camera = replace(camera, kinds={k: replace(r, oblique_p=0.0) for k, r in camera.kinds.items()})
    generator = torch.Generator().manual_seed(int(rng.integers(2 ** 62)))
    x = torch.from_numpy(np.clip(np.round(image), 0, 255).astype(np.uint8)).permute(2, 0, 1).contiguous()
    seen = camera(x, generator=generator).permute(1, 2, 0).numpy().astype(np.float64)
    # Until the camera takes a mask of where there is air, space keeps its black (no cloud over it).
    return atmosphere[..., None] * seen + (1 - atmosphere[..., None]) * image


def _window_frame(size: int, rng) -> np.ndarray:
    """(size, size) share of each pixel hidden by a window frame: outside a rounded opening
    (a superellipse) larger than the view and off its centre, with a soft edge (out of focus)."""
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    for _ in range(20):
        half = rng.uniform(0.5, 0.75, 2) * size                 # the opening's half width and height
        centre = size / 2 + rng.uniform(-0.25, 0.25, 2) * size
        power = rng.uniform(3, 6)                               # 2 is an ellipse; larger is squarer
        soft = rng.uniform(1.5, 5.0) * size / 256
        reach = ((np.abs(xx - centre[0]) / half[0]) ** power
                 + (np.abs(yy - centre[1]) / half[1]) ** power) ** (1 / power)    # 1 on the opening's edge
        frame = np.clip(0.5 + (reach - 1) * half.min() / (2 * soft), 0, 1)
        if 0.03 <= frame.mean() <= 0.4:                         # some corners or edges, never most of the view
            break
    return frame


def _frame_colour(size: int, rng) -> np.ndarray:
    """(size, size, 3): dark metal, lit a little more on one side by the cabin."""
    angle = rng.uniform(0, 2 * np.pi)
    yy, xx = (np.mgrid[0:size, 0:size] + 0.5) / size - 0.5
    light = 0.8 + 0.6 * np.clip(0.5 + np.cos(angle) * xx + np.sin(angle) * yy, 0, 1)
    return FRAME_COLOUR * light[..., None]


# ------------------------------------------------------------------ many views

def random_views(n: int, months=range(1, 13), where=None, rng=None, size: int = 256, frame_p: float = 0.0,
                 camera=None, focal_mm=FOCAL_MM, tilt_deg=TILT_DEG, altitude_km=ALTITUDE_KM, haze=HAZE_RANGE,
                 maps_folder=None) -> list[View]:
    """``n`` views of random months, places and cameras, none touching the hidden mask.

    Lenses are log-uniform in ``focal_mm``, tilts uniform in ``tilt_deg`` toward any azimuth, the
    altitude and the aerosol ``haze`` uniform in their ranges. Nadir points: uniform over the land
    (not water, snow or ice) outside the hidden boxes by default; ``where`` a (2700, 5400) bool mask
    of the map grid to draw them from instead (hidden pixels are always left out), or a function
    ``rng -> (lat, lon)``. A view whose ground touches a hidden pixel is drawn again, whole (a view
    of the hidden boxes' surroundings is then kept only when it stays clear of them)."""
    rng = np.random.default_rng(rng)
    folder = _folder(maps_folder)
    months = list(months)
    if callable(where):
        draw_nadir = where
    else:
        if where is None:
            index, chance = _land_pixels(folder)
        else:
            where = np.asarray(where, bool)
            if where.shape != (HEIGHT, WIDTH):
                raise ValueError(f"where must be a ({HEIGHT}, {WIDTH}) mask of the map grid, not {where.shape}")
            index, chance = _weighted(where & ~hidden_levels(folder)[0])

        cumulative = np.cumsum(chance)

        def draw_nadir(rng):
            pick = min(int(np.searchsorted(cumulative, rng.random() * cumulative[-1], side="right")), index.size - 1)
            row, col = divmod(int(index[pick]), WIDTH)
            y, x = row + rng.random(), col + rng.random()         # anywhere in the pixel
            return 90 - y * 180 / HEIGHT, x * 360 / WIDTH - 180

    views = []
    for _ in range(n):
        for _ in range(MAX_TRIES):
            lat, lon = draw_nadir(rng)
            settings = dict(month=int(rng.choice(months)), lat=float(lat), lon=float(lon),
                            focal_mm=float(np.exp(rng.uniform(*np.log(focal_mm)))),
                            tilt_deg=float(rng.uniform(*tilt_deg)), azimuth_deg=float(rng.uniform(0, 360)),
                            altitude_km=float(rng.uniform(*altitude_km)), haze=float(rng.uniform(*haze)))
            scene = _scene(settings, size, folder)
            if scene["hidden_share"] == 0:
                break
        else:
            raise RuntimeError(f"no view clear of the hidden mask in {MAX_TRIES} draws: the nadir points "
                               "allowed lie too close to the hidden boxes for these lenses")
        views.append(_finish(scene, bool(rng.random() < frame_p), camera, rng))
    return views


# ------------------------------------------------------------------ views to train on

MIN_VIEW_LAND = 0.5     # a training view's ground: at least this share land (not water, not ice)
MIN_VIEW_EARTH = 0.3    # ... and at least this share of the frame
# Lenses of the training views: 40 to 500 km of ground, as wide as the astronaut photos of whole landscapes
# (70-300 m a pixel over 4000 px); a longer lens sees less than four map pixels, one flat colour.
TRAIN_FOCAL_MM = (50.0, 300.0)


@dataclass
class LabelledView:
    """A rendered view cropped to its ground, with the label the world map's rule gives that ground."""
    view: View
    image: np.ndarray       # the view cropped to ``view.earth_box`` (what the scene finder keeps)
    biome: str              # '' when no biome covers ``purity`` of its land
    purity: float           # share of the ground's land pixels whose label is the view's biome


def labelled_views(n: int, allowed: np.ndarray, codes: np.ndarray, rng=None, size: int = 128,
                   frame_p: float = 0.3, purity: float = 0.6, focal_mm=TRAIN_FOCAL_MM, batch: int = 64,
                   maps_folder=None, progress: bool = True) -> list[LabelledView]:
    """``n`` views whose every ground pixel lies where ``allowed`` (a (HEIGHT, WIDTH) bool mask of the map
    grid) is True, at least ``MIN_VIEW_LAND`` land, labelled as the Earth tiles are (the most common of the
    seven biomes of ``codes`` on the land in view, if it covers ``purity`` of it; else no biome).

    Nadir points are drawn over the allowed land; a view that sees beyond the mask (a wide lens reaching
    into a validation block) is drawn again, so the training views never show a held-out place."""
    from tqdm.auto import tqdm

    allowed = np.asarray(allowed, bool)
    if allowed.shape != (HEIGHT, WIDTH) or codes.shape != (HEIGHT, WIDTH):
        raise ValueError(f"allowed and codes must be ({HEIGHT}, {WIDTH}) grids, not {allowed.shape}, {codes.shape}")
    land = (codes != worldmap.WATER) & (codes != worldmap.ICE)
    nadirs = allowed & land
    rng = np.random.default_rng(rng)
    kept: list[LabelledView] = []
    drawn = 0
    with tqdm(total=n, desc="astronaut views", unit="view", disable=not progress) as bar:
        while len(kept) < n:
            if drawn > max(1000, 100 * n):
                raise RuntimeError(f"only {len(kept)} of {n} views stayed inside the allowed mask in {drawn} draws")
            for view in random_views(batch, where=nadirs, rng=rng, size=size, frame_p=frame_p,
                                     focal_mm=focal_mm, maps_folder=maps_folder):
                drawn += 1
                labelled = _label_view(view, allowed, codes, land, purity)
                if labelled is not None and len(kept) < n:
                    kept.append(labelled)
                    bar.update()
    return kept


def _label_view(view: View, allowed, codes, land, purity: float) -> LabelledView | None:
    lat, lon = view.ground[..., 0], view.ground[..., 1]
    seen = ~np.isnan(lat)
    if view.earth_box is None or view.earth_share < MIN_VIEW_EARTH:
        return None
    rows = np.clip(((90 - lat[seen]) * HEIGHT / 180).astype(int), 0, HEIGHT - 1)
    cols = ((lon[seen] + 180) * WIDTH / 360).astype(int) % WIDTH
    if not allowed[rows, cols].all():
        return None
    on_land = land[rows, cols]
    if on_land.mean() < MIN_VIEW_LAND:
        return None
    biome, share = majority_biome(codes[rows, cols][on_land], purity)
    left, top, right, bottom = view.earth_box
    return LabelledView(view, view.image[top:bottom, left:right], biome, share)
