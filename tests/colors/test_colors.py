"""biomeseason.colors.palette: palettes, names, reading through images, the CLI's refusals and hex2name.ipynb."""
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import matplotlib
import matplotlib.colors as mcolors
import numpy as np
import pytest
from PIL import Image
from scipy.spatial.distance import cdist
from skimage.color import deltaE_ciede2000, rgb2lab

from biomeseason.__main__ import main as cli
from biomeseason.colors import names as colors_names
from biomeseason.colors import palette as colors
from biomeseason.io import images

matplotlib.use("Agg")
REPO = Path(__file__).resolve().parents[2]


def smooth(rng, h, w, cells):
    small = rng.random((cells, cells), dtype=np.float32)
    return np.asarray(Image.fromarray(small, mode="F").resize((w, h), Image.BICUBIC))


def photo(rng, h=240, w=320) -> np.ndarray:
    """(h, w, 3) uint8: sky, forest and field blended by smooth fields, with grain."""
    cover = np.array([[70, 120, 190], [40, 90, 40], [190, 160, 90]], np.float32)
    weights = np.exp(8 * np.stack([smooth(rng, h, w, 4) for _ in cover], -1))
    image = (weights / weights.sum(-1, keepdims=True)) @ cover
    image *= (0.8 + 0.4 * smooth(rng, h, w, 12))[..., None]
    image += rng.normal(0, 4, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def table_lab(table):
    hexes = list(colors.color_table(table).values())
    return rgb2lab(np.array([[int(h[i:i + 2], 16) for i in (1, 3, 5)] for h in hexes]) / 255.0)


# ------------------------------------------------------------------ names ---

@pytest.mark.parametrize("table, source", [("css4", mcolors.CSS4_COLORS),
                                           ("xkcd", mcolors.XKCD_COLORS)])
def test_every_table_colour_is_named_by_its_own_name(table, source):
    names = [name.removeprefix("xkcd:") for name in source]
    hexes = [h.lower() for h in source.values()]
    records = colors.name_colors(hexes, table=table)
    for name, hex_, record in zip(names, hexes, records):
        # aliases (gray/grey, aqua/cyan) share one hex: the first spelling wins
        first = min(n for n, h in zip(names, hexes) if h == hex_)
        assert record["name"] == first, (name, hex_, record)
        assert record["name_hex"] == hex_ and record["delta_e"] == 0
    assert len({r["name"] for r in records}) == len(set(hexes))


def test_aliases_fold_into_the_alphabetically_first_spelling():
    by_hex = {r["name_hex"]: r["name"] for r in colors.name_colors(["#808080", "#00ffff", "#ff00ff"])}
    assert by_hex == {"#808080": "gray", "#00ffff": "aqua", "#ff00ff": "fuchsia"}


def test_a_perturbation_below_one_delta_e_keeps_the_name():
    lab = table_lab("css4")
    namer = colors.load_namer("css4")
    gaps = cdist(lab, lab)
    np.fill_diagonal(gaps, np.inf)
    # A 1-NN classifier keeps the name within half the distance to the nearest
    # other table colour; that is > 1 for all but pairs closer than 2 dE
    # (lawngreen/chartreuse, 1.3 apart), which are tested within half their gap.
    radius = np.minimum(0.999, 0.499 * gaps.min(axis=1))
    assert np.mean(radius > 0.99) > 0.95
    rng = np.random.default_rng(0)
    for _ in range(20):
        step = rng.normal(size=lab.shape)
        step *= (radius * rng.uniform(0.2, 1, len(lab)) / np.linalg.norm(step, axis=1))[:, None]
        assert [r["name"] for r in namer.name_lab(lab + step)] == namer.names


def test_basic_names_are_the_twelve_terms_and_name_themselves():
    assert set(colors.basic_names(table_lab("css4"))) == set(colors.BASIC_NAMES)
    for term in colors.BASIC_NAMES:          # all twelve are CSS4 names too
        assert colors.name_colors(mcolors.CSS4_COLORS[term])[0]["basic_name"] == term


def test_basic_names_agree_with_the_xkcd_survey():
    # XKCD colours named '<anything> <basic term>' are what people called by that term
    table = colors.color_table("xkcd")
    surveyed = {n: h for n, h in table.items() if colors_names._head_term(n)}
    ours = colors.basic_names(rgb2lab(np.array([mcolors.to_rgb(h) for h in surveyed.values()])))
    agree = np.mean([colors_names._head_term(n) == b for n, b in zip(surveyed, ours)])
    assert len(surveyed) > 500 and agree > 0.99


def test_basic_name_describes_the_colour_not_its_sparse_fine_name():
    soil = colors.name_colors([(124, 101, 73)])[0]
    assert soil["basic_name"] == "brown"
    assert soil["delta_e"] > 5               # CSS4 has no close name for it


def test_delta_e_is_ciede2000_to_the_named_colour():
    record = colors.name_colors([(250, 128, 10)])[0]
    named = mcolors.to_rgb(record["name_hex"])
    expected = deltaE_ciede2000(rgb2lab(np.array([250, 128, 10]) / 255.0), rgb2lab(np.array(named)))
    assert record["delta_e"] == pytest.approx(float(expected), abs=0.01) and record["delta_e"] > 0


# ---------------------------------------------------------------- palettes ---

@pytest.mark.parametrize("k", [1, 3, 5, 8])
def test_shares_sum_to_100_largest_first(k):
    palette = colors.dominant_colors(photo(np.random.default_rng(k)), k=k)
    assert len(palette) == k
    shares = [c["share"] for c in palette]
    assert sum(shares) == pytest.approx(100, abs=1e-9)
    assert shares == sorted(shares, reverse=True)
    for c in palette:
        assert c["hex"] == "#{:02x}{:02x}{:02x}".format(*c["rgb"])
        assert set(c) == {"rgb", "hex", "share", "name", "name_hex", "basic_name", "delta_e"}


def test_same_seed_same_palette(tmp_path):
    path = tmp_path / "photo.jpg"
    Image.fromarray(photo(np.random.default_rng(1), 900, 1200)).save(path)
    assert colors.dominant_colors(path, seed=3) == colors.dominant_colors(path, seed=3)
    assert colors.analyze_colors(path, seed=3) == colors.analyze_colors(path, seed=3)


def lab_kmeans_all_pixels(image: np.ndarray, k: int) -> np.ndarray:
    """The slow reference: k-means in CIELAB on every pixel, ten restarts; (k, 3) Lab centres."""
    from sklearn.cluster import KMeans

    lab = rgb2lab(image.reshape(-1, 3) / 255.0)
    return KMeans(n_clusters=k, n_init=10, random_state=0).fit(lab).cluster_centers_


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_palette_equals_kmeans_on_all_pixels_within_one_delta_e(tmp_path, seed):
    from scipy.optimize import linear_sum_assignment

    image = photo(np.random.default_rng(seed), 600, 800)
    path = tmp_path / "photo.png"
    Image.fromarray(image).save(path)
    palette = colors.dominant_colors(path, k=5)
    ours = rgb2lab(np.array([c["rgb"] for c in palette]) / 255.0)
    cost = deltaE_ciede2000(ours[:, None], lab_kmeans_all_pixels(image, 5)[None])
    rows, cols = linear_sum_assignment(cost)
    assert cost[rows, cols].mean() <= 1.0


def test_shares_are_those_of_every_pixel_and_centres_the_groups_means():
    rng = np.random.default_rng(0)
    base = np.empty((200, 300, 3), np.float64)
    base[:, :150] = (200, 30, 30)          # 50 %
    base[:, 150:240] = (30, 60, 200)       # 30 %
    base[:, 240:] = (240, 240, 240)        # 20 %
    image = np.clip(base + rng.integers(-6, 7, base.shape), 0, 255).astype(np.uint8)   # many shades of each
    palette = colors.dominant_colors(image, k=3)
    # every pixel counts (no sample), so the shares are exact
    assert [c["share"] for c in palette] == [50, 30, 20]
    means = [image[:, a:b].reshape(-1, 3).mean(0) for a, b in ((0, 150), (150, 240), (240, 300))]
    for c, mean in zip(palette, means):
        assert np.abs(np.subtract(c["rgb"], mean)).max() <= 1


def test_palette_does_not_depend_on_where_the_pixels_are():
    image = photo(np.random.default_rng(3))
    shuffled = np.random.default_rng(0).permutation(image.reshape(-1, 3)).reshape(image.shape)
    assert not np.array_equal(shuffled, image)
    assert colors.dominant_colors(shuffled, k=5) == colors.dominant_colors(image, k=5)


def colour_groups(rng, groups=((200, 30, 30), (30, 60, 200), (40, 120, 40), (240, 240, 240)), per_group=40):
    """(M, 3) uint8 distinct colours around well-separated group colours, and (M,) pixel counts from 1 to 300."""
    rgb = np.concatenate([np.clip(np.add(g, rng.integers(-8, 9, (per_group, 3))), 0, 255) for g in groups])
    rgb = np.unique(rgb.astype(np.uint8), axis=0)
    return rgb, rng.integers(1, 301, len(rgb))


def test_weighted_clustering_equals_the_clustering_of_the_repeated_pixels():
    from sklearn.cluster import KMeans

    from biomeseason.colors import cluster as colors_cluster

    rgb, counts = colour_groups(np.random.default_rng(1))
    lab = colors_names.lab_of(rgb)
    centres, labels = colors_cluster._cluster(lab, counts, 4, seed=0)
    repeated = KMeans(n_clusters=4, n_init=10, random_state=0).fit(np.repeat(lab, counts, axis=0))
    order = [int(np.argmin(np.linalg.norm(repeated.cluster_centers_ - c, axis=1))) for c in centres]
    assert sorted(order) == [0, 1, 2, 3]
    np.testing.assert_allclose(centres, repeated.cluster_centers_[order], atol=1e-6)
    assert np.array_equal(np.array(order)[labels], repeated.labels_[np.cumsum(counts) - 1])


def test_pooling_keeps_heavy_colours_and_the_weight_and_mean_of_all():
    from biomeseason.colors import cluster as colors_cluster

    rng = np.random.default_rng(2)
    rgb, counts = colour_groups(rng, per_group=400)
    rgb = np.concatenate([rgb, [(2, 5, 20), (4, 8, 24)]]).astype(np.uint8)   # two near shades of dark sea...
    counts = np.concatenate([counts, [counts.sum(), counts.sum()]])          # ...each a third of the pixels
    lab = colors_names.lab_of(rgb)
    points, weights = colors_cluster._pool(lab, counts)
    assert len(points) < len(lab) / 4
    assert weights.sum() == pytest.approx(counts.sum())
    np.testing.assert_allclose(weights @ points / weights.sum(), counts @ lab / counts.sum(), atol=1e-9)
    heavy = counts >= colors_cluster.HEAVY_SHARE * counts.sum()
    assert heavy[-2:].all()
    for colour, count in zip(lab[heavy], counts[heavy]):
        assert np.any(np.all(points == colour, axis=1) & (weights == count))


def test_palette_finds_the_colours_of_the_image():
    image = np.zeros((200, 300, 3), np.uint8)
    image[:, :150] = (200, 30, 30)          # 50 %
    image[:, 150:240] = (30, 60, 200)       # 30 %
    image[:, 240:] = (250, 250, 250)        # 20 %: white is a colour, not background
    palette = colors.dominant_colors(image, k=5)
    assert [c["rgb"] for c in palette] == [(200, 30, 30), (30, 60, 200), (250, 250, 250)]
    assert [c["share"] for c in palette] == pytest.approx([50, 30, 20], abs=2)
    assert [c["basic_name"] for c in palette] == ["red", "blue", "white"]


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_solid_image_gives_one_colour(tmp_path, fmt):
    path = tmp_path / f"solid.{fmt.lower()}"
    Image.new("RGB", (640, 480), (34, 139, 34)).save(path, fmt)
    palette = colors.dominant_colors(path, k=5)
    assert len(palette) == 1 and palette[0]["share"] == 100
    assert np.abs(np.subtract(palette[0]["rgb"], (34, 139, 34))).max() <= 2
    assert palette[0]["name"] == "forestgreen"


def test_float_arrays_and_pil_images_give_the_same_palette():
    image = photo(np.random.default_rng(2))
    expected = colors.dominant_colors(image)
    assert colors.dominant_colors(image / 255.0) == expected
    assert colors.dominant_colors(Image.fromarray(image)) == expected


def test_transparent_pixels_are_ignored(tmp_path):
    rgba = np.zeros((400, 600, 4), np.uint8)
    rgba[:, :300] = (20, 40, 200, 255)       # opaque blue
    rgba[:, 300:] = (255, 0, 0, 0)           # fully transparent red
    path = tmp_path / "half.png"
    Image.fromarray(rgba, "RGBA").save(path)
    palette = colors.dominant_colors(path, k=4)
    assert [c["rgb"] for c in palette] == [(20, 40, 200)]
    assert palette.ignored_transparent == pytest.approx(50, abs=1)


def test_near_black_frame_is_ignored_and_counted_but_shadows_stay():
    image = np.full((300, 400, 3), (60, 140, 60), np.uint8)
    image[:30] = image[-30:] = 5                  # letterbox bars: 20 % of the image
    image[140:160, 190:210] = 5                   # a shadow inside the scene
    image[60:100, 60:140] = 255                   # a cloud
    kept = colors.dominant_colors(image, k=4)
    framed = colors.dominant_colors(image, k=4, ignore_frame=True)
    assert "black" in [c["basic_name"] for c in kept]
    assert kept.ignored_frame == 0
    assert framed.ignored_frame == pytest.approx(20, abs=0.5)
    assert {c["basic_name"] for c in framed} == {"green", "white", "black"}
    assert [c for c in framed if c["basic_name"] == "black"][0]["share"] < 1


def test_non_image_fails_with_a_clear_error(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("not a picture")
    with pytest.raises(images.ImageError, match="notes.jpg"):
        colors.dominant_colors(path)
    with pytest.raises(images.ImageError, match="missing.png"):
        colors.dominant_colors(tmp_path / "missing.png")
    with pytest.raises(ValueError, match="shape"):
        colors.dominant_colors(np.zeros((4, 4, 2), np.uint8))


# ---------------------------------------------------------------- analysis ---

def test_grayscale_photo_is_bw_and_colourful_one_is_not(tmp_path):
    image = Image.fromarray(photo(np.random.default_rng(4), 480, 640))
    image.save(tmp_path / "colour.jpg")
    image.convert("L").convert("RGB").save(tmp_path / "gray.jpg")
    image.convert("L").save(tmp_path / "gray-l.png")
    assert colors.analyze_colors(tmp_path / "colour.jpg")["is_bw_img"] is False
    assert colors.analyze_colors(tmp_path / "gray.jpg")["is_bw_img"] is True
    assert colors.analyze_colors(tmp_path / "gray-l.png")["is_bw_img"] is True


def test_foreground_is_the_centre_background_the_border():
    image = np.full((300, 400, 3), (40, 90, 200), np.uint8)    # blue all round
    image[90:210, 120:280] = (210, 40, 40)                      # red subject in the middle
    image[10:20, 10:20] = (255, 220, 0)                         # a small yellow spot
    result = colors.analyze_colors(image)
    assert result["dominant_color_foreground"] == "red"
    assert result["dominant_color_background"] == "blue"
    assert result["dominant_colors"] == ["blue", "red"]         # the spot holds < 0.1 %
    assert result["is_bw_img"] is False
    chroma = {c["hex"]: np.hypot(*rgb2lab(np.array(c["rgb"]) / 255.0)[1:])
              for c in colors.dominant_colors(image, k=8) if c["share"] >= colors.SALIENT_SHARE}
    assert result["accent_color"] == max(chroma, key=chroma.get)


def test_plot_palette_draws_one_bar_per_colour():
    palette = colors.dominant_colors(photo(np.random.default_rng(5)), k=4)
    ax = colors.plot_palette(palette)
    assert len(ax.patches) == 4
    assert [t.get_text().split("\n")[0] for t in ax.texts] == [c["name"] for c in palette]


# ------------------------------------------------------------------ reading ---

def test_sixteen_bit_image_keeps_its_colour(tmp_path):
    grey = np.full((60, 80), 32896, np.uint16)          # 50 % grey in 16 bits: 128 in 8 bits
    path = tmp_path / "deep.png"
    Image.fromarray(grey).save(path)
    [colour] = colors.dominant_colors(path)
    assert colour["rgb"] == (128, 128, 128)              # not clipped to white


def test_files_are_read_only_through_the_image_module(tmp_path, monkeypatch):
    upright = np.zeros((40, 60, 3), np.uint8)
    upright[:, :45] = (200, 30, 30)                       # a red 3/4 on the left...
    exif = Image.Exif()
    exif[0x0112] = 6                                     # stored sideways, "rotate 90 to view"
    path = tmp_path / "sideways.jpg"
    Image.fromarray(upright).transpose(Image.Transpose.ROTATE_90).save(path, exif=exif, quality=95)
    calls = []
    read = images.read_image
    monkeypatch.setattr(images, "read_image", lambda *a, **kw: calls.append(a[0]) or read(*a, **kw))
    result = colors.analyze_colors(path)
    assert calls == [path]
    assert result["dominant_color_foreground"] == "red"


def test_pixel_limit_refuses_a_huge_image_with_a_reason(tmp_path):
    path = tmp_path / "big.png"
    Image.new("RGB", (300, 200), (10, 200, 10)).save(path)
    with pytest.raises(images.ImageError, match="too large"):
        colors.dominant_colors(path, max_pixels=50_000)
    assert colors.dominant_colors(path, max_pixels=60_000)[0]["basic_name"] == "green"


def test_names_are_fitted_once_per_process_and_nothing_is_stored(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    colors.load_namer.cache_clear()
    first = colors.load_namer("xkcd")
    assert colors.load_namer("xkcd") is first
    assert list(tmp_path.iterdir()) == []


def test_the_colours_module_does_not_import_torch():
    code = "import sys, biomeseason.colors.palette; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO,
                         timeout=300)
    assert out.stdout.strip() == "False"


# --------------------------------------------------------------------- CLI ---

def write_folder(folder: Path) -> None:
    (folder / "sub").mkdir(parents=True)
    Image.fromarray(photo(np.random.default_rng(6))).save(folder / "a.jpg")
    Image.fromarray(photo(np.random.default_rng(7))).save(folder / "sub" / "b.png")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    (folder / "notes.txt").write_text("not an image, not looked at")


def test_cli_on_a_folder_skips_bad_files(tmp_path, capsys):
    write_folder(tmp_path / "photos")
    out = tmp_path / "out" / "colors.csv"
    status = cli(["colors", str(tmp_path / "photos"), "--k", "3", "--out", str(out)])
    assert status == 0
    err = capsys.readouterr().err
    assert "broken.jpg" in err and "notes.txt" not in err
    rows = list(csv.DictReader(out.open()))
    assert sorted({Path(r["path"]).name for r in rows}) == ["a.jpg", "b.png"]
    assert len(rows) == 6
    for name in ("a.jpg", "b.png"):
        assert sum(float(r["share"]) for r in rows if r["path"].endswith(name)) == pytest.approx(100)


def test_worker_processes_give_the_same_file_as_this_one(tmp_path, capsys, monkeypatch):
    write_folder(tmp_path / "photos")
    for i in range(4):
        Image.fromarray(photo(np.random.default_rng(10 + i))).save(tmp_path / "photos" / f"c{i}.jpg")
    started, pool = [], colors.process_pool
    monkeypatch.setattr(colors, "process_pool", lambda *a, **kw: started.append(a) or pool(*a, **kw))
    assert cli(["colors", str(tmp_path / "photos"), "--out", str(tmp_path / "few.csv"), "--workers", "2"]) == 0
    assert started == []                       # 7 files: quicker done here than workers start
    monkeypatch.setattr(colors, "POOL_FROM", 2)
    outs = [tmp_path / f"colors_{w}.csv" for w in (0, 2)]
    for workers, out in zip((0, 2), outs):
        assert cli(["colors", str(tmp_path / "photos"), "--out", str(out), "--workers", str(workers)]) == 0
        assert "broken.jpg" in capsys.readouterr().err
    assert len(started) == 1                   # the run with --workers 2 used them
    assert outs[0].read_bytes() == outs[1].read_bytes() == (tmp_path / "few.csv").read_bytes()
    assert len({r["path"] for r in csv.DictReader(outs[1].open())}) == 6
    # A worker's error reaches the caller as itself, reason and all.
    errors = {p.name: r for p, r in colors.colors_of_files([tmp_path / "photos"], 3, progress=False, workers=2)
              if not isinstance(r, colors.Palette)}
    assert len(started) == 2 and list(errors) == ["broken.jpg"]
    assert isinstance(errors["broken.jpg"], images.ImageError) and errors["broken.jpg"].kind == "corrupt"


def test_cli_json_and_nothing_readable(tmp_path, capsys):
    write_folder(tmp_path / "photos")
    out = tmp_path / "colors.json"
    assert cli(["colors", str(tmp_path / "photos" / "a.jpg"), "--out", str(out), "--table", "xkcd"]) == 0
    (image,) = json.loads(out.read_text())
    assert len(image["colors"]) == 5 and image["ignored_frame"] == 0
    assert cli(["colors", str(tmp_path / "photos" / "broken.jpg"), "--out", str(tmp_path / "none.csv")]) == 1
    assert "broken.jpg" in capsys.readouterr().err
    assert not (tmp_path / "none.csv").exists()


def test_an_empty_result_keeps_the_previous_output(tmp_path, capsys):
    write_folder(tmp_path / "photos")
    out = tmp_path / "colors.csv"
    assert cli(["colors", str(tmp_path / "photos" / "a.jpg"), "--out", str(out)]) == 0
    before = out.read_bytes()
    assert cli(["colors", str(tmp_path / "photos" / "broken.jpg"), "--out", str(out)]) == 1
    assert out.read_bytes() == before
    assert "left as it was" in capsys.readouterr().err


def one_sentence_refusal(capsys, code: int, *words) -> str:
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.startswith("error: ") and len(err.splitlines()) == 1 and "Traceback" not in err
    for word in words:
        assert word in err
    return err


@pytest.mark.parametrize("k", ["0", "-1", "65"])
def test_a_bad_k_is_refused_before_any_work(tmp_path, capsys, k):
    write_folder(tmp_path / "photos")
    out = tmp_path / "colors.csv"
    out.write_text("path,rank,hex\nmine,1,#000000\n")
    code = cli(["colors", str(tmp_path / "photos"), "--k", k, "--out", str(out)])
    one_sentence_refusal(capsys, code, "--k")
    assert out.read_text() == "path,rank,hex\nmine,1,#000000\n"


def test_out_equal_to_an_input_image_is_refused(tmp_path, capsys):
    write_folder(tmp_path / "photos")
    image = tmp_path / "photos" / "a.jpg"
    before = image.read_bytes()
    for out in (image, tmp_path / "photos" / "sub" / ".." / "a.jpg"):
        code = cli(["colors", str(tmp_path / "photos"), "--out", str(out), "--force"])
        one_sentence_refusal(capsys, code, "input")
    assert image.read_bytes() == before


def test_out_a_folder_or_a_missing_input_is_refused(tmp_path, capsys):
    write_folder(tmp_path / "photos")
    code = cli(["colors", str(tmp_path / "photos"), "--out", str(tmp_path)])
    one_sentence_refusal(capsys, code, "folder")
    code = cli(["colors", str(tmp_path / "nowhere.jpg"), "--out", str(tmp_path / "c.csv")])
    one_sentence_refusal(capsys, code, "nowhere.jpg")
    code = cli(["colors", str(tmp_path / "photos"), "--max-pixels", "0", "--out", str(tmp_path / "c.csv")])
    one_sentence_refusal(capsys, code, "--max-pixels")
    assert not (tmp_path / "c.csv").exists()


def test_a_file_that_is_not_ours_is_replaced_only_with_force(tmp_path, capsys):
    write_folder(tmp_path / "photos")
    out = tmp_path / "results.csv"
    out.write_text("my,own,table\n1,2,3\n")
    code = cli(["colors", str(tmp_path / "photos" / "a.jpg"), "--out", str(out)])
    one_sentence_refusal(capsys, code, "--force")
    assert out.read_text() == "my,own,table\n1,2,3\n"
    assert cli(["colors", str(tmp_path / "photos" / "a.jpg"), "--out", str(out), "--force"]) == 0
    assert next(csv.reader(out.open()))[:3] == ["path", "rank", "hex"]
    # ...and ours is replaced without --force, CSV or JSON
    assert cli(["colors", str(tmp_path / "photos" / "a.jpg"), "--out", str(out)]) == 0
    json_out = tmp_path / "c.json"
    assert cli(["colors", str(tmp_path / "photos" / "a.jpg"), "--out", str(json_out)]) == 0
    assert cli(["colors", str(tmp_path / "photos" / "a.jpg"), "--out", str(json_out)]) == 0


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root may write anywhere")
def test_an_unwritable_out_is_refused(tmp_path, capsys):
    write_folder(tmp_path / "photos")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        code = cli(["colors", str(tmp_path / "photos"), "--out", str(locked / "c.csv")])
        one_sentence_refusal(capsys, code, "permission")
    finally:
        locked.chmod(0o700)


def test_a_too_large_image_is_skipped_with_its_reason(tmp_path, capsys):
    write_folder(tmp_path / "photos")       # 320 x 240 = 76,800 pixels each
    out = tmp_path / "c.csv"
    assert cli(["colors", str(tmp_path / "photos"), "--out", str(out), "--max-pixels", "70000"]) == 1
    err = capsys.readouterr().err
    assert "a.jpg: too large" in err and "b.png: too large" in err


# ---------------------------------------------------------------- notebook ---

@pytest.mark.slow
def test_hex2name_notebook_runs_with_papermill_parameters(tmp_path):
    import papermill

    (tmp_path / "images").mkdir()
    image = tmp_path / "images" / "Boreal_Jun.jpg"
    Image.fromarray(photo(np.random.default_rng(8))).save(image)
    Image.fromarray(photo(np.random.default_rng(9))).save(tmp_path / "images" / "DV_Sept.png")
    out_csv = tmp_path / "colors.csv"
    papermill.execute_notebook(
        str(REPO / "hex2name.ipynb"), str(tmp_path / "hex2name.out.ipynb"),
        parameters={"IMAGE_PATH": str(image), "K": 3, "OUT_CSV": str(out_csv)},
        kernel_name="python3", cwd=str(REPO), progress_bar=False, execution_timeout=300)
    from conftest import assert_clean_notebook

    assert_clean_notebook(tmp_path / "hex2name.out.ipynb")
    rows = list(csv.DictReader(out_csv.open()))
    assert {Path(r["path"]).name for r in rows} == {"Boreal_Jun.jpg", "DV_Sept.png"}
    assert len(rows) == 6


@pytest.mark.slow
def test_hex2name_notebook_says_one_sentence_for_a_wrong_path(tmp_path):
    import nbformat
    import papermill

    (tmp_path / "bad.jpg").write_text("not a picture")
    for image in (tmp_path / "missing.jpg", tmp_path / "bad.jpg"):
        out = tmp_path / "out.ipynb"
        papermill.execute_notebook(
            str(REPO / "hex2name.ipynb"), str(out),
            parameters={"IMAGE_PATH": str(image), "OUT_CSV": str(tmp_path / "c.csv")},
            kernel_name="python3", cwd=str(REPO), progress_bar=False, execution_timeout=300)
        outputs = [o for c in nbformat.read(out, as_version=4).cells if c.cell_type == "code" for o in c.outputs]
        text = "".join(o.get("text", "") for o in outputs)
        assert f"cannot use IMAGE_PATH: {image}" in text
        assert not [o for o in outputs if o.output_type == "error"]


def test_colors_of_a_few_images_are_on_screen_and_nothing_is_written(tmp_path, monkeypatch, capsys):
    import json as json_

    monkeypatch.chdir(tmp_path)
    Image.fromarray(photo(np.random.default_rng(0))).save(tmp_path / "a.png")
    assert cli(["colors", "a.png", "--k", "3"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "a.png" and len(lines) == 4 and all("%" in line and "#" in line for line in lines[1:])
    assert cli(["colors", "a.png", "--k", "2", "--json"]) == 0
    [row] = [json_.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    assert row["path"] == "a.png" and len(row["colors"]) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png"]


@pytest.mark.slow
def test_hex2name_notebook_with_its_defaults_analyses_the_shipped_tile_and_writes_only_under_runs(tmp_path):
    import nbformat
    import papermill
    from conftest import assert_clean_notebook

    nb = nbformat.read(REPO / "hex2name.ipynb", as_version=4)
    params = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    namespace = {}
    exec(params.source, namespace)                                  # the defaults, as a user first sees them
    assert (REPO / namespace["IMAGE_PATH"]).is_file() and namespace["OUT_CSV"].startswith("runs/")
    out_csv = tmp_path / "runs" / "colors.csv"     # the same relative place, in a scratch copy of the layout
    papermill.execute_notebook(str(REPO / "hex2name.ipynb"), str(tmp_path / "out.ipynb"), kernel_name="python3",
                               cwd=str(REPO), parameters={"OUT_CSV": str(out_csv)}, progress_bar=False,
                               execution_timeout=300)
    assert_clean_notebook(tmp_path / "out.ipynb")
    text = (tmp_path / "out.ipynb").read_text()
    assert Path(namespace["IMAGE_PATH"]).name in text and "#" in text
    rows = list(csv.DictReader(out_csv.open()))
    assert {Path(r["path"]).parent.name for r in rows} == {Path(namespace["IMAGE_PATH"]).parent.name}
