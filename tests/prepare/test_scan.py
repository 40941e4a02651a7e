"""Labels from where files sit and what they carry: folders at any depth, names, EXIF, a labels CSV."""
from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest
from PIL import Image
from test_preprocess import RUN, photo, save

from biomeseason.labels import LabelError, Vocabulary
from biomeseason.prepare import preprocess as pp
from biomeseason.prepare.scan import given_split, labels_from_path


@pytest.fixture(scope="module")
def vocab():
    return Vocabulary.load()


@pytest.mark.parametrize("path, split, biome, month, month_source", [
    ("Boreal/Jun/x.jpg", "", "boreal_forest", 6, "folder"),
    ("taiga/06/x.jpg", "", "boreal_forest", 6, "folder"),
    ("Boreal/x.jpg", "", "boreal_forest", None, ""),
    ("Boreal/Boreal_Jul_0001.jpg", "", "boreal_forest", 7, "name"),   # the name gives the month
    ("Boreal/img_7.jpg", "", "boreal_forest", None, ""),              # a number is an index here
    ("batch1/DV_Sept.jpg", "", "desert", 9, "name"),                  # a grouping folder
    ("DV_Sept.jpg", "", "desert", 9, "name"),
    ("Boreal/batch1/Boreal_x_Jan.png", "", "boreal_forest", 1, "name"),   # neither split, class nor month
    ("Boreal/Jun/deep/x.jpg", "", "boreal_forest", 6, "folder"),
    ("Image Data/Train/Boreal/x.jpg", "train", "boreal_forest", None, ""),  # a wrapper above the split
    ("a/b/c/TEST/Tundra/Tundra_Mar.jpg", "test", "tundra", 3, "name"),
    ("Data/Validation/USGrass/May/x.jpg", "val", "temperate_grassland", 5, "folder"),
    ("VALID/DV_Sept.jpg", "val", "desert", 9, "name"),
])
def test_labels_and_splits_from_any_depth(vocab, path, split, biome, month, month_source):
    got_split, label, source = labels_from_path(path, vocab)
    assert (got_split, label.biome, label.month, source) == (split, biome, month, month_source)


@pytest.mark.parametrize("path, reason", [
    ("Boreal/Tundra_Jan.jpg", "folder says boreal_forest but the file name says tundra"),
    ("Nowhere/x.jpg", "folder 'Nowhere' is not a known biome"),
    ("Nowhere/Jun/x.jpg", "folder 'Nowhere' is not a known biome"),
    ("Boreal/Tundra/x.jpg", "folders name two biomes"),
])
def test_unreadable_paths_are_rejected_with_the_reason(vocab, path, reason):
    with pytest.raises(LabelError, match=reason):
        labels_from_path(path, vocab)


def test_a_file_named_like_a_split_is_not_a_split():
    assert given_split("Boreal/test") == ("", ["Boreal", "test"])


def test_wrapper_folders_with_only_train_and_test_get_a_val_split_by_group(tmp_path):
    raw = tmp_path / "raw"
    for i in range(20):
        save(photo(700 + i), raw / "Image Data" / "Train" / ["Boreal", "Tundra"][i % 2] / f"x{i}.jpg")
    for i in range(4):
        save(photo(730 + i), raw / "Image Data" / "TEST" / ["Boreal", "Tundra"][i % 2] / f"y{i}.jpg")
    result = pp.preprocess(raw, tmp_path / "out", **RUN)
    assert result.rejected.empty
    table = result.manifest.set_index("source")
    assert (table.filter(like="/TEST/", axis=0)["split"] == "test").all()
    train_given = table.filter(like="/Train/", axis=0)["split"]
    assert set(train_given) == {"train", "val"}
    assert 2 <= (train_given == "val").sum() <= 4       # about 15% of 20, per biome
    assert set(table["biome"]) == {"boreal_forest", "tundra"}


def test_split_folders_are_kept_and_copies_follow_the_held_out_split(tmp_path):
    raw = tmp_path / "raw"
    for i in range(4):
        save(photo(200 + i), raw / "train" / "Boreal" / f"a{i}.jpg")
    save(photo(210), raw / "val" / "Boreal" / "b.jpg")
    save(photo(211), raw / "test" / "Boreal" / "c.jpg")
    shutil.copyfile(raw / "test" / "Boreal" / "c.jpg", raw / "train" / "Boreal" / "leak.jpg")
    save(photo(212, (96, 72)), raw / "train" / "Tundra" / "d.jpg", quality=95)
    save(photo(212, (64, 48)), raw / "val" / "Tundra" / "d_small.jpg", quality=70)
    result = pp.preprocess(raw, tmp_path / "out", **RUN)
    table = result.manifest.set_index("source")
    assert table.loc["val/Boreal/b.jpg", "split"] == "val"
    assert table.loc["test/Boreal/c.jpg", "split"] == "test"
    assert (table.loc[[f"train/Boreal/a{i}.jpg" for i in range(4)], "split"] == "train").all()
    # Near duplicates: both kept, one group, the held-out split of the two.
    assert table.loc["train/Tundra/d.jpg", "group"] == table.loc["val/Tundra/d_small.jpg", "group"]
    assert table.loc["train/Tundra/d.jpg", "split"] == table.loc["val/Tundra/d_small.jpg", "split"] == "val"
    assert "moved from train to val with its group" in table.loc["train/Tundra/d.jpg", "note"]
    assert dict(zip(result.rejected["source"], result.rejected["reason"])) == {
        "train/Boreal/leak.jpg": "duplicate of test/Boreal/c.jpg (identical bytes)"}


