"""Astronaut views rendered from the Blue Marble maps: colours, footprints, the limb, the hidden mask, seeds."""
import math

import numpy as np
import pytest

from biomeseason.earth import astronaut
from biomeseason.earth.worldmap import HEIGHT, MAPS, PER_DEGREE, WIDTH, map_path
from biomeseason.io.images import read_codes, read_image


def pixel_centre(row: int, col: int) -> tuple[float, float]:
    return 90 - (row + 0.5) / PER_DEGREE, (col + 0.5) / PER_DEGREE - 180


@pytest.mark.parametrize("month, row, col", [(1, 1000, 2900), (7, 1390, 1700)])   # the Sahara, the Amazon
def test_a_long_lens_straight_down_shows_the_map_pixel_under_it(month, row, col):
    world = np.asarray(read_image(map_path(month, MAPS)).image)
    view = astronaut.render_view(month, *pixel_centre(row, col), focal_mm=1600, size=32)
    # 6 km of ground, within one map pixel of 7.4 km: the view is that pixel, gently blended with its neighbours.
    centre = view.image[15:17, 15:17].reshape(-1, 3).astype(int)
    assert np.abs(centre - world[row, col].astype(int)).max() <= 2
    assert view.hidden_share == 0 and view.earth_share == 1 and view.earth_box == (0, 0, 32, 32)
    assert view.centre == pytest.approx(pixel_centre(row, col), abs=1e-6)


def test_the_footprint_is_the_lens_geometry_and_grows_with_a_shorter_lens_and_with_tilt():
    place = dict(month=7, lat=30.0, lon=31.2, size=16)
    lenses = [astronaut.render_view(focal_mm=f, **place).footprint_km for f in (1600, 400, 100, 50)]
    # Straight down, 24 mm of sensor over 400 km: 400 * 24 / f km on a flat Earth; the sphere adds a little.
    assert lenses[0] == pytest.approx(400 * 24 / 1600, rel=1e-3)
    assert 400 * 24 / 50 <= lenses[3] <= 1.02 * 400 * 24 / 50
    assert lenses == sorted(lenses)
    tilts = [astronaut.render_view(focal_mm=200, tilt_deg=t, **place).footprint_km for t in (0, 20, 40, 60)]
    assert tilts == sorted(tilts) and tilts[-1] > 1.8 * tilts[0]
    # Tilted toward the south, the centre of the view lies south of the nadir point.
    south = astronaut.render_view(focal_mm=200, tilt_deg=30, azimuth_deg=180, **place)
    assert south.centre[0] < 30.0 - 1 and south.centre[1] == pytest.approx(31.2, abs=1e-6)


def test_a_wide_lens_tilted_60_degrees_shows_space_and_the_limb_above_the_earth():
    view = astronaut.render_view(7, 30.0, 31.2, focal_mm=50, tilt_deg=60, azimuth_deg=180, size=64)
    space = np.isnan(view.ground[..., 0])
    assert space[0].all() and not space[-1].any()                 # space on top, the Earth below
    assert view.image[0].max() < 20                               # black space at the top ...
    assert 0.5 < view.earth_share < 0.98 and view.earth_box[1] > 0 and view.earth_box[3] == 64
    glow = view.image[space].astype(int)                          # ... and a blue glow over the limb
    assert glow[:, 2].max() > 100 and (glow[:, 2] >= glow[:, 0]).all()
    # The horizon lies 70 degrees off nadir at 400 km: a 27-degree view centred at 60 reaches past it.
    horizon = math.degrees(math.asin(astronaut.R_EARTH / (astronaut.R_EARTH + 400)))
    assert 60 + math.degrees(math.atan(12 / 50)) > horizon > 60


def hidden_box():
    """Pixel box (top, left, bottom, right) of the hidden box over Iran (29-35 N, 53-61 E)."""
    mask = read_codes(MAPS / "hidden_mask.png") > 0
    rows, cols = (90 - 32) * PER_DEGREE, (57 + 180) * PER_DEGREE
    assert mask[rows, cols]
    column, row = mask[rows], mask[:, cols]
    left, right = cols - np.argmin(column[cols::-1]) + 1, cols + np.argmin(column[cols:])
    top, bottom = rows - np.argmin(row[rows::-1]) + 1, rows + np.argmin(row[rows:])
    return mask, (top, left, bottom, right)


