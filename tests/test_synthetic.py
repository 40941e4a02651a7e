"""Synthetic scenes: shape, determinism, file names, workers, seasonal cues, CLI."""
import numpy as np
import pytest
from PIL import Image

from biomeseason import synthetic
from biomeseason.__main__ import main as cli
from biomeseason.labels import Vocabulary, parse_filename

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
    assert len(paths) == 84 and sorted(paths) == sorted(tmp_path.iterdir())
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
    assert not [p for p in (tmp_path / "two").iterdir() if p.name.startswith(".")]  # no temp files left


def _scenes(biome, month, n=8, size=64):
    return np.stack([synthetic.render_scene(biome, month, [11, s], size) for s in range(n)]).astype(float)


def test_boreal_winter_is_white_and_summer_is_not():
    whiteness = lambda x: x.min(axis=-1).mean()  # noqa: E731  (snow is bright in every channel)
    assert whiteness(_scenes("boreal_forest", 1)) > whiteness(_scenes("boreal_forest", 7)) + 40


def test_savanna_is_greener_in_the_long_rains_than_in_the_dry_season():
    excess_green = lambda x: (2 * x[..., 1] - x[..., 0] - x[..., 2]).mean()  # noqa: E731
    april, august = _scenes("tropical_grassland", 4), _scenes("tropical_grassland", 8)
    assert excess_green(april) > excess_green(august) + 15


def test_deciduous_autumn_is_redder_than_summer():
    redness = lambda x: (x[..., 0] - x[..., 1]).mean()  # noqa: E731
    october, july = _scenes("temperate_deciduous_forest", 10), _scenes("temperate_deciduous_forest", 7)
    assert redness(october) > redness(july) + 20


def test_low_winter_sun_darkens_and_sharpens_the_desert():
    # No snow or vegetation change needed: the noon sun alone sets brightness and relief contrast.
    relief = lambda x: np.abs(np.diff(x.mean(axis=-1), axis=2)).mean()  # noqa: E731
    dec, jun = _scenes("desert", 12), _scenes("desert", 6)
    assert dec.mean() < jun.mean() - 8
    assert relief(dec) > 1.2 * relief(jun)


def test_cli_writes_and_reports(tmp_path, capsys):
    out = tmp_path / "synth"
    rc = cli(["synth", "--out", str(out), "--per-class", "1", "--size", "32", "--seed", "5"])
    assert rc == 0
    assert len(list(out.glob("*.jpg"))) == 84
    printed = capsys.readouterr().out
    assert "84" in printed and str(out) in printed and "images/s" in printed
