"""Tiles of the whole Earth: where they are cut, how they are labelled and split, and the command."""
import numpy as np
import pandas as pd
import pytest

from biomeseason.__main__ import main as cli
from biomeseason.earth import tiles as earth
from biomeseason.earth.worldmap import BIOMES, HEIGHT, OTHER, WATER, WIDTH


@pytest.mark.parametrize("size", [32, 64])
def test_tiles_lie_inside_one_block_each_with_a_gutter(size):
    origins = earth.tile_origins(size)
    for r, c in origins:   # at least 8 px from the block's edges on every side
        assert 8 <= r % earth.BLOCK <= earth.BLOCK - 8 - size and 8 <= c % earth.BLOCK <= earth.BLOCK - 8 - size
    assert len(origins) == (HEIGHT // earth.BLOCK) * (WIDTH // earth.BLOCK) * ((earth.BLOCK - 16) // size) ** 2


def toy_codes():
    codes = np.full((HEIGHT, WIDTH), WATER, np.uint8)
    codes[:, :1500] = 2                      # desert west of 80 W
    codes[:, 1500:1800] = OTHER              # land of none of the seven
    codes[:, 1650:1680] = 5                  # a strip of tundra in it
    return codes


def test_land_tiles_get_the_majority_biome_only_when_pure_and_the_mask_removes_tiles():
    mask = np.zeros((HEIGHT, WIDTH), np.uint8)
    mask[:, 600:750] = 255                   # a hidden block column
    places = earth.label_tiles(toy_codes(), mask, scales=(32,))
    assert set(places.loc[places["col"] < 1500, "biome"]) == {"desert"}
    assert not ((places["col"] + 32 > 600) & (places["col"] < 750)).any()     # nothing touches the mask
    assert (places["col"] < 1800).all()                                       # sea is not a tile
    impure = places[places["col"] >= 1500]
    assert (impure["biome"] == "").all() and (impure["purity"] < earth.PURITY).all()
    assert places["lat"].between(-90, 90).all() and places["lon"].between(-180, 180).all()


def test_blocks_split_whole_and_held_regions_go_to_test():
    places = earth.label_tiles(toy_codes(), np.zeros((HEIGHT, WIDTH), np.uint8), scales=(32, 64))
    held = {"box": (300, 300, 400, 400)}
    split = earth.assign_blocks(places, seed=0, held=held)
    free = split[split["region"] == ""]
    assert (free.groupby("block")["split"].nunique() == 1).all()
    assert set(split["split"]) == {"train", "val", "test"}
    near = split[(split["row"] < 415) & (split["row"] + split["scale"] > 285)
                 & (split["col"] < 415) & (split["col"] + split["scale"] > 285)]
    assert len(near) and (near["region"] == "box").all() and (near["split"] == "test").all()
    again = earth.assign_blocks(places, seed=0, held=held)
    assert again["split"].equals(split["split"])                             # deterministic for a seed


@pytest.mark.slow
def test_the_command_writes_tiles_a_labels_csv_preprocessing_reads_a_map_and_counts(tmp_path, capsys):
    from biomeseason.prepare.preprocess import preprocess

    out = tmp_path / "earth"
    assert cli(["earth", "--out", str(out), "--scales", "64", "--no-progress", "--astronaut-views", "5",
                "--hold-out-regions", str(earth.worldmap.ROOT / "data" / "bluemarble" / "labels.csv")]) == 0
    labels = pd.read_csv(out / "labels.csv", keep_default_na=False)
    assert list(labels.columns) == earth.COLUMNS
    views = labels[labels["path"].str.startswith("astronaut/")]
    assert len(views) == 5 and (views["split"] == "train").all() and views["group"].is_unique
    assert all((out / "raw" / path).is_file() for path in views["path"])
    labels = labels.drop(views.index)
    assert len(labels) == 12 * labels["group"].nunique() and set(labels["month"]) == set(range(1, 13))
    assert (labels.groupby("group")["split"].nunique() == 1).all()
    assert set(labels["biome"]) - {""} <= set(BIOMES) and (labels["biome"] != "").mean() > 0.6
    assert ((labels["biome"] == "") == (labels["purity"] < earth.PURITY)).all()
    assert (labels.loc[labels["region"] != "", "split"] == "test").all()
    assert (out / "label_map.png").stat().st_size > 10_000 and (out / "counts.csv").is_file()
    assert "next: python dataset_preproc.py" in capsys.readouterr().out
    result = preprocess(out / "raw", tmp_path / "processed", labels_csv=out / "labels.csv", size=64, workers=1,
                        progress=False)
    m = result.manifest
    assert len(m) == len(labels) + len(views) and result.rejected.empty
    given = pd.concat([labels, views]).set_index("path")["split"]
    assert (m["split"].to_numpy() == given.loc[m["source"]].to_numpy()).all()    # every tile kept its block's split


def test_training_views_may_show_only_training_blocks_and_never_a_held_region():
    places = earth.label_tiles(toy_codes(), np.zeros((HEIGHT, WIDTH), np.uint8), scales=(32,))
    held = {"box": (300, 300, 400, 400)}
    places = earth.assign_blocks(places, seed=0, held=held)
    allowed = earth.train_ground(places, held)
    for block, split in places.drop_duplicates("block").set_index("block")["block_split"].items():
        y, x = (int(v) * earth.BLOCK + earth.BLOCK // 2 for v in block[1:].split("-"))
        near_box = 300 - earth.MARGIN <= y < 400 + earth.MARGIN and 300 - earth.MARGIN <= x < 400 + earth.MARGIN
        assert allowed[y, x] == (split == "train" and not near_box), block
    assert allowed[:, 1800:].all()                                   # open sea: no tile, no split
    assert not allowed[300 - earth.MARGIN:400 + earth.MARGIN, 300 - earth.MARGIN:400 + earth.MARGIN].any()


def test_bad_settings_are_one_sentence(tmp_path, capsys):
    assert cli(["earth", "--out", str(tmp_path / "e"), "--scales", "200"]) == 2
    assert "--scales must lie within" in capsys.readouterr().err
    assert cli(["earth", "--out", str(tmp_path / "e"), "--astronaut-views", "-1"]) == 2
    assert "--astronaut-views must be 0 or more" in capsys.readouterr().err
    assert cli(["earth", "--out", str(tmp_path / "e"), "--maps", str(tmp_path)]) == 2
    assert "lacks" in capsys.readouterr().err


def small_shared(folder, per_region=6):
    """A few of the shared tiles (two regions), as data/bluemarble lays them out."""
    import shutil

    from biomeseason.training.ship import SHARED_TILES

    tiles = pd.read_csv(SHARED_TILES / "labels.csv")
    tiles = tiles[tiles["region"].isin(["sahara", "siberia"])].groupby("region").head(per_region)
    for path in tiles["path"]:
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(SHARED_TILES / path, folder / path)
    tiles.to_csv(folder / "labels.csv", index=False)
    return folder


def test_ship_scores_the_model_and_writes_it_small_with_its_prior_and_keeps_a_better_one(tmp_path, capsys):
    import torch
    from test_predict import make_checkpoint

    from biomeseason.model.checkpoint import load_checkpoint
    from biomeseason.predict.predictor import load_model

    shared = small_shared(tmp_path / "shared")
    first = make_checkpoint(tmp_path / "a.pt", month_frame="north", seed=0)
    out = tmp_path / "earth.pt"
    argv = ["ship", str(first), "--shared", str(shared), "--earth", "none", "--out", str(out)]
    assert cli(argv) == 0
    payload = load_checkpoint(out)
    assert all(v.dtype == torch.float16 for v in payload["model"].values() if v.is_floating_point())
    figures = payload["meta"]["earth"]["figures"]["shared_regions"]
    assert {(f["way"], f["region"]) for f in figures} >= {("image", "all"), ("place", "sahara"), ("lat", "siberia")}
    assert "tundra" in payload["meta"]["earth"]["rule"] and payload["meta"]["geo_prior"]
    predictor = load_model(out)
    assert predictor.geo is not None and next(predictor.model.parameters()).dtype == torch.float32
    assert predictor.predict(shared / pd.read_csv(shared / "labels.csv")["path"][0])[0].biome
    second = make_checkpoint(tmp_path / "b.pt", month_frame="north", seed=0)   # the same weights: a tie
    assert cli(["ship", str(second), "--shared", str(shared), "--earth", "none", "--out", str(out)]) == 2
    assert "kept the better one" in capsys.readouterr().err
    assert load_checkpoint(out)["meta"]["earth"]["trained_from"] == str(first)
    assert cli(["ship", str(second), "--shared", str(shared), "--earth", "none", "--out", str(out), "--force"]) == 0
    assert load_checkpoint(out)["meta"]["earth"]["trained_from"] == str(second)
    foreign = tmp_path / "notes.pt"
    foreign.write_text("not a model")
    assert cli(["ship", str(second), "--shared", str(shared), "--earth", "none", "--out", str(foreign)]) == 2
    assert foreign.read_text() == "not a model"


def test_ship_learns_how_far_to_trust_the_image_on_the_validation_blocks_only(tmp_path, monkeypatch):
    import shutil

    from test_predict import make_checkpoint

    from biomeseason.model.checkpoint import load_checkpoint
    from biomeseason.predict.predictor import load_model
    from biomeseason.training import ship

    shared = small_shared(tmp_path / "shared", per_region=4)
    earth = tmp_path / "earth"
    tiles = pd.read_csv(shared / "labels.csv")
    for path in tiles["path"]:
        (earth / "raw" / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(shared / path, earth / "raw" / path)
    # Half the places validate, half test; the held-out regions' own tiles (region set) are neither.
    tiles["split"] = ["val" if i % 2 else "test" for i in range(len(tiles))]
    tiles["region"] = ""
    tiles.to_csv(earth / "labels.csv", index=False)
    seen = []
    real_fit = ship.fit_image_weight
    monkeypatch.setattr(ship, "fit_image_weight", lambda p, e, **k: seen.append(e) or real_fit(p, e, **k))
    model = make_checkpoint(tmp_path / "m.pt", month_frame="north", seed=1)
    out = tmp_path / "earth.pt"
    assert cli(["ship", str(model), "--shared", str(shared), "--earth", str(earth), "--out", str(out)]) == 0
    meta = load_checkpoint(out)["meta"]
    rule = meta["geo_prior"]["image_weight"]
    n_val = int((tiles["split"] == "val").sum())
    assert seen == [earth] and rule["images"] == n_val * (1 + len(ship.WEIGHT_CAMERAS))
    assert 0 < rule["weight"] <= 2 and meta["km_per_pixel"] == 7.4
    assert load_model(out).geo.image_weight == rule
    from biomeseason.earth import geoprior
    assert geoprior.for_biomes(meta["biomes"])[0].image_weight is None   # the cached prior was not changed
    assert {f["way"] for f in meta["earth"]["figures"]["test_blocks"]} == {"image", "map", "lat", "place"}


def test_a_new_model_must_be_no_worse_either_way_and_better_in_one():
    from biomeseason.training.ship import beats

    old = {"image": 0.70, "place": 0.95}
    assert beats({"image": 0.70, "place": 0.97}, old) and beats({"image": 0.72, "place": 0.95}, old)
    assert not beats({"image": 0.70, "place": 0.95}, old)                   # a tie keeps the one shipped
    assert not beats({"image": 0.80, "place": 0.94}, old)                   # better alone, worse with the place
    assert beats({"image": 0.71, "place": 0.90}, {"image": 0.70})           # an older model measured one way


def test_a_photo_kind_must_win_more_tiles_than_chance_allows_and_lose_no_more_than_chance_allows():
    from types import SimpleNamespace

    from biomeseason.training.ship import beats_paired, paired

    biomes = ["desert", "tundra"]
    answers = lambda right: pd.DataFrame({"biome": ["desert"] * len(right), "p_desert": np.where(right, 0.9, 0.1),
                                          "p_tundra": np.where(right, 0.1, 0.9), "lat": 20.0, "lon": 10.0})
    model = SimpleNamespace(biomes=biomes, geo=None)
    old = np.array([True] * 500 + [False] * 500)
    many = old.copy()
    many[500:560] = True                                       # 60 won, none lost
    test = paired((model, answers(many)), (model, answers(old)), ways=("image",))
    assert test["image"]["won"] == 60 and test["image"]["lost"] == 0 and beats_paired(test)
    # the log losses beside them: -ln 0.9 on a right tile, -ln 0.1 on a wrong one
    assert test["image"]["nll_old"] == pytest.approx(-(np.log(0.9) + np.log(0.1)) / 2)
    assert test["image"]["nll_new"] < test["image"]["nll_old"] and test["image"]["nll_better"] < 1e-6
    assert paired((model, answers(old)), (model, answers(old)), ways=("image",))["image"]["nll_better"] == 1.0
    few = old.copy()
    few[500:503] = True                                        # 3 won: chance could do as much
    assert not beats_paired(paired((model, answers(few)), (model, answers(old)), ways=("image",)))
    worse = {"image": test["image"], "place": {"won": 0, "lost": 40, "better": 1.0, "worse": 1e-12}}
    assert not beats_paired(worse)
    tied = {"image": test["image"], "place": {"won": 10, "lost": 12, "better": 0.74, "worse": 0.42}}
    assert beats_paired(tied)                                  # two tiles either way are noise


def test_ship_base_writes_one_file_of_two_kinds_and_refuses_a_model_that_is_not_a_kind_of_it(tmp_path, capsys):
    import shutil

    import torch
    from test_kinds import photo_of
    from test_predict import make_checkpoint, random_image

    from biomeseason.model.checkpoint import load_checkpoint
    from biomeseason.predict.predictor import load_model

    shared = small_shared(tmp_path / "shared", per_region=3)
    out = tmp_path / "earth.pt"
    base = make_checkpoint(tmp_path / "base.pt", month_frame="north", seed=0)
    assert cli(["ship", str(base), "--shared", str(shared), "--earth", "none", "--out", str(out)]) == 0
    before = load_checkpoint(out)
    moved = photo_of(base, tmp_path / "moved.pt", shared_too=True)
    argv = ["--shared", str(shared), "--earth", "none", "--base", str(out), "--out", str(out)]
    assert cli(["ship", str(moved), *argv]) == 2
    assert "cannot be the photo kind" in capsys.readouterr().err and load_checkpoint(out)["digest"] == before["digest"]
    same = photo_of(base, tmp_path / "same.pt", scale=0.0)    # answers as the base does: not better
    assert cli(["ship", str(same), *argv]) == 2
    assert "0 tiles won, 0 lost" in capsys.readouterr().err and load_checkpoint(out)["digest"] == before["digest"]
    photo = photo_of(base, tmp_path / "photo.pt")
    assert cli(["ship", str(photo), *argv, "--force"]) == 0   # the base is --out itself: it stays in it
    payload = load_checkpoint(out)
    figures = payload["meta"]["kinds"]["photo"]["earth"]["figures"]["shared_cameras"]
    assert {f["region"] for f in figures} == {"all", "l2a", "l1c", "astronaut"}
    assert all(v.dtype == torch.float16 for k, v in payload["extra"].items()
               if k.startswith("kind.photo.model.") and v.is_floating_point())
    assert "familiarity.features.precision" not in payload["extra"]
    images = [random_image(seed=s) for s in range(3)]
    shutil.copy(out, tmp_path / "both.pt")
    composite = [r.biome_probs for r in load_model(out, camera="composite").predict(images)]
    capsys.readouterr()
    assert cli(["ship", str(base), "--shared", str(shared), "--earth", "none", "--out", str(out), "--force"]) == 0
    assert "is not carried over" in capsys.readouterr().out
    assert composite == [r.biome_probs for r in load_model(out).predict(images)]   # as the base alone, shipped
    assert load_model(tmp_path / "both.pt").camera == "photo" and load_model(out).camera is None
