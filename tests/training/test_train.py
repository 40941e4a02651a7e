"""Training end to end on a tiny processed data set (CPU, 32 px)."""
import argparse
import json
import os
import shutil
import signal
import subprocess
import time

import numpy as np
import pandas as pd
import pytest
import torch

from biomeseason.io.files import UsageError, is_ours
from biomeseason.model.checkpoint import load_checkpoint
from biomeseason.model.network import BiomeSeasonNet, build_model
from biomeseason.model.presets import IMAGENET_MEAN, IMAGENET_STD, eval_transform
from biomeseason.prepare.manifest import manifest_sha256, read_manifest
from biomeseason.training import evaluation
from biomeseason.training import loop as train
from biomeseason.training.dataset import ClassLists, encode_targets, make_loader
from biomeseason.training.loop import TrainConfig, fit

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


def test_the_view_and_the_augmentation_are_recorded_in_the_config_and_the_checkpoint(trained):
    config = json.loads((trained.out / "config.json").read_text())
    assert config["view"] == "upright" and config["augmentation"]["flips"] == "horizontal flips"
    assert config["augmentation"]["hue"] == 0
    meta = load_checkpoint(trained.out / "best.pt")["meta"]
    assert meta["view"] == "upright" and meta["augmentation"] == config["augmentation"]


