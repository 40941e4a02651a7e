"""scene.find_scene on made-up frames: an Earth texture pasted into margins, caption bands,
window frames and black space; the box found must overlap the drawn one (IoU >= 0.9)."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

from biomeseason.predict.scene import find_scene

W, H = 480, 360


def earth(w: int, h: int, seed: int = 0, dark: bool = False) -> np.ndarray:
    """(h, w, 3) uint8: forest, field and water in smooth patches, shaded, with grain."""
    rng = np.random.default_rng(seed)
    cover = np.array([[20, 42, 22], [30, 60, 30], [25, 38, 50]] if dark else
                     [[40, 90, 40], [170, 150, 90], [50, 80, 120]], np.float32)

    def smooth(cells):
        small = rng.random((cells, cells), dtype=np.float32)
        return np.asarray(Image.fromarray(small, mode="F").resize((w, h), Image.Resampling.BICUBIC))

    weights = np.exp(8 * np.stack([smooth(5) for _ in cover], -1))
    image = (weights / weights.sum(-1, keepdims=True)) @ cover
    image *= (0.7 + 0.6 * smooth(30))[..., None]
    image += rng.normal(0, 6, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def canvas(colour, seed: int = 1, noise: float = 2.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = np.broadcast_to(np.asarray(colour, np.float32), (H, W, 3))
    return np.clip(base + rng.normal(0, noise, (H, W, 3)), 0, 255).astype(np.uint8)


def paste(frame: np.ndarray, box, mask: np.ndarray | None = None, seed: int = 0) -> np.ndarray:
    left, top, right, bottom = box
    patch = earth(right - left, bottom - top, seed)
    region = frame[top:bottom, left:right]
    region[...] = patch if mask is None else np.where(mask[..., None], patch, region)
    return frame


def caption(frame: np.ndarray, top: int, colour=(245, 245, 245), ink=(10, 10, 10)) -> np.ndarray:
    image = Image.fromarray(frame)
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, top, W, H), fill=colour)
    draw.text((12, top + 8), "ISS042-E-123456  2015-03-14  Lake Manicouagan, Quebec", fill=ink)
    draw.text((12, top + 24), "Nikon D4, 400 mm", fill=ink)
    return np.asarray(image).copy()


def iou(a, b) -> float:
    inter = max(0, min(a[2], b[2]) - max(a[0], b[0])) * max(0, min(a[3], b[3]) - max(a[1], b[1]))
    area = lambda r: (r[2] - r[0]) * (r[3] - r[1])  # noqa: E731
    return inter / (area(a) + area(b) - inter)


def found(frame: np.ndarray):
    return find_scene(Image.fromarray(frame))


def test_black_margins():
    drawn = (70, 40, 420, 310)
    box, notes = found(paste(canvas((3, 3, 3)), drawn))
    assert iou(box, drawn) >= 0.9 and notes


def test_white_caption_band_with_text():
    frame = caption(paste(canvas((0, 0, 0)), (0, 0, W, H)), top=300)
    box, notes = found(frame)
    assert iou(box, (0, 0, W, 300)) >= 0.9
    assert any("bottom" in n for n in notes)


def test_dark_caption_band_with_light_text_and_margins():
    drawn = (30, 0, 450, 290)
    frame = caption(paste(canvas((2, 2, 2)), drawn), top=290, colour=(15, 15, 15), ink=(230, 230, 230))
    box, _ = found(frame)
    assert iou(box, drawn) >= 0.9


def test_inside_a_dark_window_frame():
    drawn = (60, 45, 420, 320)
    mask = Image.new("L", (drawn[2] - drawn[0], drawn[3] - drawn[1]))
    ImageDraw.Draw(mask).rounded_rectangle((0, 0, *mask.size), radius=40, fill=1)
    frame = paste(canvas((38, 36, 42), noise=3), drawn, np.asarray(mask, bool))
    box, notes = found(frame)
    assert iou(box, drawn) >= 0.9 and notes


def test_black_sky_above_a_curved_limb():
    rng = np.random.default_rng(3)
    frame = canvas((4, 4, 8))
    stars = rng.integers(0, [W, 60], (40, 2))
    frame[stars[:, 1], stars[:, 0]] = 255
    x = np.arange(W)
    limb = (70 + 18 * ((x - W / 2) / (W / 2)) ** 2).astype(int)          # highest in the middle
    below = np.arange(H)[:, None] >= limb[None, :]
    frame = np.where(below[..., None], earth(W, H, seed=4), frame)
    frame[limb - 1, x] = (120, 170, 255)                                 # the thin blue airglow
    box, notes = found(frame)
    assert iou(box, (0, 70, W, H)) >= 0.9 and notes
    assert box[1] >= 70                                                   # no space in the crop


@pytest.mark.parametrize("dark", [False, True])
def test_a_full_frame_image_is_kept_whole(dark):
    frame = earth(W, H, seed=5, dark=dark)
    assert found(frame) == ((0, 0, W, H), [])


def test_cloud_along_an_edge_is_not_a_caption():
    frame = earth(W, H, seed=6)
    rng = np.random.default_rng(7)
    frame[:50] = np.clip(235 + rng.normal(0, 5, (50, W, 3)), 0, 255).astype(np.uint8)   # a cloud bank
    assert found(frame) == ((0, 0, W, H), [])


def test_boxes_are_in_the_callers_pixels_at_any_size():
    drawn = (70, 40, 420, 310)
    frame = paste(canvas((3, 3, 3)), drawn)
    big = Image.fromarray(frame).resize((W * 4, H * 4), Image.Resampling.NEAREST)
    box, _ = find_scene(big)
    assert iou(box, tuple(4 * v for v in drawn)) >= 0.9


@pytest.mark.parametrize("resuming", [False, True])
def test_prepare_gives_the_files_sha256_whether_hashed_beside_the_decode_or_before_it(tmp_path, resuming):
    import hashlib

    from biomeseason.predict.scene import prepare

    good, broken = tmp_path / "earth.jpg", tmp_path / "broken.jpg"
    Image.fromarray(earth(W, H, seed=8)).save(good, quality=90)
    broken.write_bytes(good.read_bytes()[:200])
    done = {("elsewhere.jpg", "0" * 64)} if resuming else set()   # a resume skips by (name, hash)
    for path in (good, broken):
        ready = prepare(path, 64, done=done)
        assert ready.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
        assert not ready.done and (ready.error == "") == (path is good)
    skipped = prepare(good, 64, done={(str(good), hashlib.sha256(good.read_bytes()).hexdigest())})
    assert skipped.done and skipped.image is None
