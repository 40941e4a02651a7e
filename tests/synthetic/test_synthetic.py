"""Synthetic scenes: shape, determinism, file names, workers, seasonal cues, measured colours, looks, CLI."""
import numpy as np
import pytest
from PIL import Image
from skimage.color import rgb2lab

from biomeseason.__main__ import main as cli
from biomeseason.io import files
from biomeseason.labels import Vocabulary, north_month, parse_filename
from biomeseason.synthetic import generate as synthetic
from biomeseason.synthetic import realstats
from biomeseason.synthetic import scene as synthetic_scene

BIOMES = list(synthetic.FILE_PREFIX)


def test_file_prefixes_are_the_vocabulary_aliases():
    vocab = Vocabulary.load()
    assert BIOMES == vocab.biomes
    for biome, prefix in synthetic.FILE_PREFIX.items():
        assert vocab.resolve(prefix).biome == biome


@pytest.mark.parametrize("biome", BIOMES)
def test_shape_dtype_and_range(biome):
    img = synthetic.render_scene(biome, 5, 0, size=48)
    assert img.shape == (48, 48, 3) and img.dtype == np.uint8
    assert img.std() > 3  # not a flat colour


def test_deterministic_for_a_seed():
    a = synthetic.render_scene("tundra", 2, 7, size=64)
    b = synthetic.render_scene("tundra", 2, 7, size=64)
    c = synthetic.render_scene("tundra", 2, 8, size=64)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    ss = np.random.SeedSequence([1, 2, 3])
    assert np.array_equal(synthetic.render_scene("desert", 4, ss, 32),
                          synthetic.render_scene("desert", 4, np.random.default_rng(ss), 32))


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="biome"):
        synthetic.render_scene("moon", 1, 0, 32)
    with pytest.raises(ValueError, match="month"):
        synthetic.render_scene("desert", 13, 0, 32)


def test_file_names_parse_to_their_labels(tmp_path):
    paths = synthetic.write_scenes(tmp_path, per_class=1, size=32, progress=False)
    assert len(paths) == 84 and sorted(paths) == sorted(tmp_path.glob("*.jpg"))
    vocab = Vocabulary.load()
    pairs = set()
    for p in paths:
        label = parse_filename(p.name, vocab)
        assert p.name == synthetic._file_name(label.biome, label.month, 1)
        assert label.note == ""
        pairs.add((label.biome, label.month))
        with Image.open(p) as im:
            assert im.format == "JPEG" and im.size == (32, 32) and im.mode == "RGB"
    assert pairs == {(b, m) for b in BIOMES for m in range(1, 13)}


def test_same_files_whatever_the_number_of_workers(tmp_path):
    kw = dict(per_class=2, seed=3, size=40, biomes=["desert", "tundra"], months=[1, 6, 11], progress=False)
    one = synthetic.write_scenes(tmp_path / "one", workers=1, **kw)
    two = synthetic.write_scenes(tmp_path / "two", workers=2, **kw)
    assert [p.name for p in one] == [p.name for p in two] and len(one) == 12
    for a, b in zip(one, two):
        assert a.read_bytes() == b.read_bytes()
    assert not [p for p in (tmp_path / "two").iterdir() if p.name.endswith(".tmp")]  # no temp files left


def _scenes(biome, month, n=8, size=64, look="nadir"):
    return np.stack([synthetic.render_scene(biome, month, [11, s], size, look) for s in range(n)]).astype(float)


def _lab(x):
    return rgb2lab(x.reshape(-1, 1, 3) / 255).reshape(-1, 3)


def test_boreal_winter_is_white_and_summer_is_not():
    whiteness = lambda x: x.min(axis=-1).mean()  # noqa: E731  (snow is bright in every channel)
    assert whiteness(_scenes("boreal_forest", 1)) > whiteness(_scenes("boreal_forest", 7)) + 40


def test_savanna_is_greener_in_the_long_rains_than_in_the_dry_season():
    # a* < 0 is green; the measured tiles differ by about 9 units between April and August.
    # The savanna's reference place is southern: its April is the label October (north_month).
    april = _lab(_scenes("tropical_grassland", north_month(4, "south")))
    august = _lab(_scenes("tropical_grassland", north_month(8, "south")))
    assert august[:, 1].mean() > april[:, 1].mean() + 4


def test_deciduous_autumn_is_redder_than_summer():
    october, july = _lab(_scenes("temperate_deciduous_forest", 10)), _lab(_scenes("temperate_deciduous_forest", 7))
    assert october[:, 1].mean() > july[:, 1].mean() + 5


@pytest.mark.parametrize("biome", BIOMES)
def test_mean_colour_falls_within_the_measured_real_range(biome, monkeypatch):
    """Clear nadir scenes of each biome in Jan, Apr, Jul and Oct: the mean CIELAB colour (at the
    32 px scale of the measured tiles) lies within 2.5 sd (between tiles) of the measured mean."""
    # The measured tiles are cloud- and haze-free composites, so the sky is switched off here.
    monkeypatch.setattr(synthetic.looks, "CLEAR_SHARE", 1.0)
    monkeypatch.setattr(synthetic.looks, "HAZE_SHARE", 0.0)
    monkeypatch.setattr(synthetic_scene, "HAZE_SCALE", 0.0)
    table = realstats.load()[synthetic.FILE_PREFIX[biome]]
    for month in (1, 4, 7, 10):
        scenes = _scenes(biome, month, n=10, size=32)
        mean = np.mean([_lab(s).mean(0) for s in scenes], axis=0)
        lo = table["lab"][month - 1] - 2.5 * table["lab_sd"][month - 1] - (6, 2, 3)
        hi = table["lab"][month - 1] + 2.5 * table["lab_sd"][month - 1] + (6, 2, 3)
        assert np.all((mean >= lo) & (mean <= hi)), (month, mean.round(1), lo.round(1), hi.round(1))


