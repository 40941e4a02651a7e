"""The demo: its run folder rules, and the whole chain in smoke mode (slow: three notebooks)."""
import csv
import subprocess

import pytest

from biomeseason import demo
from biomeseason.__main__ import main as cli
from biomeseason.io import files
from biomeseason.io.files import UsageError
from biomeseason.prepare.manifest import read_manifest


def test_the_demo_refuses_a_folder_it_did_not_make(tmp_path, python):
    (tmp_path / "thesis.docx").write_text("precious")
    with pytest.raises(UsageError, match="--force"):
        demo.prepare_out(tmp_path)
    run = subprocess.run([python, "-m", "biomeseason", "demo", "--out", str(tmp_path), "--smoke"],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 2 and "Traceback" not in run.stderr and "--force" in run.stderr
    assert (tmp_path / "thesis.docx").read_text() == "precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["thesis.docx"]


def test_a_second_run_deletes_only_its_own_generated_folders(tmp_path):
    demo.prepare_out(tmp_path)
    raw = files.claim_dir(tmp_path / "raw")
    (raw / "Boreal_Jan_0099.jpg").write_bytes(b"old")
    (tmp_path / "plots").mkdir()                      # a folder of the user's, with a name we use
    (tmp_path / "plots" / "mine.png").write_bytes(b"kept")
    (tmp_path / "my_notes.txt").write_text("kept")
    demo.prepare_out(tmp_path)
    assert not raw.exists()
    assert (tmp_path / "my_notes.txt").read_text() == "kept"
    assert (tmp_path / "plots" / "mine.png").read_bytes() == b"kept"


@pytest.mark.parametrize("flag", ["--per-class=0", "--epochs=0", "--image-size=8"])
def test_bad_settings_are_refused_before_any_work(tmp_path, python, flag):
    out = tmp_path / "demo"
    run = subprocess.run([python, "-m", "biomeseason", "demo", "--out", str(out), flag],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert flag.split("=")[0] in run.stderr
    assert not out.exists()


def test_the_heldout_scene_is_named_by_its_labels_and_not_a_training_scene(tmp_path):
    from PIL import Image

    from biomeseason.synthetic.generate import write_scenes

    path = demo.write_heldout(tmp_path, size=64)
    assert path.name == "Deciduous_Oct.jpg"
    [training] = write_scenes(tmp_path / "raw", per_class=1, size=64, biomes=[demo.HELDOUT[0]],
                              months=[demo.HELDOUT[1]], progress=False)
    assert Image.open(path).size == (64, 64)
    assert Image.open(path).tobytes() != Image.open(training).tobytes()


def test_real_tiles_split_by_region_and_place_with_whole_regions_held_out_for_test():
    import pandas as pd

    from biomeseason.synthetic.realstats import CALIBRATION_REGIONS

    tiles = pd.read_csv(demo.REAL / "labels.csv")
    split = demo.real_split(tiles, seed=0)
    assert len(split) == len(tiles) == 3516                        # every shipped tile is used
    assert split.groupby("group")["split"].nunique().max() == 1     # a place never straddles two splits
    assert split.groupby("region")["split"].apply(lambda s: set(s) <= {"train", "val"} or set(s) == {"test"}).all()
    test_regions = set(split.loc[split["split"] == "test", "region"])
    assert test_regions and not test_regions & set(CALIBRATION_REGIONS)
    assert 0.10 < (split.loc[split["region"].isin(CALIBRATION_REGIONS), "split"] == "val").mean() < 0.20
    assert split.equals(demo.real_split(tiles, seed=0))             # the same split every run
    smoke = demo.real_split(tiles, seed=0, smoke=True)
    assert smoke.groupby("region")["group"].nunique().eq(1).all() and len(smoke) == 12 * tiles["region"].nunique()


def test_the_shipped_tiles_are_all_there_and_small():
    import pandas as pd

    tiles = pd.read_csv(demo.REAL / "labels.csv")
    assert all((demo.REAL / p).is_file() for p in tiles["path"])
    assert sum(f.stat().st_size for f in demo.REAL.rglob("*") if f.is_file()) < 15e6


def test_training_data_takes_the_tiles_from_the_folder_given(tmp_path, monkeypatch):
    """The real tiles are copied from ``tiles_dir`` (a bench passes ../shared's), labelled with their
    domain, region split and place; the folder given is left as it was."""
    import numpy as np
    import pandas as pd
    from PIL import Image

    from biomeseason.synthetic import generate as synthetic

    tiles = tmp_path / "tiles"
    rows = []
    for region, lat in (("congo", 0.5), ("amazon", -3.0)):        # a calibration region and a test one
        for place in range(2):
            for month in (1, 7):
                path = f"{region}/{region}_{place}_{month:02d}.png"
                (tiles / region).mkdir(parents=True, exist_ok=True)
                Image.fromarray(np.full((8, 8, 3), 40 * place + month, np.uint8)).save(tiles / path)
                rows.append({"path": path, "biome": "tropical_rainforest", "month": month, "region": region,
                             "group": f"{region}-{place}", "tile_id": f"{region}-{place}", "lat": lat, "lon": 0})
    pd.DataFrame(rows).to_csv(tiles / "labels.csv", index=False)
    before = {p: p.read_bytes() for p in tiles.rglob("*") if p.is_file()}
    monkeypatch.setattr(synthetic, "write_scenes", lambda out, **kw: [])   # the tiles are what is tested
    labels_csv = demo.write_training_data(tmp_path / "out", per_class=1, seed=0, real=True, smoke=False,
                                          tiles_dir=tiles)
    table = pd.read_csv(labels_csv)
    assert sorted(table["path"]) == sorted("bluemarble/" + r["path"] for r in rows)
    assert set(table["domain"]) == {"real"}
    assert set(table.loc[table["region"] == "amazon", "split"]) == {"test"}
    assert set(table.loc[table["region"] == "congo", "split"]) <= {"train", "val"}
    for r in rows:
        assert (tmp_path / "out" / "raw" / "bluemarble" / r["path"]).read_bytes() == (tiles / r["path"]).read_bytes()
    assert before == {p: p.read_bytes() for p in tiles.rglob("*") if p.is_file()}


@pytest.mark.slow
def test_smoke_demo_runs_the_whole_chain(tmp_path, capsys):
    out = tmp_path / "demo"
    assert cli(["demo", "--out", str(out), "--smoke"]) == 0
    printed = capsys.readouterr().out
    for n in range(1, demo.STEPS + 1):
        assert f"[{n}/{demo.STEPS}]" in printed
    from conftest import assert_clean_notebook

    for name in ("train.ipynb", "predict.ipynb", "hex2name.ipynb"):
        assert_clean_notebook(out / "notebooks" / name)
    assert (out / "colors.csv").is_file()  # hex2name.ipynb wrote inside the run folder
    assert "epoch   1" in printed           # the notebook's training lines reach the terminal
    assert (out / "model" / "best.pt").is_file()
    assert (out / "plots" / "heldout_prediction.png").is_file()
    with open(out / "predictions.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    manifest = read_manifest(out / "processed")
    assert len(rows) == (manifest["split"] == "test").sum() > 0
    assert {"true_biome", "true_month", "biome", "month", "domain"} <= set(rows[0])
    # Real tiles train beside the scenes; whole regions of them are the real test split.
    real = manifest[manifest["domain"] == "real"]
    assert set(real["split"]) == {"train", "val", "test"}
    held = set(real.loc[real["split"] == "test", "region"])
    assert held and not held & set(real.loc[real["split"] != "test", "region"])
    assert (real["hemisphere"] == "south").any() and (manifest["domain"] == "synthetic").any()
    with open(out / "test_by_domain.csv", newline="") as f:
        by_domain = {row["domain"]: row for row in csv.DictReader(f)}
    assert set(by_domain) == {"real", "synthetic"}
    assert int(by_domain["real"]["images"]) == (real["split"] == "test").sum()
    assert "real: " in printed and "synthetic: " in printed
    for where in ("executed notebooks:", "model:", "plots:", "predictions:"):
        assert where in printed


def test_without_the_notebooks_extra_the_demo_says_what_to_install_before_any_work(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(demo, "missing_notebook_modules", lambda: ["papermill"])
    assert cli(["demo", "--out", str(tmp_path / "demo")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install 'biomeseason[notebooks]'" in err and "papermill" in err
    assert not (tmp_path / "demo").exists()
    monkeypatch.undo()
    assert demo.missing_notebook_modules() == []          # the test environment has them
