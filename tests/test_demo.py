"""The demo: its run folder rules, and the whole chain in smoke mode (slow: three notebooks)."""
import csv

import pytest

from biomeseason import demo
from biomeseason.__main__ import main as cli
from biomeseason.data import read_manifest


def test_the_demo_refuses_a_folder_it_did_not_make(tmp_path):
    (tmp_path / "thesis.docx").write_text("precious")
    with pytest.raises(SystemExit, match="not made by"):
        demo.prepare_out(tmp_path)
    assert (tmp_path / "thesis.docx").exists()


def test_a_second_run_starts_from_clean_generated_folders(tmp_path):
    demo.prepare_out(tmp_path)
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "Boreal_Jan_0099.jpg").write_bytes(b"old")
    (tmp_path / "my_notes.txt").write_text("kept")
    demo.prepare_out(tmp_path)
    assert not (tmp_path / "raw").exists()
    assert (tmp_path / "my_notes.txt").read_text() == "kept"


def test_the_heldout_scene_is_named_by_its_labels_and_not_a_training_scene(tmp_path):
    from PIL import Image

    from biomeseason.synthetic import write_scenes

    path = demo.write_heldout(tmp_path, size=64)
    assert path.name == "Deciduous_Oct.jpg"
    [training] = write_scenes(tmp_path / "raw", per_class=1, size=64, biomes=[demo.HELDOUT[0]],
                              months=[demo.HELDOUT[1]], progress=False)
    assert Image.open(path).size == (64, 64)
    assert Image.open(path).tobytes() != Image.open(training).tobytes()


@pytest.mark.slow
def test_smoke_demo_runs_the_whole_chain(tmp_path, capsys):
    out = tmp_path / "demo"
    assert cli(["demo", "--out", str(out), "--smoke"]) == 0
    printed = capsys.readouterr().out
    for n in range(1, demo.STEPS + 1):
        assert f"[{n}/{demo.STEPS}]" in printed
    for name in ("train.ipynb", "predict.ipynb", "hex2name.ipynb"):
        assert (out / "notebooks" / name).is_file()
    assert (out / "colors.csv").is_file()  # hex2name.ipynb wrote inside the run folder
    assert "epoch   1" in printed           # the notebook's training lines reach the terminal
    assert (out / "model" / "best.pt").is_file()
    assert (out / "plots" / "heldout_prediction.png").is_file()
    with open(out / "predictions.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    manifest = read_manifest(out / "processed")
    assert len(rows) == (manifest["split"] == "test").sum() > 0
    assert {"true_biome", "true_month", "biome", "month"} <= set(rows[0])
    for where in ("executed notebooks:", "model:", "plots:", "predictions:"):
        assert where in printed