def test_looks_are_checked_and_differ():
    nadir = synthetic.render_scene("desert", 6, 3, 64, "nadir")
    orbital = synthetic.render_scene("desert", 6, 3, 64, "orbital")
    assert nadir.shape == orbital.shape == (64, 64, 3)
    assert not np.array_equal(nadir, orbital)
    with pytest.raises(ValueError, match="look"):
        synthetic.render_scene("desert", 6, 3, 64, "fisheye")


def test_orbital_views_often_show_dark_space_above_the_limb():
    tops = [synthetic.render_scene("boreal_forest", 7, s, 64, "orbital")[:3].mean() for s in range(12)]
    assert sum(t < 40 for t in tops) >= 4      # black space at the top edge
    nadir_tops = [synthetic.render_scene("desert", 7, s, 64, "nadir")[:3].mean() for s in range(12)]
    assert min(nadir_tops) > 60                 # a bright desert seen straight down has no sky


@pytest.mark.parametrize("look", synthetic.looks.LOOKS)
def test_cli_look_writes_a_contact_sheet(tmp_path, look):
    out = tmp_path / look
    assert cli(["synth", "--out", str(out), "--per-class", "1", "--size", "32", "--look", look]) == 0
    with Image.open(out / f"contact_sheet_{look}.png") as sheet:
        assert sheet.width > 12 * 32 and sheet.height > 7 * 32
        grid = np.asarray(sheet.convert("RGB"))
    assert grid.std() > 20   # not blank


def test_cli_refuses_a_bad_look(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        cli(["synth", "--out", str(tmp_path / "x"), "--look", "fisheye"])
    assert e.value.code == 2 and not (tmp_path / "x").exists()


def test_a_foreign_non_empty_out_is_refused_unless_forced(tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "holiday.jpg").write_bytes(b"mine")
    assert cli(["synth", "--out", str(out), "--per-class", "1", "--size", "32"]) == 2
    assert "--force" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["holiday.jpg"]
    assert cli(["synth", "--out", str(out), "--per-class", "1", "--size", "32", "--force"]) == 0
    assert (out / "holiday.jpg").read_bytes() == b"mine" and len(list(out.glob("*_0001.jpg"))) == 84


def test_same_seed_same_bytes(tmp_path):
    kw = dict(per_class=1, seed=4, size=48, biomes=["tropical_rainforest", "tundra"], progress=False)
    a = synthetic.write_scenes(tmp_path / "a", **kw)
    b = synthetic.write_scenes(tmp_path / "b", **kw)
    c = synthetic.write_scenes(tmp_path / "c", **{**kw, "seed": 5})
    assert [p.read_bytes() for p in a] == [p.read_bytes() for p in b]
    assert [p.read_bytes() for p in a] != [p.read_bytes() for p in c]
    assert (tmp_path / "a" / "contact_sheet_mixed.png").read_bytes() == \
        (tmp_path / "b" / "contact_sheet_mixed.png").read_bytes()


def test_cli_writes_and_reports(tmp_path, capsys):
    out = tmp_path / "synth"
    rc = cli(["synth", "--out", str(out), "--per-class", "1", "--size", "32", "--seed", "5"])
    assert rc == 0
    assert len(list(out.glob("*.jpg"))) == 84
    printed = capsys.readouterr().out
    assert "84" in printed and str(out) in printed and "images/s" in printed


def test_each_scene_takes_its_colours_from_one_measured_region(monkeypatch):
    """Red Australian and beige Saharan desert are measured apart; a scene is one or the other,
    never the blend halfway between them that one Gaussian over both would give."""
    monkeypatch.setattr(synthetic.looks, "CLEAR_SHARE", 1.0)
    monkeypatch.setattr(synthetic.looks, "HAZE_SHARE", 0.0)
    monkeypatch.setattr(synthetic_scene, "HAZE_SCALE", 0.0)
    regions = realstats.load()["DV"]["regions"]
    centres = sorted(float(r["lab"][5][0]) for r in regions.values())
    assert len(centres) == 2 and centres[1] - centres[0] > 20
    lightness = [_lab(s).mean(0)[0] for s in _scenes("desert", 6, n=16, size=32)]
    nearest = [min(centres, key=lambda c: abs(c - x)) for x in lightness]
    assert all(abs(x - c) < 9 for x, c in zip(lightness, nearest)), np.round(lightness, 1)
    assert set(nearest) == set(centres)   # both places drawn


def test_a_scenes_csv_of_someone_elses_is_refused_before_any_scene_is_written(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "scenes.csv").write_text("name,notes\nx,y\n")
    with pytest.raises(files.UsageError, match="not a list of scenes"):
        synthetic.write_scenes(out, per_class=1, size=32, biomes=["tundra"], months=[1], progress=False, force=True)
    assert sorted(p.name for p in out.iterdir()) == ["scenes.csv"]
    assert (out / "scenes.csv").read_text() == "name,notes\nx,y\n"
