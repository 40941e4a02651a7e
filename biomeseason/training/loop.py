"""Train the two-head ResNet (biome, month) on ``data/processed/``.

    python -m biomeseason train --data data/processed --out models --view overhead
    python -m biomeseason train --config models/config.json --resume   # continue a run
    python -m biomeseason train --out models --eval-only                # evaluate models/best.pt
    python -m biomeseason train --init runs/demo/model/best.pt ...      # start from a model of ours
    torchrun --nproc_per_node=2 -m biomeseason train ...                # DistributedDataParallel

Writes into ``--out`` (a folder of ours; an existing folder of someone else's
is refused unless ``--force``): ``last.pt`` and ``best.pt`` (by validation
score), ``config.json``, ``history.csv`` (one row per epoch), ``metrics.json``
(test metrics of the best checkpoint), ``curves.png``, ``confusion_biome.png``,
``confusion_month.png``, ``reliability.png``, ``confused_pairs.csv``,
``report_biome.csv``, ``report_month.csv`` and ``test_predictions.csv``.

After the last epoch ``best.pt`` gains what prediction needs to be honest
(``evaluation.finish``): a temperature per head fitted on the validation split
(calibrated probabilities) and a familiarity score fitted on the training
features, with a threshold that flags about 5% of the validation images.

Season is derived from the predicted month, never learned. A missing label
masks that head's loss for that image only. Every setting is checked before
any work starts; a mistake is one sentence (``files.UsageError``).

One module a job; this one is the run (``fit``, ``main``) and re-exports the names of the others:
``config`` (``TrainConfig``, its checks, the command line), ``inputs``
(``check_inputs``: the manifest, class lists, ``--resume``/``--init``/``--pretrained``
files, read and checked up front), ``epoch`` (``train_one_epoch``, masked losses,
circular soft month targets); ``evaluation`` scores and finishes a run.
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import random
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
from torch.utils.data import WeightedRandomSampler
from torch.utils.data.distributed import DistributedSampler

from .. import __version__
from ..io import files
from ..io.distributed import Dist, teardown
from ..io.distributed import setup as setup_distributed
from ..io.files import UsageError
from ..io.workers import cap
from ..model.camera import Camera
from ..model.checkpoint import save_checkpoint
from ..model.network import (
    BiomeSeasonNet,
    build_model,
    load_backbone_weights,
    load_matching,
    select_device,
    train_camera_own,
)
from ..model.presets import IMAGENET_MEAN, IMAGENET_STD, augmentation_settings, train_transform
from ..prepare import store
from ..prepare.manifest import SPLITS, manifest_sha256
from .config import BALANCES, DERIVED, DEVICES, TrainConfig, config_from_args, get_args_parser, setting
from .dataset import ProcessedImages, estimate_cache_bytes, make_loader
from .epoch import circular_soft_targets, masked_losses, train_one_epoch
from .evaluation import EvalPixels, RunResult, evaluate, finish
from .inputs import RESUME_KEYS, Inputs, check_inputs, imagenet_weights_file

__all__ = ["BALANCES", "DERIVED", "DEVICES", "RESUME_KEYS", "Dist", "Inputs", "TrainConfig", "check_inputs",
           "circular_soft_targets", "config_from_args", "fit", "get_args_parser", "imagenet_weights_file", "main",
           "masked_losses", "seed_everything", "setting", "setup_distributed", "train_one_epoch"]


# ---------------------------------------------------------------- seeds

def seed_everything(seed: int):
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# ---------------------------------------------------------------- the run


def _datasets(cfg: TrainConfig, classes, df, progress):
    short = cfg.image_size
    budget = cfg.cache_gb * 1e9
    cache = estimate_cache_bytes(df, short) <= budget
    if progress and not cache:
        print(f"images need more than --cache-gb {cfg.cache_gb}: reading them from disk each epoch")
    parts = {}
    found = store.locate(cfg.data, short)  # once for all splits: it reads the manifest and the indexes
    for split in SPLITS:
        rows = df[df["split"] == split]
        if split == "train" and cfg.limit:
            rows = rows.sample(n=min(cfg.limit, len(rows)), random_state=cfg.seed).sort_index()
        # val and test give uint8 images; evaluation.predict_loader normalises whole batches of them.
        # With a teacher the camera is applied to whole batches in the loop (the teacher sees them as they are).
        camera = 0.0 if cfg.teacher else cfg.camera
        tf = (train_transform(short, cfg.view, IMAGENET_MEAN, IMAGENET_STD, cfg.augment, camera, cfg.min_crop)
              if split == "train"
              else EvalPixels(short))
        parts[split] = ProcessedImages(cfg.data, rows, classes, short, tf, cache=cache, progress=progress,
                                       found=found)
    return parts


def _biome_weights(ds: ProcessedImages, n: int) -> torch.Tensor:
    """Per biome, total / (biomes x its count): each biome's images weigh alike in sum. A small real set is
    rarely balanced (the shared tiles hold 624 desert and 120 savanna), and the places a model meets later
    owe nothing to how many of each were collected (bench/real_data.py)."""
    counts = torch.bincount(ds.biome[ds.biome >= 0], minlength=n).float()
    return counts.sum() / (n * counts.clamp(min=1))


def fit(cfg: TrainConfig) -> RunResult | None:
    """Train (or resume, or only evaluate) as ``cfg`` says; returns the result on rank 0.

    SIGTERM is handled like Ctrl-C: the epoch in progress is dropped, no
    temporary file remains, last.pt and best.pt stay as the last finished
    epoch wrote them, and the message says how to resume.
    """
    cfg.check()
    ddp = setup_distributed(cfg.device)
    try:
        with files.terminate_as_interrupt(), files.output_lock(cfg.out, hold=ddp.main):  # one run per --out
            return _fit(cfg, ddp)
    except KeyboardInterrupt:
        if ddp.main:
            print(_interrupted(Path(cfg.out)), file=sys.stderr, flush=True)
        raise
    finally:
        teardown(ddp)


def _interrupted(out: Path) -> str:
    if (out / "last.pt").is_file():
        return (f"interrupted: {out / 'last.pt'} holds the last finished epoch; continue with "
                f"`python -m biomeseason train --config {out / 'config.json'} --resume`")
    return "interrupted before the first epoch ended; nothing to resume: run the same command again"


def _fit(cfg: TrainConfig, ddp: Dist) -> RunResult | None:
    inputs = check_inputs(cfg, writes=ddp.main)
    device = select_device(cfg.device, ddp.local_rank)
    show = cfg.progress and ddp.main
    out = Path(cfg.out)
    if ddp.main:
        files.claim_dir(out, force=cfg.force or cfg.resume or cfg.eval_only)
        if inputs.carved:
            print(f"no val split: {inputs.carved} training images (whole groups) held out for validation",
                  flush=True)
    seed_everything(cfg.seed + ddp.rank)
    classes = inputs.classes
    ds = _datasets(cfg, classes, inputs.df, show)
    workers = cap(cfg.workers) if cfg.workers >= 0 else cap(4 if device.type == "cuda" else 0, quiet=True)

    if cfg.eval_only:
        return finish(cfg, classes, ds, device, workers, out, None, show, refit=False) if ddp.main else None

    history, val_raw = _train(cfg, ddp, inputs, ds, device, workers, show)
    if not ddp.main:
        return None
    return finish(cfg, classes, ds, device, workers, out, history, show, refit=True, val_raw=val_raw)


def _train(cfg: TrainConfig, ddp: Dist, inputs: Inputs, ds: dict, device: torch.device, workers: int,
           show: bool) -> tuple[list[dict], dict | None]:
    """The epochs, from the start or from last.pt; after each, rank 0 writes best.pt (if the validation
    score improved), last.pt and history.csv. Returns the history (rank 0's is complete) and rank 0's
    validation outputs (``evaluation.predict_loader``) of the epoch that last wrote best.pt in this
    process: ``evaluation.finish`` needs them and need not compute them again. None when no epoch
    here wrote best.pt (a resumed run whose best came before) or there is no val split."""
    classes, out = inputs.classes, Path(cfg.out)
    use_amp = cfg.amp and device.type == "cuda"
    model = _build_model(cfg, inputs, show)
    model.to(device)
    if use_amp:
        model.to(memory_format=torch.channels_last)
    net = (torch.nn.parallel.DistributedDataParallel(model, find_unused_parameters=cfg.freeze_epochs > 0)
           if ddp.world > 1 else model)

    shuffle_gen = torch.Generator()
    sampler = _train_sampler(cfg, ds["train"], len(classes.biomes), ddp, shuffle_gen)
    train_loader = make_loader(ds["train"], cfg.batch_size, workers, sampler, device=device)
    val_loader = make_loader(ds["val"], cfg.batch_size * 2, workers, device=device)
    biome_weight = _biome_weights(ds["train"], len(classes.biomes)).to(device) if cfg.balance == "weights" else None

    teacher, camera = _teacher(cfg, inputs, device, show)
    backbone, heads = model.parameter_groups()
    optimizer, scheduler = _optimizer(cfg, backbone, heads, len(train_loader))
    scaler = torch.amp.GradScaler("cuda") if use_amp else None
    meta = _meta(cfg, classes, inputs)
    start_epoch, history, best, best_val = 0, [], -math.inf, None
    if inputs.resume is not None:
        start_epoch, history, best = _resume(inputs.resume, model, optimizer, scheduler, scaler)
        if ddp.main:
            print(f"resuming {out / 'last.pt'} after epoch {start_epoch}", flush=True)
    elif ddp.main:
        files.write_json(out / "config.json", {**dataclasses.asdict(cfg), "augmentation": meta["augmentation"]})

    for epoch in range(start_epoch, cfg.epochs):
        # Everything random in an epoch is seeded by (seed, epoch, rank), so a
        # resumed run repeats exactly what the uninterrupted one would have done.
        torch.manual_seed(cfg.seed * 100_003 + epoch * 1009 + ddp.rank)
        shuffle_gen.manual_seed(cfg.seed * 100_003 + epoch)
        if isinstance(sampler, DistributedSampler):
            sampler.set_epoch(epoch)
        frozen = epoch < cfg.freeze_epochs
        for p in backbone:
            p.requires_grad_(not frozen)
        stats = train_one_epoch(net, train_loader, optimizer, scheduler, device, cfg, epoch,
                                biome_weight, scaler, show, frozen=frozen, teacher=teacher, camera=camera,
                                norm=(IMAGENET_MEAN, IMAGENET_STD))
        if ddp.main:
            val, val_raw = evaluate(model, val_loader, device, classes) if len(ds["val"]) else ({}, None)
            row = {"epoch": epoch + 1, "lr": scheduler.get_last_lr()[-1], **stats,
                   **{f"val_{k}": v for k, v in val.items()}}
            history.append(row)
            current = val.get("score")
            current = -row["train_loss"] if current is None else current  # no val split: lowest loss
            improved = current > best
            best = max(best, current)
            meta.update(epoch=epoch + 1, metrics={"val": val})
            state = {"epoch": epoch + 1, "optimizer": optimizer.state_dict(),
                     "scheduler": scheduler.state_dict(), "history": history, "best": best,
                     "scaler": scaler.state_dict() if scaler else None}
            _save_epoch(out, model, meta, state, improved)
            if improved:
                best_val = val_raw
            print(_epoch_line(row) + ("  *best" if improved else ""), flush=True)
        if ddp.world > 1:
            dist.barrier()
    return history, best_val


def _train_sampler(cfg: TrainConfig, train: ProcessedImages, n_biomes: int, ddp: Dist,
                   generator: torch.Generator) -> torch.utils.data.Sampler:
    if cfg.balance == "sampler":
        if ddp.world > 1:
            raise UsageError("--balance sampler does not combine with several processes; use --balance weights")
        w = _biome_weights(train, n_biomes)
        per_image = torch.where(train.biome >= 0, w[train.biome.clamp(min=0)], 1.0)
        return WeightedRandomSampler(per_image, len(per_image), generator=generator)
    # One shuffle for one process and for many: N processes' batches of B together hold
    # the images of one process's batch of N*B, so the runs match (tests/test_train.py).
    return DistributedSampler(train, num_replicas=ddp.world, rank=ddp.rank, seed=cfg.seed)


def _optimizer(cfg: TrainConfig, backbone: list, heads: list, steps_per_epoch: int):
    """AdamW under a one-cycle schedule; the backbone may learn slower than the heads (a model started
    from other weights)."""
    rates = [cfg.lr * cfg.backbone_scale, cfg.lr]
    optimizer = torch.optim.AdamW([{"params": backbone, "lr": rates[0]}, {"params": heads, "lr": rates[1]}],
                                  lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=rates, epochs=cfg.epochs,
                                                    steps_per_epoch=steps_per_epoch, pct_start=0.2)
    return optimizer, scheduler


def _save_epoch(out: Path, model: BiomeSeasonNet, meta: dict, state: dict, improved: bool):
    # best.pt before last.pt: an interruption between the two leaves a last.pt
    # whose own best is already on disk, so resuming never loses a best epoch.
    if improved:
        save_checkpoint(out / "best.pt", model.state_dict(), meta)
    save_checkpoint(out / "last.pt", model.state_dict(), meta, state)
    files.write_csv(out / "history.csv", pd.DataFrame(state["history"]))


def _build_model(cfg: TrainConfig, inputs: Inputs, show: bool) -> BiomeSeasonNet:
    classes = inputs.classes
    model = BiomeSeasonNet(cfg.arch, len(classes.biomes), len(classes.months), cfg.dropout)
    if inputs.pretrained is not None:
        load_backbone_weights(model, inputs.pretrained)
        if show:
            print(f"backbone from {inputs.pretrained_path}", flush=True)
    if inputs.init is not None:
        meta = inputs.init["meta"]
        carried = load_matching(model, inputs.init["model"], {"biome": meta["biomes"], "month": meta["months"]},
                                {"biome": classes.biomes, "month": classes.months})
        if show:
            kind = f" ({meta['kind']} kind)" if meta.get("kind") else ""
            print(f"started from {cfg.init}{kind}: its backbone, and its head rows for {carried['biome']} of "
                  f"{len(classes.biomes)} biomes and {carried['month']} of {len(classes.months)} months",
                  flush=True)
    if cfg.own_camera:
        learning = train_camera_own(model)
        if show:
            print(f"--own-camera: {learning:,} of {sum(p.numel() for p in model.parameters()):,} weights learn "
                  "(the camera kind's own); the others stay as they are", flush=True)
    return model


def _teacher(cfg: TrainConfig, inputs: Inputs, device: torch.device, show: bool):
    """The frozen --teacher network in single precision, and the camera the model's batches pass through."""
    if inputs.teacher is None:
        return None, None
    teacher = build_model(inputs.teacher["meta"])
    weights = inputs.teacher["model"]
    teacher.load_state_dict({k: (v.float() if v.is_floating_point() else v) for k, v in weights.items()})
    teacher.to(device).eval().requires_grad_(False)
    if show:
        kind = inputs.teacher["meta"].get("kind")
        kind = f" ({kind} kind)" if kind else ""
        print(f"teacher {cfg.teacher}{kind}: the model learns its answers on the images as they are, with the "
              f"weight {cfg.distill:g}, on {cfg.camera:.0%} of them seen through a simulated camera", flush=True)
    return teacher, Camera(p=cfg.camera) if cfg.camera > 0 else None


def _epoch_line(row: dict) -> str:
    def f(key, fmt="{:.3f}"):
        v = row.get(key)
        return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else fmt.format(v)
    return (f"epoch {row['epoch']:>3}  loss {f('train_loss')}  val biome acc {f('val_biome_acc')}  "
            f"month acc {f('val_month_acc')}  ±1 {f('val_month_within1')}  season {f('val_season_acc')}  "
            f"{f('images_per_s', '{:.0f}')} img/s")


def _meta(cfg: TrainConfig, classes, inputs: Inputs) -> dict:
    return {"arch": cfg.arch, "biomes": classes.biomes, "months": classes.months,
            # The default hemisphere of an image at prediction; the month head answers
            # northern-equivalent months (labels.north_month), turned back per image.
            "hemisphere": classes.hemisphere, "month_frame": "north", "image_size": cfg.image_size,
            # ImageNet statistics either way: right for pretrained weights, harmless from scratch.
            "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD),
            # The view decides which test-time views prediction may average (presets.tta_views).
            "view": cfg.view, "augmentation": augmentation_settings(cfg.view, cfg.augment, cfg.camera, cfg.min_crop),
            "config": dataclasses.asdict(cfg), "manifest_sha256": manifest_sha256(cfg.data),
            "val_carved_from_train": inputs.carved,
            "biomeseason_version": __version__, "epoch": 0, "metrics": {}}


def _resume(payload: dict, model, optimizer, scheduler, scaler) -> tuple[int, list, float]:
    state = payload["train_state"]
    model.load_state_dict(payload["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    if scaler is not None and state.get("scaler"):
        scaler.load_state_dict(state["scaler"])
    return int(state["epoch"]), list(state["history"]), float(state["best"])


def main(args: argparse.Namespace) -> int:
    try:
        fit(config_from_args(args))
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except FloatingPointError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # fit has said how to resume
        return 130
    return 0
