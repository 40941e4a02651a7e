"""The demo: its run folder rules, and the whole chain in smoke mode (slow: three notebooks)."""
import csv
import subprocess

import pytest

from biomeseason import demo, files
from biomeseason.__main__ import main as cli
from biomeseason.files import UsageError
from biomeseason.manifest import read_manifest


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