def test_drop_near_duplicates_keeps_the_old_behaviour(tmp_path):
    raw = tmp_path / "raw"
    save(photo(212, (96, 72)), raw / "Tundra_Jun_big.jpg", quality=95)
    save(photo(212, (64, 48)), raw / "Tundra_Jun_small.jpg", quality=70)
    save(photo(213, (96, 72)), raw / "Tundra_Jul.jpg", quality=95)
    save(photo(213, (64, 48)), raw / "Boreal_Jul.jpg", quality=70)
    result = pp.preprocess(raw, tmp_path / "out", drop_near_duplicates=True, **RUN)
    assert list(result.manifest["source"]) == ["Tundra_Jun_big.jpg"]
    rejected = dict(zip(result.rejected["source"], result.rejected["reason"]))
    assert rejected["Tundra_Jun_small.jpg"] == "duplicate of Tundra_Jun_big.jpg (near-identical)"
    assert rejected["Tundra_Jul.jpg"].startswith("duplicates with conflicting labels")
    assert rejected["Boreal_Jul.jpg"].startswith("duplicates with conflicting labels")
    grouped = pp.preprocess(raw, tmp_path / "grouped", **RUN)
    assert len(grouped.manifest) == 4 and grouped.manifest["group"].nunique() == 2


def test_vocab_folders_takes_the_classes_from_folder_names(tmp_path):
    raw = tmp_path / "raw"
    for i, path in enumerate(["train/AnnualCrop/AnnualCrop_1.jpg", "train/River/River_2.jpg",
                              "test/River/River_3.jpg", "test/Forest/Forest_12.jpg", "loose_Jan.jpg",
                              "Wrapper/Test/Forest/Forest_13.jpg"]):
        save(photo(300 + i), raw / path)
    result = pp.preprocess(raw, tmp_path / "out", vocab="folders", **RUN)
    labels = json.loads((tmp_path / "out" / "labels.json").read_text())
    assert labels["biomes"] == ["AnnualCrop", "Forest", "River"]
    table = result.manifest.set_index("source")
    assert table.loc["train/River/River_2.jpg", "biome"] == "River"
    assert table.loc["Wrapper/Test/Forest/Forest_13.jpg", "split"] == "test"
    assert table["month"].isna().all()                 # picture numbers are not months
    assert list(result.rejected["source"]) == ["loose_Jan.jpg"]


def _with_exif(path, when=None, latitude=None):
    exif = Image.Exif()
    if when:
        exif.get_ifd(0x8769)[0x9003] = when
    if latitude is not None:
        gps = exif.get_ifd(0x8825)
        gps[1] = "S" if latitude < 0 else "N"
        gps[2] = (float(abs(latitude)), 0.0, 0.0)
    save(photo(hash(path.name) % 1000), path, exif=exif.tobytes(), quality=95)


def test_exif_gives_the_month_and_the_hemisphere(tmp_path):
    raw = tmp_path / "raw"
    _with_exif(raw / "Boreal" / "north.jpg", "2021:07:14 10:00:00", 60)
    _with_exif(raw / "Boreal" / "south.jpg", "2021:07:14 10:00:00", -33)
    _with_exif(raw / "Boreal" / "Boreal_x_Jan.jpg", "2021:07:14 10:00:00")    # the name wins over EXIF
    _with_exif(raw / "Boreal" / "unset.jpg", "0000:00:00 00:00:00")
    table = pp.preprocess(raw, tmp_path / "out", **RUN).manifest.set_index("source")
    assert tuple(table.loc["Boreal/north.jpg", ["month", "month_source", "hemisphere", "season"]]) == \
        (7, "exif", "north", "summer")
    assert tuple(table.loc["Boreal/south.jpg", ["month", "month_source", "hemisphere", "season"]]) == \
        (7, "exif", "south", "winter")
    assert tuple(table.loc["Boreal/Boreal_x_Jan.jpg", ["month", "month_source"]]) == (1, "name")
    assert table.loc["Boreal/unset.jpg", "month"] is pd.NA
    assert table.loc["Boreal/unset.jpg", "month_source"] == ""
    # The GPS latitude itself is kept, for training's latitude prior; blank where there is none.
    assert float(table.loc["Boreal/south.jpg", "lat"]) == pytest.approx(-33.0)
    assert float(table.loc["Boreal/north.jpg", "lat"]) == pytest.approx(60.0)
    assert table.loc["Boreal/unset.jpg", "lat"] in ("", None) or pd.isna(table.loc["Boreal/unset.jpg", "lat"])