def test_random_views_never_render_a_hidden_pixel():
    mask, (top, left, bottom, right) = hidden_box()
    # Straight above the box the view is all hidden; views from around it must be redrawn or clear.
    inside = astronaut.render_view(7, *pixel_centre((top + bottom) // 2, (left + right) // 2), focal_mm=50, size=16)
    assert inside.hidden_share == 1
    near = np.zeros((HEIGHT, WIDTH), bool)
    near[top - 60:bottom + 60, left - 60:right + 60] = True       # nadir points within 4 degrees of the box
    views = astronaut.random_views(4, months=[7], where=near, rng=0, size=48, focal_mm=(50, 100))
    for view in views:
        assert view.hidden_share == 0
        lat, lon = view.ground[..., 0], view.ground[..., 1]
        seen = ~np.isnan(lat)
        y = (90 - lat[seen]) * PER_DEGREE - 0.5
        x = (lon[seen] + 180) * PER_DEGREE - 0.5
        for dy in (0, 1):                                          # the bilinear taps of every ground pixel
            for dx in (0, 1):
                rows = np.clip(np.floor(y).astype(int) + dy, 0, HEIGHT - 1)
                assert not mask[rows, (np.floor(x).astype(int) + dx) % WIDTH].any()


def test_random_views_are_the_same_for_a_seed_and_differ_for_another():
    def draw(seed):
        return astronaut.random_views(2, months=[7], rng=seed, size=32, frame_p=0.5, camera="astronaut")

    a, b, c = draw(3), draw(3), draw(4)
    for one, two in zip(a, b):
        assert np.array_equal(one.image, two.image) and one.focal_mm == two.focal_mm and one.frame == two.frame
    assert any(not np.array_equal(one.image, other.image) for one, other in zip(a, c))
    for view in a + c:
        assert view.image.shape == (32, 32, 3) and view.image.dtype == np.uint8
        assert 50 <= view.focal_mm <= 1600 and 0 <= view.tilt_deg <= 60 and 380 <= view.altitude_km <= 420


def test_a_window_frame_hides_some_corners_and_leaves_them_out_of_the_earth_part():
    clear = astronaut.render_view(7, 30.0, 31.2, focal_mm=100, size=64)
    framed = astronaut.render_view(7, 30.0, 31.2, focal_mm=100, size=64, frame=True, rng=1)
    dark = framed.image.max(-1) < 40
    assert 0.6 <= framed.earth_share < 1 and clear.earth_share == 1
    assert dark[[0, 0, -1, -1], [0, -1, 0, -1]].any()               # at least one corner hidden
    assert np.array_equal(framed.image[32, 32], clear.image[32, 32])   # the middle as it was


def test_training_views_stay_inside_the_allowed_ground_and_carry_its_majority_biome():
    from biomeseason.earth.worldmap import BIOMES, ICE, WATER, label_map

    codes = label_map()
    allowed = np.zeros((HEIGHT, WIDTH), bool)
    allowed[900:1200, 2600:3300] = True                       # 20 by 47 degrees of North Africa
    views = astronaut.labelled_views(4, allowed, codes, rng=3, size=48, frame_p=0.5, progress=False)
    assert len(views) == 4
    for v in views:
        lat, lon = v.view.ground[..., 0], v.view.ground[..., 1]
        seen = ~np.isnan(lat)
        rows = ((90 - lat[seen]) * PER_DEGREE).astype(int)
        cols = ((lon[seen] + 180) * PER_DEGREE).astype(int)
        assert allowed[rows, cols].all()                       # not one pixel of ground beyond the mask
        ground = codes[rows, cols]
        land = ground[(ground != WATER) & (ground != ICE)]
        counts = np.bincount(land, minlength=256)[:len(BIOMES)]
        assert v.purity == pytest.approx(counts.max() / land.size, abs=1e-3)
        assert v.biome == (BIOMES[int(counts.argmax())] if v.purity >= 0.6 else "")
        left, top, right, bottom = v.view.earth_box
        assert v.image.shape == (bottom - top, right - left, 3)
    with pytest.raises(ValueError, match="grids"):
        astronaut.labelled_views(1, allowed[:10], codes, progress=False)