def test_without_a_val_split_one_is_carved_out_of_train_by_group(tiny_processed, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(tiny_processed, data)
    manifest = read_manifest(data)
    manifest["split"] = manifest["split"].replace("val", "train")
    train_rows = manifest.index[manifest["split"] == "train"]
    manifest.loc[train_rows, "group"] = [f"place{i // 3}" for i in range(len(train_rows))]  # 3 months a place
    manifest.to_csv(data / "manifest.csv", index=False)
    inputs = train.check_inputs(cfg(data, tmp_path / "out"))
    df = inputs.df
    assert inputs.carved == (df["split"] == "val").sum()
    assert 0.05 * len(train_rows) <= inputs.carved <= 0.3 * len(train_rows)
    assert df.loc[train_rows].groupby("group")["split"].nunique().max() == 1  # no place in two splits
    assert (df["split"] == "test").sum() == (manifest["split"] == "test").sum()
    again = train.check_inputs(cfg(data, tmp_path / "out"))
    assert again.df["split"].equals(df["split"])  # the same hold-out on every run (resume, eval-only)


def test_a_southern_image_is_labelled_with_the_northern_month_it_looks_like():
    df = pd.DataFrame({"biome": ["desert", "desert", "desert"], "month": pd.array([7, 7, None], dtype="Int64"),
                       "hemisphere": ["north", "south", "south"]})
    classes = ClassLists(["desert"], list(range(1, 13)))
    biome, month = encode_targets(df, classes)
    assert biome.tolist() == [0, 0, 0]
    assert month.tolist() == [6, 0, -1]    # July; a southern July looks like January; unknown


def test_test_metrics_by_a_manifest_column_agree_with_the_run_metrics(trained, tiny_processed):
    assert evaluation.test_metrics_by(trained.out, tiny_processed, "no_such_column") is None
    by_split = evaluation.test_metrics_by(trained.out, tiny_processed, "split")
    test = trained.metrics["test"]
    assert list(by_split.index) == ["test"] and by_split.loc["test", "images"] == test["biome_n"]
    assert by_split.loc["test", "biome_acc"] == pytest.approx(test["biome_acc"])
    assert by_split.loc["test", "month_within1"] == pytest.approx(test["month_within1"])


def test_the_checkpoint_carries_the_earths_prior_and_the_test_a_biome_given_each_place(tiny_processed, tmp_path):
    """The prior comes from the label map, not from the training images: placed where the map has their
    biome, the test images are answered better given their place than from the image alone."""
    data = tmp_path / "data"
    shutil.copytree(tiny_processed, data)
    manifest = read_manifest(data)
    # A place of each biome on the map (degrees north, east): the images alone are hardly learned in 2 epochs.
    places = {"boreal_forest": (62, 100), "temperate_deciduous_forest": (38, -82), "desert": (24, 12),
              "tropical_rainforest": (-3, -62), "tropical_grassland": (-13, -48), "tundra": (71, 80),
              "temperate_grassland": (50, 70)}
    manifest["lat"] = [places[b][0] for b in manifest["biome"]]
    manifest["lon"] = [places[b][1] for b in manifest["biome"]]
    manifest.to_csv(data / "manifest.csv", index=False)
    run = fit(cfg(data, tmp_path / "out"))
    payload = load_checkpoint(run.out / "best.pt")
    meta = payload["meta"]
    assert meta["geo_prior"]["biomes"] == meta["biomes"] and payload["extra"]["geo_place"].shape == (180, 360, 7)
    test = run.metrics["test"]
    assert test["biome_acc_lat_known"] == pytest.approx(test["biome_acc"])    # every test image has one
    assert test["biome_acc_with_place"] >= 0.9 > test["biome_acc"]
    pred = pd.read_csv(run.out / "test_predictions.csv", keep_default_na=False)
    assert (pred["pred_biome_with_place"] == pred["true_biome"]).mean() == pytest.approx(test["biome_acc_with_place"])


def test_no_places_no_figures_given_them_but_the_prior_is_there(trained):
    assert load_checkpoint(trained.out / "best.pt")["meta"]["geo_prior"]["radius_km"] > 0
    assert "biome_acc_with_lat" not in trained.metrics["test"]


def test_checkpoints_say_their_months_are_northern_equivalent(trained):
    assert load_checkpoint(trained.out / "best.pt")["meta"]["month_frame"] == "north"


def test_best_pt_carries_a_temperature_per_head_and_the_run_draws_their_reliability(trained):
    meta = load_checkpoint(trained.out / "best.pt")["meta"]
    for head in ("biome", "month"):
        fitted = meta["calibration"][head]
        assert fitted["temperature"] > 0 and fitted["n"] > 0
        assert 0 <= fitted["ece_after"] <= 1 and 0 <= fitted["ece_before"] <= 1
        # Fitted on clean and drifted validation images: the temperature grows with the distance...
        assert fitted["drift_start"] > 0 and fitted["drift_power"] > 0
        assert fitted["ece_drifted_before"] is not None and fitted["ece_drifted_after"] is not None
        # ...so the test images' temperatures (median in the diagram) are never below it.
        assert trained.reliability[head]["temperature"] >= fitted["temperature"] - 1e-9
    assert (trained.out / "reliability.png").is_file()
    assert {"biome_ece", "biome_ece_uncalibrated", "unfamiliar_share"} <= set(trained.metrics["test"])


def test_a_temperature_changes_the_confidence_but_not_the_answers():
    rng = np.random.default_rng(0)
    raw = {"logits_biome": rng.normal(0, 3, (40, 3)), "logits_month": rng.normal(0, 3, (40, 12)),
           "true_biome": rng.integers(0, 3, 40), "true_month": rng.integers(-1, 12, 40)}
    classes = ClassLists(["a", "b", "c"], list(range(1, 13)))
    plain = evaluation.split_metrics(raw, classes, {"biome": 1.0, "month": 1.0})
    cooled = evaluation.split_metrics(raw, classes, {"biome": 3.0, "month": 3.0})
    for key in ("biome_acc", "biome_f1", "month_acc", "month_within1", "season_acc"):
        assert plain[key] == cooled[key]
    assert plain["biome_ece"] != cooled["biome_ece"]
    assert cooled["biome_ece_uncalibrated"] == plain["biome_ece"]


def test_same_seed_gives_the_same_metrics(trained, tiny_processed, tmp_path):
    again = fit(cfg(tiny_processed, tmp_path))
    assert again.metrics == trained.metrics
    pd.testing.assert_frame_equal(again.history.drop(columns=TIMING), trained.history.drop(columns=TIMING))


def _interrupted_in_the_second_epoch(monkeypatch, settings) -> None:
    """Runs ``fit(settings)`` until an interrupt in its second epoch (last.pt holds the first)."""
    real = train.train_one_epoch

    def interrupted(*args, **kwargs):
        if args[6] == 1:  # the second epoch
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(train, "train_one_epoch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        fit(settings)
    monkeypatch.setattr(train, "train_one_epoch", real)


def test_resume_after_an_interruption_matches_an_uninterrupted_run(trained, tiny_processed, tmp_path,
                                                                   monkeypatch, capsys):
    _interrupted_in_the_second_epoch(monkeypatch, cfg(tiny_processed, tmp_path))
    assert "--resume" in capsys.readouterr().err
    assert load_checkpoint(tmp_path / "last.pt")["meta"]["epoch"] == 1
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


def _falling_scores(monkeypatch):
    """Make each validation score lower than the one before (over every run of the test), so a run's
    first epoch stays its best and best.pt differs from last.pt; the other figures are the real ones."""
    real, scores = train.evaluate, iter(range(100, 0, -1))

    def evaluate(*args, **kwargs):
        metrics, raw = real(*args, **kwargs)
        return {**metrics, "score": float(next(scores))}, raw

    monkeypatch.setattr(train, "evaluate", evaluate)


def _kept_val_outputs(monkeypatch) -> list:
    """What training hands ``finish`` as the val outputs, one entry a run."""
    real, kept = train.finish, []

    def finish(*args, **kwargs):
        kept.append(kwargs.get("val_raw"))
        return real(*args, **kwargs)

    monkeypatch.setattr(train, "finish", finish)
    return kept


def _fresh_pass(checkpoint, settings, split="val") -> dict:
    payload = load_checkpoint(checkpoint)
    model = build_model(payload["meta"])
    model.load_state_dict(payload["model"])
    inputs = train.check_inputs(settings, writes=False)
    ds = train._datasets(settings, inputs.classes, inputs.df, False)
    return evaluation.predict_loader(model, make_loader(ds[split], 32, 0), torch.device("cpu"))


def test_the_val_outputs_kept_from_training_are_those_of_a_fresh_pass_over_best_pt(tiny_processed, tmp_path,
                                                                                  monkeypatch):
    _falling_scores(monkeypatch)
    kept = _kept_val_outputs(monkeypatch)
    settings = cfg(tiny_processed, tmp_path)
    fit(settings)
    assert load_checkpoint(tmp_path / "best.pt")["meta"]["epoch"] == 1     # not the last epoch
    fresh, last = _fresh_pass(tmp_path / "best.pt", settings), _fresh_pass(tmp_path / "last.pt", settings)
    assert kept[0] is not None and set(kept[0]) == set(fresh)
    for key in fresh:
        assert np.array_equal(kept[0][key], fresh[key]), key
    assert not np.array_equal(kept[0]["logits_biome"], last["logits_biome"])   # the test can tell the epochs apart


def test_a_resumed_run_whose_best_came_before_evaluates_val_again(tiny_processed, tmp_path, monkeypatch):
    _falling_scores(monkeypatch)
    kept = _kept_val_outputs(monkeypatch)
    whole = fit(cfg(tiny_processed, tmp_path / "whole"))
    _interrupted_in_the_second_epoch(monkeypatch, cfg(tiny_processed, tmp_path / "cut"))
    resumed = fit(cfg(tiny_processed, tmp_path / "cut", resume=True))
    assert kept[0] is not None and kept[1] is None     # best.pt was written before the resume: nothing kept
    assert load_checkpoint(tmp_path / "cut" / "best.pt")["meta"]["epoch"] == 1
    assert resumed.metrics == whole.metrics
    assert "evaluation of val and test" in resumed.seconds and "evaluation of test" in whole.seconds


def test_eval_pixels_normalised_by_the_batch_are_the_eval_transform_to_the_bit():
    from PIL import Image

    rng = np.random.default_rng(0)
    images = [torch.from_numpy(rng.integers(0, 256, (3, 32, 32), dtype=np.uint8)),    # the crop's size already
              torch.from_numpy(rng.integers(0, 256, (3, 50, 41), dtype=np.uint8)),    # resized and cropped
              Image.fromarray(rng.integers(0, 256, (45, 70, 3), dtype=np.uint8))]
    expected = torch.stack([eval_transform(32, IMAGENET_MEAN, IMAGENET_STD)(image) for image in images])
    pixels = torch.stack([evaluation.EvalPixels(32)(image) for image in images])
    assert pixels.dtype == torch.uint8
    assert torch.equal(evaluation.normalised(pixels), expected)
    assert torch.equal(evaluation.normalised(expected), expected)   # a normalised batch is left alone


def test_one_load_for_several_drift_levels_gives_what_one_pass_a_level_gives(tiny_processed, monkeypatch):
    settings = cfg(tiny_processed, "unused")
    inputs = train.check_inputs(settings, writes=False)
    ds = train._datasets(settings, inputs.classes, inputs.df, False)
    torch.manual_seed(0)
    model = build_model({"arch": "resnet18", "biomes": inputs.classes.biomes, "months": inputs.classes.months})
    loader, cpu = make_loader(ds["test"], 16, 0), torch.device("cpu")
    together = evaluation.predict_altered(model, loader, cpu, [None, evaluation._drifter(1), evaluation._drifter(3)])
    apart = [evaluation.predict_loader(model, loader, cpu)] + [
        evaluation.predict_altered(model, loader, cpu, [evaluation._drifter(level)])[0] for level in (1, 3)]
    for one, other in zip(together, apart):
        for key in one:
            assert np.array_equal(one[key], other[key]), key
    assert not np.array_equal(together[0]["logits_biome"], together[1]["logits_biome"])   # the drift did something
    # The network sees a few images at a time on a CPU; whole batches give the same answers, in the same order.
    monkeypatch.setattr(evaluation, "CPU_CHUNK", 5)
    chunked = evaluation.predict_loader(model, loader, cpu)
    monkeypatch.setattr(evaluation, "CPU_CHUNK", 10_000)
    whole = evaluation.predict_loader(model, loader, cpu)
    assert len(whole["embed"]) == len(ds["test"])
    for key in whole:
        np.testing.assert_allclose(chunked[key], whole[key], rtol=1e-5, atol=1e-6, err_msg=key)
    # The stem in channels-last (model.forward_features in eval mode on a CPU) gives the plain backbone's features.
    images = torch.cat([evaluation.normalised(batch) for batch, _, _ in loader])
    with torch.no_grad():
        plain = model.pool(model.backbone(images)).flatten(1).numpy()
    np.testing.assert_allclose(whole["embed"], plain, rtol=1e-5, atol=1e-6)


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
    with pytest.raises(UsageError, match="no such file"):
        fit(cfg(tiny_processed, tmp_path, pretrained=str(tmp_path / "missing.pth")))
    with pytest.raises(UsageError, match="dataset_preproc"):
        fit(cfg(tmp_path / "nowhere", tmp_path))


# Runs the command line; in any process but rank 0 every file write fails loudly.
ONLY_RANK0_WRITES = """
import os, sys
rank = int(os.environ.get("RANK", "0"))
if rank != 0:
    from biomeseason.io import files

    def refuse(path, mode=0o644):
        raise AssertionError(f"rank {rank} tried to write {path}")
    files.atomic_path = refuse
from biomeseason.__main__ import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow
def test_two_processes_match_one_with_the_same_global_batch_and_only_rank_0_writes(tiny_processed, tmp_path,
                                                                                   python):
    script = tmp_path / "run.py"
    script.write_text(ONLY_RANK0_WRITES)
    # Batch norm statistics are per process on a CPU (no SyncBatchNorm without CUDA), so the
    # backbone stays frozen in eval mode and the heads learn: their gradients are what DDP averages.
    common = ["train", "--data", str(tiny_processed), "--image-size", "32", "--epochs", "1", "--freeze-epochs", "1",
              "--limit", "32", "--lr", "0.05", "--no-augment", "--device", "cpu", "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    ddp, single = tmp_path / "ddp", tmp_path / "single"
    run = subprocess.run([python, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(script),
                          *common, "--out", str(ddp), "--batch-size", "8"],
                         capture_output=True, text=True, timeout=600, env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    run = subprocess.run([python, str(script), *common, "--out", str(single), "--batch-size", "16"],
                         capture_output=True, text=True, timeout=600, env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    a, b = load_checkpoint(ddp / "last.pt")["model"], load_checkpoint(single / "last.pt")["model"]
    settings = cfg(tiny_processed, tmp_path / "x")
    train.seed_everything(settings.seed)  # as fit does before it builds the model
    start = train._build_model(settings, train.check_inputs(settings), show=False).state_dict()
    assert torch.equal(a["backbone.0.weight"], start["backbone.0.weight"])  # the same start, frozen
    for name in ("heads.biome.weight", "heads.month.weight", "heads.biome.bias"):
        assert not torch.allclose(a[name], start[name], atol=1e-3)  # the heads did learn
        # Summation order differs (all-reduce vs one batch) and AdamW magnifies it where a
        # gradient is near zero; 1e-4 is still 300 times below how far the heads moved.
        assert torch.allclose(a[name], b[name], atol=1e-4), (name, (a[name] - b[name]).abs().max())
    model = build_model(load_checkpoint(ddp / "best.pt")["meta"])
    model.load_state_dict(load_checkpoint(ddp / "best.pt")["model"])  # plain keys: no "module." prefix
    assert sorted(p.name for p in ddp.iterdir()) == sorted(p.name for p in single.iterdir())
    assert json.loads((ddp / "metrics.json").read_text())["test"]["biome_n"] > 0


@pytest.mark.slow
def test_train_notebook_runs(tiny_processed, tmp_path):
    import papermill as pm
    from conftest import ROOT

    pm.execute_notebook(str(ROOT / "train.ipynb"), str(tmp_path / "train.out.ipynb"), cwd=str(ROOT),
                        kernel_name="python3", progress_bar=False,
                        parameters=dict(DATA_DIR=str(tiny_processed), OUT_DIR=str(tmp_path / "model"),
                                        IMAGE_SIZE=32, EPOCHS=1, BATCH_SIZE=16, SMOKE=True, BALANCE="sampler"),
                        execution_timeout=300)
    from conftest import assert_clean_notebook

    assert_clean_notebook(tmp_path / "train.out.ipynb")
    assert (tmp_path / "model" / "best.pt").is_file()
    assert json.loads((tmp_path / "model" / "config.json").read_text())["balance"] == "sampler"
    text = (tmp_path / "train.out.ipynb").read_text()
    assert "biome balance: sampler" in text
    assert "image/png" in text  # the curves and images were drawn
    assert "temperature" in text and "flagged unfamiliar" in text and "horizontal flips" in text


# ---------------------------------------------------------------- faults: resume, damaged files, foreign folders

def test_resume_without_last_pt_says_what_to_do(tiny_processed, tmp_path):
    with pytest.raises(UsageError, match=r"there is no .*last\.pt; start a new run without --resume"):
        fit(cfg(tiny_processed, tmp_path / "never", resume=True))
    assert not (tmp_path / "never").exists()  # refused before anything was written


def test_a_damaged_last_pt_is_refused_in_one_sentence(trained, tiny_processed, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained.out, run)
    whole = (run / "last.pt").read_bytes()
    (run / "last.pt").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(UsageError, match="damaged") as e:
        fit(cfg(tiny_processed, run, resume=True))
    assert "\n" not in str(e.value)


def test_resume_refuses_a_manifest_that_changed_since_the_checkpoint(trained, tiny_processed, tmp_path):
    data, run = tmp_path / "data", tmp_path / "run"
    shutil.copytree(tiny_processed, data)
    shutil.copytree(trained.out, run)
    manifest = read_manifest(data)
    # The checkpoint names its data by the manifest's hash, not by the folder's path.
    with pytest.raises(UsageError, match="manifest.csv changed since"):
        manifest.loc[manifest.index[0], "month"] = manifest.loc[manifest.index[1], "month"] % 12 + 1
        manifest.to_csv(data / "manifest.csv", index=False)
        fit(cfg(data, run, resume=True))


def test_resuming_a_run_begun_before_teacher_camera_keeps_the_composite_teacher(trained, tiny_processed, tmp_path):
    from biomeseason.model.checkpoint import save_checkpoint

    run, teacher = tmp_path / "run", trained.out / "best.pt"
    shutil.copytree(trained.out, run)
    last = load_checkpoint(run / "last.pt")
    config = {k: v for k, v in last["meta"]["config"].items() if k not in ("init_camera", "teacher_camera")}
    save_checkpoint(run / "last.pt", last["model"], {**last["meta"], "config": {**config, "teacher": str(teacher)}},
                    train_state=last["train_state"], extra=last.get("extra"))
    with pytest.raises(UsageError, match="begun before --teacher-camera existed.* with --teacher-camera composite"):
        train.check_inputs(cfg(tiny_processed, run, resume=True, teacher=str(teacher)))
    train.check_inputs(cfg(tiny_processed, run, resume=True, teacher=str(teacher), teacher_camera="composite"))
    # Without a teacher, which of its kinds is moot: the run resumes as before.
    save_checkpoint(run / "last.pt", last["model"], {**last["meta"], "config": config},
                    train_state=last["train_state"], extra=last.get("extra"))
    train.check_inputs(cfg(tiny_processed, run, resume=True))


def test_a_folder_we_did_not_make_is_refused_and_left_alone(tiny_processed, tmp_path):
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "thesis.txt").write_text("years of work")
    with pytest.raises(UsageError, match="not written by biomeseason.*--force"):
        fit(cfg(tiny_processed, theirs))
    assert sorted(p.name for p in theirs.iterdir()) == ["thesis.txt"]
    train.check_inputs(cfg(tiny_processed, theirs, force=True))  # --force lets us add our files
    with pytest.raises(UsageError, match="is a file, not a folder"):
        fit(cfg(tiny_processed, theirs / "thesis.txt", force=True))
    assert (theirs / "thesis.txt").read_text() == "years of work"


def test_a_run_folder_is_marked_as_ours(trained):
    assert is_ours(trained.out)
    assert not list(trained.out.glob(".*.tmp"))


@pytest.mark.parametrize("setting,value,flag", [
    ("epochs", 0, "--epochs"), ("batch_size", 0, "--batch-size"), ("image_size", 16, "--image-size"),
    ("lr", 0.0, "--lr"), ("lr", float("nan"), "--lr"), ("view", "sideways", "--view"),
    ("arch", "vgg", "--arch"), ("freeze_epochs", 5, "--freeze-epochs"), ("val_share", 1.0, "--val-share"),
    ("dropout", 1.0, "--dropout"), ("device", "tpu", "--device"), ("weight_decay", -1.0, "--weight-decay"),
])
def test_each_bad_setting_is_one_sentence_naming_its_flag(tiny_processed, tmp_path, setting, value, flag):
    with pytest.raises(UsageError, match=flag):
        cfg(tiny_processed, tmp_path / "out", **{setting: value})
    assert not (tmp_path / "out").exists()


def test_command_line_refuses_bad_settings_before_any_work(tiny_processed, tmp_path, python):
    out = tmp_path / "m"
    run = subprocess.run([python, "-m", "biomeseason", "train", "--data", str(tiny_processed), "--out", str(out),
                          "--epochs", "0"], capture_output=True, text=True, timeout=300)
    assert run.returncode == 2 and run.stderr.startswith("error: --epochs")
    assert "Traceback" not in run.stderr and not out.exists()
    run = subprocess.run([python, "-m", "biomeseason", "train", "--data", str(tmp_path), "--out", str(out)],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 2 and "dataset_preproc" in run.stderr and "Traceback" not in run.stderr
    assert not out.exists()


def test_sigterm_leaves_valid_checkpoints_no_temp_files_and_says_how_to_resume(tiny_processed, tmp_path, python,
                                                                                   spawn):
    out = tmp_path / "run"
    cmd = [python, "-m", "biomeseason", "train", "--data", str(tiny_processed), "--out", str(out),
           "--image-size", "32", "--epochs", "200", "--batch-size", "16", "--device", "cpu", "--no-progress"]
    proc = spawn(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        deadline = time.monotonic() + 240
        while not (out / "last.pt").exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert proc.poll() is None, proc.stderr.read()[-2000:]
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, stderr[-2000:]
    assert "Traceback" not in stderr and "--resume" in stderr
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")]
    assert load_checkpoint(out / "last.pt")["meta"]["epoch"] >= 1
    load_checkpoint(out / "best.pt")
    # The command the message gives passes every check.
    again = train.config_from_args(argparse.Namespace(config=str(out / "config.json"), resume=True))
    resumable = train.check_inputs(again)
    assert resumable.resume["meta"]["epoch"] >= 1


@pytest.mark.slow
def test_train_notebook_answers_a_wrong_data_path_in_one_sentence(tmp_path):
    import papermill as pm
    from conftest import ROOT

    result = tmp_path / "train.out.ipynb"
    with pytest.raises(pm.PapermillExecutionError):
        pm.execute_notebook(str(ROOT / "train.ipynb"), str(result), cwd=str(ROOT), kernel_name="python3",
                            progress_bar=False, parameters=dict(DATA_DIR=str(tmp_path / "nowhere"),
                                                                OUT_DIR=str(tmp_path / "model")), execution_timeout=300)
    outputs = json.dumps([o for c in json.loads(result.read_text())["cells"] for o in c.get("outputs", [])])
    assert "nowhere is not a folder" in outputs
    assert "Traceback" not in outputs and "File " not in outputs
    assert not (tmp_path / "model").exists()


# ---------------------------------------------------------------- starting from other weights

def _standin_imagenet_weights(path):
    """A torchvision ResNet-18 state dict, as torchvision stores its ImageNet weights (made here, no network)."""
    from torchvision.models import resnet18

    torch.manual_seed(123)
    reference = resnet18(weights=None)
    with torch.no_grad():
        reference.bn1.running_mean.uniform_(-1, 1)  # something training from scratch would never have
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(reference.state_dict(), path)
    return reference


def test_pretrained_imagenet_comes_only_from_the_local_torch_cache(tiny_processed, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    settings = cfg(tiny_processed, tmp_path / "out", pretrained="imagenet")
    with pytest.raises(UsageError, match="resnet18-f37072fd.pth is not in the local torch cache") as e:
        train.check_inputs(settings)
    assert str(tmp_path / "torch") in str(e.value) and "--pretrained PATH" in str(e.value)
    reference = _standin_imagenet_weights(tmp_path / "torch" / "hub" / "checkpoints" / "resnet18-f37072fd.pth")
    inputs = train.check_inputs(settings)
    model = train._build_model(settings, inputs, show=False)
    assert torch.equal(model.backbone[0].weight, reference.conv1.weight)
    assert torch.equal(model.backbone[1].running_mean, reference.bn1.running_mean)


def test_pretrained_file_with_frozen_backbone_trains_the_heads_alone(tiny_processed, tmp_path):
    weights = tmp_path / "resnet18.pth"
    reference = _standin_imagenet_weights(weights)
    result = fit(cfg(tiny_processed, tmp_path / "out", pretrained=str(weights), epochs=1, freeze_epochs=1,
                     limit=24))
    state = load_checkpoint(result.out / "best.pt")["model"]
    assert torch.equal(state["backbone.0.weight"], reference.conv1.weight)
    assert torch.equal(state["backbone.1.running_mean"], reference.bn1.running_mean)  # BN statistics kept too
    assert torch.equal(state["backbone.7.1.bn2.running_var"], reference.layer4[1].bn2.running_var)
    (tmp_path / "notes.pth").write_text("not weights")
    with pytest.raises(UsageError, match="not a weights file that loads safely"):
        train.check_inputs(cfg(tiny_processed, tmp_path / "out2", pretrained=str(tmp_path / "notes.pth")))


def test_init_starts_from_our_model_and_the_backbone_learns_slower(trained, tiny_processed, tmp_path):
    source = trained.out / "best.pt"
    before = load_checkpoint(source)["model"]
    settings = cfg(tiny_processed, tmp_path / "out", init=str(source), epochs=1, limit=24)
    model = train._build_model(settings, train.check_inputs(settings), show=False)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())  # same classes: all of it
    result = fit(settings)
    groups = load_checkpoint(result.out / "last.pt")["train_state"]["optimizer"]["param_groups"]
    backbone_lr, head_lr = groups[0]["lr"], groups[1]["lr"]
    assert backbone_lr == pytest.approx(0.5 * head_lr) and head_lr > 0     # --init: half the heads' rate
    with pytest.raises(UsageError, match="--arch resnet18"):
        train.check_inputs(cfg(tiny_processed, tmp_path / "o", init=str(source), arch="resnet34"))
    with pytest.raises(UsageError, match="choose one"):
        cfg(tiny_processed, tmp_path / "o", init=str(source), pretrained="imagenet")
    (tmp_path / "cut.pt").write_bytes(source.read_bytes()[:4000])
    with pytest.raises(UsageError, match="--init: .*damaged"):
        train.check_inputs(cfg(tiny_processed, tmp_path / "o", init=str(tmp_path / "cut.pt")))


def test_a_teacher_answers_on_the_batch_as_it_is_and_the_model_learns_it_through_the_camera():
    from biomeseason.model.camera import Camera
    from biomeseason.training.epoch import distill_loss, train_one_epoch

    seen = {}

    class Spy(torch.nn.Module):
        def __init__(self, name):
            super().__init__()
            self.name, self.net = name, BiomeSeasonNet("resnet18", 3, 12)

        def forward(self, x):
            seen[self.name] = x.clone()
            return self.net(x)

    model, teacher = Spy("model"), Spy("teacher").eval()
    images = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(0)).clamp(-2, 2)
    batch = [(images, torch.tensor([0, 1, 2, 0]), torch.tensor([0, 3, 6, 9]))]
    settings = TrainConfig(epochs=1, progress=False)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    camera = Camera(p=1.0)
    torch.manual_seed(5)
    stats = train_one_epoch(model, batch, optimizer, scheduler, torch.device("cpu"), settings, 0, show=False,
                            teacher=teacher, camera=camera, norm=(IMAGENET_MEAN, IMAGENET_STD))
    assert torch.equal(seen["teacher"], images)                       # the teacher: the batch as it is
    torch.manual_seed(5)
    assert torch.allclose(seen["model"], camera.batch(images, IMAGENET_MEAN, IMAGENET_STD))  # the model: camera
    assert stats["train_distill_loss"] > 0
    assert stats["train_loss"] == pytest.approx(stats["train_biome_loss"] + stats["train_month_loss"]
                                                + stats["train_distill_loss"], rel=1e-5)
    out = {"biome": torch.randn(3, 5), "month": torch.randn(3, 12)}
    assert distill_loss(out, out, 1.0).item() == pytest.approx(0, abs=1e-6)
    assert distill_loss(out, {k: v.flip(0) for k, v in out.items()}, 1.0).item() > 0


def test_a_teacher_must_answer_in_the_datas_classes_and_is_kept_in_the_config(trained, tiny_processed, tmp_path):
    from biomeseason.model.checkpoint import save_checkpoint

    source = trained.out / "best.pt"
    result = fit(cfg(tiny_processed, tmp_path / "out", init=str(source), teacher=str(source), camera=0.5,
                     epochs=1, limit=24))
    history = pd.read_csv(result.out / "history.csv")
    assert history["train_distill_loss"].iloc[0] > 0
    assert json.loads((result.out / "config.json").read_text())["teacher"] == str(source)
    payload = load_checkpoint(source)
    meta = {**payload["meta"], "biomes": list(reversed(payload["meta"]["biomes"]))}
    save_checkpoint(tmp_path / "other.pt", payload["model"], meta)
    with pytest.raises(UsageError, match="--teacher .*other.pt knows the biomes"):
        train.check_inputs(cfg(tiny_processed, tmp_path / "o", teacher=str(tmp_path / "other.pt")))
    with pytest.raises(UsageError, match="--teacher: there is no"):
        train.check_inputs(cfg(tiny_processed, tmp_path / "o", teacher=str(tmp_path / "none.pt")))
    with pytest.raises(UsageError, match="--distill must be 0 or more"):
        cfg(tiny_processed, tmp_path / "o", distill=-1.0)


def test_own_camera_learns_a_kind_of_the_starting_model_that_ship_base_accepts(trained, tiny_processed, tmp_path):
    from biomeseason.model import kinds
    from biomeseason.model.network import camera_own

    source = trained.out / "best.pt"
    result = fit(cfg(tiny_processed, tmp_path / "out", init=str(source), teacher=str(source), camera=0.8,
                     own_camera=True, epochs=1, limit=24))
    start, learnt = load_checkpoint(source), load_checkpoint(result.out / "best.pt")
    own = camera_own(build_model(start["meta"]))
    assert all(torch.equal(v, learnt["model"][k]) for k, v in start["model"].items() if k not in own)
    assert not torch.equal(start["model"]["backbone.0.weight"], learnt["model"]["backbone.0.weight"])
    assert not torch.equal(start["model"]["backbone.7.1.bn2.running_mean"],
                           learnt["model"]["backbone.7.1.bn2.running_mean"])   # the kind's own statistics
    kinds.combine(start, learnt, own)   # a kind of the start: no shared weight moved
    with pytest.raises(UsageError, match="--own-camera .* add --init"):
        cfg(tiny_processed, tmp_path / "o", own_camera=True)
    with pytest.raises(UsageError, match="--own-camera .* drop --freeze-bn"):
        cfg(tiny_processed, tmp_path / "o", own_camera=True, init=str(source), freeze_bn=True)


def test_init_and_teacher_take_the_camera_kind_asked_of_a_two_kind_checkpoint(trained, tiny_processed, tmp_path):
    from test_kinds import both_kinds

    photo, both = both_kinds(trained.out / "best.pt", tmp_path)
    photo, start = load_checkpoint(photo)["model"], load_checkpoint(trained.out / "best.pt")["model"]
    for kind, weights in (("photo", photo), ("composite", start)):
        settings = cfg(tiny_processed, tmp_path / f"out-{kind}", init=str(both), init_camera=kind,
                       teacher=str(both), teacher_camera=kind)
        inputs = train.check_inputs(settings)
        model = train._build_model(settings, inputs, show=False)
        assert all(torch.equal(v, weights[k].to(v.dtype)) for k, v in model.state_dict().items())
        assert inputs.teacher["meta"]["kind"] == kind
        assert torch.equal(inputs.teacher["model"]["backbone.0.weight"].float(), weights["backbone.0.weight"])
    assert train.check_inputs(cfg(tiny_processed, tmp_path / "o", init=str(both))).init["meta"]["kind"] == "photo"
    with pytest.raises(UsageError, match="--init-camera must be one of composite, photo, not 'aerial'"):
        cfg(tiny_processed, tmp_path / "o", init=str(both), init_camera="aerial")


def test_freeze_bn_keeps_the_starting_statistics_while_the_weights_learn(trained, tiny_processed, tmp_path):
    source = trained.out / "best.pt"
    before = load_checkpoint(source)["model"]
    result = fit(cfg(tiny_processed, tmp_path / "out", init=str(source), freeze_bn=True, camera=1.0,
                     epochs=1, limit=24))
    after = load_checkpoint(result.out / "last.pt")["model"]
    stats = [k for k in before if k.endswith(("running_mean", "running_var"))]
    assert stats and all(torch.equal(after[k], before[k]) for k in stats)
    assert not torch.equal(after["backbone.0.weight"], before["backbone.0.weight"])   # the weights moved
    with pytest.raises(UsageError, match="--freeze-bn .*add --init or --pretrained"):
        cfg(tiny_processed, tmp_path / "o", freeze_bn=True)
