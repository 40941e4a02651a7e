"""The one image reader: every kind of file real archives bring, and a reason for every failure."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageCms

from biomeseason.io.images import ImageError, read_image


def _jpeg(size=(400, 300), colour=(90, 140, 60)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, "JPEG", quality=95)
    return buf.getvalue()


def _save(tmp_path, name, im, **options):
    path = tmp_path / name
    im.save(path, **options)
    return path


@pytest.mark.parametrize("data, kind", [
    (b"", "empty file"),
    (b"this is text, not a picture\n" * 20, "not an image"),
])
def test_bad_bytes_give_a_reason(tmp_path, data, kind):
    path = tmp_path / "x.jpg"
    path.write_bytes(data)
    with pytest.raises(ImageError) as e:
        read_image(path)
    assert e.value.kind == kind
    assert str(path) in str(e.value)


def test_truncated_jpeg_is_refused(tmp_path):
    data = _jpeg((640, 480))
    noisy = Image.fromarray(np.random.default_rng(0).integers(0, 255, (480, 640, 3), np.uint8))
    buf = io.BytesIO()
    noisy.save(buf, "JPEG", quality=90)
    data = buf.getvalue()
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError) as e:
        read_image(path)
    assert e.value.kind in ("truncated", "corrupt")


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(ImageError, match="no such file"):
        read_image(tmp_path / "nope.jpg")
    with pytest.raises(ImageError, match="folder"):
        read_image(tmp_path)


def test_pixel_limit_refuses_from_the_header_and_restores_pils_limit(tmp_path):
    before = Image.MAX_IMAGE_PIXELS
    path = _save(tmp_path, "big.png", Image.new("L", (3000, 3000)))
    with pytest.raises(ImageError) as e:
        read_image(path, max_pixels=1_000_000)
    assert e.value.kind == "too large"
    assert "9,000,000" in e.value.reason
    assert Image.MAX_IMAGE_PIXELS == before
    assert read_image(path).image.size == (3000, 3000)


def test_jpeg_draft_decodes_small_but_reports_the_original_size():
    record = read_image(_jpeg((4000, 3000)), min_size=96)
    assert record.original_size == (4000, 3000)
    assert min(record.image.size) >= 96
    assert record.image.size[0] <= 4000 // 8 + 8


def test_exif_orientation_is_applied(tmp_path):
    im = Image.new("RGB", (60, 40), (200, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW to display
    path = _save(tmp_path, "rot.jpg", im, exif=exif)
    assert read_image(path).image.size == (40, 60)


def test_16_bit_grey_is_scaled_not_clipped(tmp_path):
    a = np.full((40, 40), 32768, np.uint16)
    path = _save(tmp_path, "g16.png", Image.fromarray(a))
    px = np.asarray(read_image(path).image)
    assert px.shape == (40, 40, 3)
    assert abs(int(px[0, 0, 0]) - 128) <= 1   # PIL's own convert gives 255 (clipped)


def test_float_tiff_in_unit_range_is_scaled_and_nan_is_black(tmp_path):
    a = np.full((40, 40), 0.5, np.float32)
    a[0, 0] = np.nan
    path = _save(tmp_path, "f.tif", Image.fromarray(a, mode="F"))
    px = np.asarray(read_image(path).image)
    assert abs(int(px[5, 5, 0]) - 128) <= 1
    assert px[0, 0].tolist() == [0, 0, 0]
    assert np.isfinite(px.astype(float)).all()


def test_float_outside_unit_range_is_stretched(tmp_path):
    a = np.linspace(-50, 3000, 40 * 40, dtype=np.float32).reshape(40, 40)
    px = np.asarray(read_image(_save(tmp_path, "f.tif", Image.fromarray(a, mode="F"))).image)
    assert px.min() == 0 and px.max() == 255


def test_cmyk_becomes_rgb(tmp_path):
    path = _save(tmp_path, "c.jpg", Image.new("CMYK", (40, 40), (0, 255, 255, 0)))
    r, g, b = read_image(path).image.getpixel((20, 20))
    assert r > 200 and g < 60 and b < 60  # pure red ink


def test_palette_with_transparency_becomes_black_or_keeps_alpha(tmp_path):
    im = Image.new("RGBA", (40, 40), (0, 0, 0, 0))
    im.paste((0, 200, 0, 255), (10, 10, 30, 30))
    path = _save(tmp_path, "t.png", im)
    rgb = read_image(path).image
    assert rgb.mode == "RGB" and rgb.getpixel((0, 0)) == (0, 0, 0) and rgb.getpixel((20, 20)) == (0, 200, 0)
    rgba = read_image(path, keep_alpha=True).image
    assert rgba.mode == "RGBA" and rgba.getpixel((0, 0))[3] == 0


def test_animated_gif_uses_the_first_frame_and_says_so(tmp_path):
    frames = [Image.new("RGB", (40, 40), (i * 80, 0, 0)) for i in range(3)]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:])
    record = read_image(path)
    assert record.frames == 3
    assert "first of 3 frames" in record.note


def _wide_gamut_profile() -> bytes:
    """A minimal ICC v2 RGB profile with Display P3 primaries (D50-adapted) and gamma 2.2."""
    import struct

    def s15(v):
        return struct.pack(">i", round(v * 65536))

    def xyz(x, y, z):
        return b"XYZ " + bytes(4) + s15(x) + s15(y) + s15(z)

    text = b"wide gamut test\x00"
    desc = (b"desc" + bytes(4) + struct.pack(">I", len(text)) + text + bytes(8) + bytes(3 + 67))
    curve = b"curv" + bytes(4) + struct.pack(">I", 1) + struct.pack(">H", round(2.2 * 256)) + bytes(2)
    tags = [(b"desc", desc), (b"wtpt", xyz(0.9642, 1.0, 0.8249)),
            (b"rXYZ", xyz(0.5151, 0.2412, -0.0011)), (b"gXYZ", xyz(0.2920, 0.6922, 0.0419)),
            (b"bXYZ", xyz(0.1571, 0.0666, 0.7841)),
            (b"rTRC", curve), (b"gTRC", curve), (b"bTRC", curve)]
    offset = 128 + 4 + 12 * len(tags)
    table, body = struct.pack(">I", len(tags)), b""
    for sig, data in tags:
        data += bytes(-len(data) % 4)
        table += sig + struct.pack(">II", offset + len(body), len(data))
        body += data
    size = offset + len(body)
    header = (struct.pack(">I", size) + bytes(4) + struct.pack(">I", 0x02100000) + b"mntrRGB XYZ "
              + bytes(12) + b"acsp" + bytes(4 * 4 + 8) + struct.pack(">I", 0)
              + s15(0.9642) + s15(1.0) + s15(0.8249) + bytes(4 + 16 + 28))
    assert len(header) == 128
    return header + table + body


def test_icc_profile_is_converted_to_srgb(tmp_path):
    stored = (200, 100, 50)
    wide = _save(tmp_path, "p3.png", Image.new("RGB", (8, 8), stored), icc_profile=_wide_gamut_profile())
    record = read_image(wide)
    r, g, b = record.image.getpixel((4, 4))
    assert "ICC profile converted to sRGB" in record.note
    # A wide-gamut red is a more saturated red in sRGB.
    assert r > stored[0] + 5 and g < stored[1] + 3 and b < stored[2]
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    plain = read_image(_save(tmp_path, "s.png", Image.new("RGB", (8, 8), stored), icc_profile=srgb))
    assert plain.image.getpixel((4, 4)) == stored and "ICC" not in plain.note


def test_arrays_and_pil_images_are_accepted():
    arr = np.zeros((20, 30, 3), np.uint8)
    assert read_image(arr).image.size == (30, 20)
    assert read_image(np.full((20, 30), 0.5)).image.getpixel((0, 0)) == (128, 128, 128)
    with pytest.raises(ImageError, match="unsupported"):
        read_image(np.zeros((2, 3, 7), np.uint8))


def test_min_side_refuses_tiny_originals(tmp_path):
    path = _save(tmp_path, "tiny.png", Image.new("RGB", (20, 10)))
    with pytest.raises(ImageError) as e:
        read_image(path, min_side=32)
    assert e.value.kind == "too small"


def test_non_utf8_file_name_is_read(tmp_path):
    name = b"Boreal_\xff\xfe_Jan.png"
    path = tmp_path / name.decode("utf-8", "surrogateescape")
    try:
        Image.new("RGB", (40, 40), (1, 2, 3)).save(path, format="PNG")
    except (UnicodeEncodeError, OSError):
        pytest.skip("this file system refuses names that are not UTF-8")
    assert read_image(path).image.getpixel((0, 0)) == (1, 2, 3)