def test_labels_csv_groups_splits_latitude_and_other_columns(tmp_path):
    raw = tmp_path / "raw"
    rows = ["path,biome,month,group,split,lat,lon,region,tile_id"]
    for i in range(24):
        save(photo(800 + i), raw / f"t{i}.png")
        place = i // 6
        split = "test" if place == 3 and i % 6 == 0 else ""       # one given split pulls its place along
        lat = -20.5 if place == 2 else 45
        rows.append(f"t{i}.png,{['Boreal', 'DV'][place % 2]},{i % 6 + 1},place{place},{split},{lat},3.5,"
                    f"r{place % 2},tile{place}")
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    result = pp.preprocess(raw, tmp_path / "out", labels_csv=tmp_path / "labels.csv", **RUN)
    table = result.manifest
    assert result.rejected.empty and len(table) == 24
    assert (table.groupby("group")["split"].nunique() == 1).all()       # no group straddles
    assert set(table.loc[table["group"] == "place3", "split"]) == {"test"}
    assert set(table.loc[table["group"] == "place2", "hemisphere"]) == {"south"}
    assert set(table.loc[table["group"] != "place2", "hemisphere"]) == {"north"}
    assert list(table.columns[-4:]) == ["lat", "lon", "region", "tile_id"]
    assert table.set_index("source").loc["t13.png", "tile_id"] == "tile2"
    south_jan = table[(table["group"] == "place2") & (table["month"] == 1)]
    assert list(south_jan["season"]) == ["summer"]


def test_synthetic_scenes_in_a_subfolder_join_the_data_and_their_contact_sheet_is_set_aside(tmp_path):
    """`synth --out data/raw/synthetic` beside a user's images: the scenes are labelled by their names, the
    contact sheet synth wrote is ignored (said so in rejected.csv), a user's file of that name is not."""
    from biomeseason.synthetic import generate as synthetic

    raw = tmp_path / "raw"
    synthetic.write_scenes(raw / "synthetic", per_class=1, size=32, biomes=["tundra"], months=[1, 7],
                           progress=False)
    save(photo(1), raw / "mine" / "contact_sheet_mine.png")
    pp.preprocess(raw=raw, out=tmp_path / "out", size=32, workers=1, progress=False)
    m = pd.read_csv(tmp_path / "out" / "manifest.csv", dtype=str, keep_default_na=False)
    r = pd.read_csv(tmp_path / "out" / "rejected.csv", dtype=str, keep_default_na=False).set_index("source")
    assert len(m) == 2 and set(m["biome"]) == {"tundra"} and sorted(m["month"]) == ["1", "7"]
    assert r.loc["synthetic/contact_sheet_mixed.png", "reason"] == "ignored: contact sheet of synthetic scenes"
    assert r.loc["mine/contact_sheet_mine.png", "reason"].startswith("label:")


def test_synthetic_scenes_join_a_data_set_labelled_by_a_csv(tmp_path):
    """A user's real photos labelled by a CSV, and `synth --out raw/synthetic` beside them (twice, into the
    same folder): the scenes are labelled from synth's scenes.csv, a domain column says which are which;
    a file of the user's that neither lists stays rejected, in synth's folder or not."""
    from biomeseason.synthetic import generate as synthetic

    raw = tmp_path / "raw"
    for i in range(4):
        save(photo(i), raw / "photos" / f"p{i}.jpg")
    save(photo(9), raw / "photos" / "forgotten.jpg")
    synthetic.write_scenes(raw / "synthetic", per_class=1, size=32, biomes=["tundra"], months=[1, 7],
                           progress=False)
    synthetic.write_scenes(raw / "synthetic", per_class=1, size=32, biomes=["desert"], months=[3],
                           progress=False)
    save(photo(8), raw / "synthetic" / "stray.jpg")
    pd.DataFrame({"path": [f"photos/p{i}.jpg" for i in range(4)], "biome": ["Boreal"] * 4,
                  "month": ["Jan", "Apr", "Jul", "Oct"], "domain": "real"}).to_csv(tmp_path / "labels.csv",
                                                                                 index=False)
    result = pp.preprocess(raw=raw, out=tmp_path / "out", labels_csv=tmp_path / "labels.csv", size=32,
                           workers=1, progress=False)
    m = result.manifest.set_index("source")
    r = result.rejected.set_index("source")
    scenes = m[m.index.str.startswith("synthetic/")]
    assert len(m) == 7 and len(scenes) == 3
    assert sorted(zip(scenes["biome"], scenes["month"].astype(int))) == [("desert", 3), ("tundra", 1),
                                                                          ("tundra", 7)]
    assert set(scenes["domain"]) == {"synthetic"} and set(m.loc[m.index.str.startswith("photos/"), "domain"]) \
        == {"real"}
    assert set(scenes["month_source"]) == {"csv"}
    assert r.loc["photos/forgotten.jpg", "reason"] == "label: not listed in the labels CSV"
    assert r.loc["synthetic/stray.jpg", "reason"] == "label: not listed in the labels CSV"
    assert r.loc["synthetic/scenes.csv", "reason"] == "ignored: list of synthetic scenes"
    assert "3 synthetic scene(s) that the labels CSV does not list" in result.summary
