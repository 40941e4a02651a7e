"""Labels: vocabulary files, month words, seasons, and the original study's file names."""
import json

import pytest

from biomeseason.labels import LabelError, Vocabulary, north_month, parse_filename, parse_month, season_of

DEFAULT_BIOMES = ["boreal_forest", "temperate_deciduous_forest", "desert", "tropical_rainforest",
                  "tropical_grassland", "tundra", "temperate_grassland"]


@pytest.fixture(scope="module")
def vocab():
    return Vocabulary.load()


def test_default_vocabulary_is_the_studys_seven_in_order(vocab):
    assert vocab.biomes == DEFAULT_BIOMES


# The original study's own file names, with what they must read as.
@pytest.mark.parametrize("name, biome, month", [
    ("Boreal_Manicouagan Crater_June.jpg", "boreal_forest", 6),
    ("Rainforest Congolese_Nov.jpg", "tropical_rainforest", 11),
    ("Desert Mojave_Sep.jpg", "desert", 9),
    ("DV_Sept.png", "desert", 9),
    ("Tundra_Europe__July.jpg", "tundra", 7),
    ("Deciduous_Jan_Snow.png", "temperate_deciduous_forest", 1),
    ("Boreal_Manicouagan Crater_Feb2.png", "boreal_forest", 2),
    ("TropGrass_Mar.jpg", "tropical_grassland", 3),
    ("USGrass_Oct.jpg", "temperate_grassland", 10),
    ("Boreal_Jan_0001.jpg", "boreal_forest", 1),        # the synthetic scenes' names
    ("Taiga_06.jpg", "boreal_forest", 6),               # a bare month number
    ("USGrass_Oct_3.jpg", "temperate_grassland", 10),   # a copy index after a month word
    ("death valley_December.JPG", "desert", 12),
])
def test_study_file_names(vocab, name, biome, month):
    label = parse_filename(name, vocab)
    assert (label.biome, label.month) == (biome, month)
    assert label.note == ""


def test_close_misspelling_is_accepted_and_reported_as_written(vocab):
    label = parse_filename("Ranforest_Feb.png", vocab)
    assert (label.biome, label.month) == ("tropical_rainforest", 2)
    assert label.note == "'Ranforest' read as tropical_rainforest (close spelling)"


@pytest.mark.parametrize("name, reason", [
    ("Lake Victoria_Serengeti_Dec.jpg", "no known biome in 'Lake Victoria'"),
    ("Boreal_Manicouagan Crater.jpg", "no month"),
    ("Boreal.jpg", "does not follow"),
    ("Boreal_Jan_Feb.jpg", "more than one month"),
    ("Boreal_3_4.jpg", "more than one month"),
    ("DX_Sept.png", "no known biome"),            # two letters never match fuzzily
    ("Boreal_13.jpg", "no month"),
    ("Boreal_0001.jpg", "no month"),              # an index is not January
])
def test_unreadable_names_are_rejected_with_the_reason(vocab, name, reason):
    with pytest.raises(LabelError, match=reason):
        parse_filename(name, vocab)


def test_bare_numbers_can_be_switched_off(vocab):
    assert parse_filename("Boreal_7.jpg", vocab).month == 7
    with pytest.raises(LabelError, match="no month"):
        parse_filename("Boreal_7.jpg", vocab, bare_numbers=False)
    assert parse_filename("Boreal_Jul_7.jpg", vocab, bare_numbers=False).month == 7


@pytest.mark.parametrize("text, month", [
    ("Jan", 1), ("january", 1), ("JUNE", 6), ("Sept", 9), ("sep", 9), ("Feb2", 2),
    ("01", 1), ("7", 7), ("12", 12), (" Dec ", 12),
    ("0", None), ("13", None), ("0001", None), ("Smarch", None), ("", None), ("Janu", None),
])
def test_parse_month(text, month):
    assert parse_month(text) == month


def test_a_southern_month_is_the_northern_month_it_looks_like():
    assert [north_month(m, "south") for m in (1, 7, 12)] == [7, 1, 6]
    assert [north_month(m) for m in range(1, 13)] == list(range(1, 13))
    assert all(north_month(north_month(m, "south"), "south") == m for m in range(1, 13))
    # The season of the northern-equivalent month is the southern image's own season.
    assert all(season_of(north_month(m, "south")) == season_of(m, "south") for m in range(1, 13))
    with pytest.raises(ValueError, match="hemisphere"):
        north_month(1, "east")


def test_seasons_are_meteorological_and_flip_in_the_south():
    north = [season_of(m) for m in range(1, 13)]
    assert north == ["winter"] * 2 + ["spring"] * 3 + ["summer"] * 3 + ["autumn"] * 3 + ["winter"]
    assert [season_of(m, "south") for m in (1, 4, 7, 10)] == ["summer", "autumn", "winter", "spring"]
    assert season_of(None) == "" and season_of("") == ""
    with pytest.raises(ValueError):
        season_of(13)
    with pytest.raises(ValueError):
        season_of(1, "east")


def test_a_users_vocabulary_file(tmp_path):
    path = tmp_path / "landcover.json"
    path.write_text(json.dumps({"biomes": {"cropland": ["crops", "Farm Land"], "urban": ["city"]}}))
    v = Vocabulary.load(path)
    assert v.biomes == ["cropland", "urban"]
    assert v.resolve("farm_land").biome == "cropland"
    assert v.resolve("CITY").how == "alias"
    assert v.resolve("forest") is None
    # A plain list of names is a vocabulary without aliases.
    path.write_text(json.dumps({"biomes": ["water", "ice"]}))
    assert Vocabulary.load(path).biomes == ["water", "ice"]


@pytest.mark.parametrize("content, message", [
    ("not json", "not valid JSON"),
    ('{"classes": []}', "needs a 'biomes' object"),
    ('{"biomes": {}}', "at least one biome"),
    ('{"biomes": {"a": ["x"], "b": ["X"]}}', "names two biomes"),
])
def test_bad_vocabulary_files_are_refused(tmp_path, content, message):
    path = tmp_path / "v.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=message):
        Vocabulary.load(path)


def test_missing_vocabulary_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="vocabulary file not found"):
        Vocabulary.load(tmp_path / "nope.json")


def test_to_json_round_trips(vocab):
    again = Vocabulary.from_mapping(vocab.to_json()["biomes"])
    assert again.biomes == vocab.biomes
    assert again.aliases == vocab.aliases


def test_folder_names_make_a_sorted_vocabulary():
    v = Vocabulary.from_names(["River", "AnnualCrop", "River", "Forest"])
    assert v.biomes == ["AnnualCrop", "Forest", "River"]
    assert v.resolve("annualcrop").biome == "AnnualCrop"


def test_an_ambiguous_close_spelling_is_refused():
    v = Vocabulary.from_mapping({"grassland": [], "grassbands": []})
    with pytest.raises(LabelError, match="ambiguous"):
        v.resolve("grassand")
