"""Training end to end on a tiny processed data set (CPU, 32 px)."""
import json
import os
import shutil
import subprocess
import sys

import pandas as pd
import pytest
import torch

from biomeseason import train
from biomeseason.checkpoint import load_checkpoint
from biomeseason.data import manifest_sha256, read_manifest
from biomeseason.train import TrainConfig, fit

TIMING = ["seconds", "images_per_s", "data_wait_share"]


def cfg(processed, out, **kw):
    settings = dict(data=str(processed), out=str(out), image_size=32, epochs=2, batch_size=16,
                    lr=2e-3, progress=False)
    settings.update(kw)
    return TrainConfig.from_dict(settings)


@pytest.fixture(scope="module")
def trained(tiny_processed, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    return fit(cfg(tiny_processed, out))


def test_a_run_writes_checkpoints_metrics_and_plots(trained, tiny_processed):
    out = trained.out
    for name in ["last.pt", "best.pt", "config.json", "history.csv", "metrics.json", "curves.png",
                 "confusion_biome.png", "confusion_month.png", "confused_pairs.csv",
                 "report_biome.csv", "report_month.csv", "test_predictions.csv"]:
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ["biome_acc", "biome_f1", "month_acc", "month_within1", "month_mae", "season_acc"]:
        assert 0 <= metrics["test"][key] <= (12 if key == "month_mae" else 1)
    meta = load_checkpoint(out / "best.pt")["meta"]
    assert meta["manifest_sha256"] == manifest_sha256(tiny_processed)
    assert meta["biomes"] == json.loads((tiny_processed / "labels.json").read_text())["biomes"]
    assert meta["image_size"] == 32 and meta["arch"] == "resnet18"
    history = pd.read_csv(out / "history.csv")
    assert list(history["epoch"]) == [1, 2]
    predictions = pd.read_csv(out / "test_predictions.csv")
    assert len(predictions) == (read_manifest(tiny_processed)["split"] == "test").sum()


def test_same_seed_gives_the_same_metrics(trained, tiny_processed, tmp_path):
    again = fit(cfg(tiny_processed, tmp_path))
    assert again.metrics == trained.metrics
    pd.testing.assert_frame_equal(again.history.drop(columns=TIMING), trained.history.drop(columns=TIMING))


def test_resume_after_an_interruption_matches_an_uninterrupted_run(trained, tiny_processed, tmp_path,
                                                                   monkeypatch):
    real = train.train_one_epoch

    def interrupted(*args, **kwargs):
        if args[6] == 1:  # the second epoch
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(train, "train_one_epoch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        fit(cfg(tiny_processed, tmp_path))
    assert load_checkpoint(tmp_path / "last.pt")["meta"]["epoch"] == 1
    monkeypatch.setattr(train, "train_one_epoch", real)
    resumed = fit(cfg(tiny_processed, tmp_path, resume=True))
    a = load_checkpoint(trained.out / "last.pt")["model"]
    b = load_checkpoint(tmp_path / "last.pt")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert resumed.metrics == trained.metrics
    with pytest.raises(ValueError, match="cannot resume: lr"):
        fit(cfg(tiny_processed, tmp_path, resume=True, lr=1e-2))


def test_eval_only_reproduces_the_stored_metrics(trained, tiny_processed):
    shadow = trained.out.parent / "eval"
    shutil.copytree(trained.out, shadow)
    result = fit(cfg(tiny_processed, shadow, eval_only=True))
    assert result.metrics == trained.metrics


def test_a_biome_only_data_set_trains_and_month_metrics_are_na(tiny_processed, tmp_path):
    data = tmp_path / "biome_only"
    shutil.copytree(tiny_processed, data)
    manifest = pd.read_csv(data / "manifest.csv", keep_default_na=False)
    manifest["month"], manifest["season"] = "", ""
    manifest.to_csv(data / "manifest.csv", index=False)
    result = fit(cfg(data, tmp_path / "out", epochs=1))
    assert result.metrics["test"]["month_acc"] is None
    assert result.metrics["test"]["biome_acc"] is not None
    assert not (tmp_path / "out" / "confusion_month.png").exists()


@pytest.mark.parametrize("balance", ["weights", "sampler"])
def test_class_balancing_options_train(tiny_processed, tmp_path, balance):
    result = fit(cfg(tiny_processed, tmp_path, epochs=1, balance=balance, limit=24))
    assert result.history["train_loss"].notna().all()


def test_settings_are_checked(tiny_processed, tmp_path):
    with pytest.raises(ValueError, match="unknown training setting"):
        TrainConfig.from_dict({"epoch": 3})
    with pytest.raises(ValueError, match="balance"):
        TrainConfig.from_dict({"balance": "oversample"})
    with pytest.raises(FileNotFoundError, match="no such file"):
        fit(cfg(tiny_processed, tmp_path, pretrained=str(tmp_path / "missing.pth")))
    with pytest.raises(FileNotFoundError, match="dataset_preproc"):
        fit(cfg(tmp_path / "nowhere", tmp_path))


def test_command_line_reports_errors_without_a_traceback(tmp_path, python):
    run = subprocess.run([python, "-m", "biomeseason", "train", "--data", str(tmp_path), "--out",
                          str(tmp_path / "m")], capture_output=True, text=True)
    assert run.returncode == 2
    assert "dataset_preproc" in run.stderr and "Traceback" not in run.stderr


@pytest.mark.slow
def test_two_process_ddp_run_writes_a_checkpoint_that_loads_in_one_process(tiny_processed, tmp_path, python):
    out = tmp_path / "ddp"
    cmd = [python, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "biomeseason", "train", "--data", str(tiny_processed), "--out", str(out),
           "--image-size", "32", "--epochs", "1", "--batch-size", "8", "--device", "cpu", "--no-progress"]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert run.returncode == 0, run.stderr[-3000:]
    payload = load_checkpoint(out / "best.pt")
    model = train.build_model(payload["meta"])
    model.load_state_dict(payload["model"])  # plain keys: no "module." prefix from DDP
    assert json.loads((out / "metrics.json").read_text())["test"]["biome_n"] > 0


@pytest.mark.slow
def test_train_notebook_runs(tiny_processed, tmp_path):
    import papermill as pm

    from conftest import ROOT

    pm.execute_notebook(str(ROOT / "train.ipynb"), str(tmp_path / "train.out.ipynb"), cwd=str(ROOT),
                        kernel_name="python3", progress_bar=False,
                        parameters=dict(DATA_DIR=str(tiny_processed), OUT_DIR=str(tmp_path / "model"),
                                        IMAGE_SIZE=32, EPOCHS=1, BATCH_SIZE=16, SMOKE=True))
    assert (tmp_path / "model" / "best.pt").is_file()
    text = (tmp_path / "train.out.ipynb").read_text()
    assert "image/png" in text  # the curves and images were drawn
