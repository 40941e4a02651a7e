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
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.utils.data import WeightedRandomSampler
from torch.utils.data.distributed import DistributedSampler
from tqdm.auto import tqdm

from . import __version__, files, store
from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .data import (
    ClassLists,
    ProcessedImages,
    carve_validation,
    encode_targets,
    estimate_cache_bytes,
    make_loader,
    read_class_lists,
)
from .evaluation import RunResult, evaluate, finish
from .files import UsageError
from .manifest import SPLITS, manifest_sha256, read_manifest
from .model import ARCHS, BiomeSeasonNet, load_backbone_weights, load_matching, select_device
from .presets import IMAGENET_MEAN, IMAGENET_STD, VIEWS, augmentation_settings, eval_transform, train_transform
from .workers import cap

DEVICES = ("auto", "cpu", "cuda", "mps")
BALANCES = ("none", "weights", "sampler")
DERIVED = ("augmentation",)   # recorded in config.json for people to read; not settings


def setting(default, help_: str):
    """A default with its help text, shown by ``--help``."""
    return field(default=default, metadata={"help": help_})


@dataclass
class TrainConfig:
    data: str = setting("data/processed", "processed folder: manifest.csv, labels.json, images/")
    out: str = setting("models", "checkpoints, metrics and plots go here (a new folder, or one of ours)")
    force: bool = setting(False, "write into an existing --out folder that biomeseason did not make "
                                 "(nothing in it is deleted)")
    arch: str = setting("resnet18", "resnet18 | resnet34 | resnet50")
    image_size: int = setting(96, "input side in pixels (96 for a CPU; 224 is usual on a GPU)")
    view: str = setting("upright", "overhead (nadir scenes, map tiles: all 8 rotations/flips) | upright "
                                   "(ground or oblique photos, anything with a horizon: horizontal flips only)")
    augment: bool = setting(True, "random crops, flips, mild blur, brightness/contrast/saturation jitter "
                                  "(never hue)")
    pretrained: str = setting("", "imagenet (torchvision weights, from the local torch cache only) | a local "
                                  "weights file | empty = from scratch")
    init: str = setting("", "a checkpoint of ours to start from: its backbone, and its head rows for "
                            "the classes both models know")
    backbone_lr_scale: float = setting(-1.0, "backbone learning rate relative to the heads; -1 = 0.5 with "
                                             "--init, 0.1 with --pretrained, else 1")
    freeze_epochs: int = setting(0, "train the heads alone for this many epochs first")
    epochs: int = setting(30, "passes over the training split")
    batch_size: int = setting(64, "images per batch, per process")
    lr: float = setting(3e-3, "peak learning rate of the one-cycle schedule (AdamW)")
    weight_decay: float = setting(0.05, "AdamW weight decay")
    month_sigma: float = setting(1.0, "width (months) of the circular soft month labels; 0 = one-hot")
    month_weight: float = setting(1.0, "weight of the month loss against the biome loss")
    balance: str = setting("weights", "weights (every biome weighs alike in the loss, however many training "
                                      "images it has) | sampler (balanced batches) | none")
    dropout: float = setting(0.0, "dropout before the heads")
    val_share: float = setting(0.15, "share of train held out (by group) for validation when the data "
                                     "have no val split")
    workers: int = setting(-1, "DataLoader worker processes; -1 = 0 on CPU, 4 on a GPU")
    device: str = setting("auto", "auto (cuda, then mps, then cpu) | cpu | cuda | mps")
    amp: bool = setting(True, "mixed precision and channels-last on CUDA; ignored elsewhere")
    seed: int = setting(0, "seeds data order, augmentation and initialisation")
    resume: bool = setting(False, "continue the run in --out from last.pt")
    eval_only: bool = setting(False, "evaluate --out/best.pt on val and test; no training")
    cache_gb: float = setting(4.0, "keep decoded images in memory up to this many GB")
    limit: int = setting(0, "use at most this many training images (quick checks); 0 = all")
    progress: bool = setting(True, "tqdm progress bars")

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise UsageError(f"unknown training setting(s) {unknown}; known: {sorted(known)}")
        cfg = cls(**values)
        cfg.check()
        return cfg

    @property
    def backbone_scale(self) -> float:
        if self.backbone_lr_scale >= 0:
            return self.backbone_lr_scale
        # Our own checkpoints (synthetic scenes, other regions) are further from the new data than
        # ImageNet features are from a photo: their backbone needs to move more (bench/real_data.py).
        return 0.5 if self.init else 0.1 if self.pretrained else 1.0

    def check(self):
        """Every value on its own (files are checked by ``check_inputs``); one sentence per mistake."""
        rules = [
            (self.arch in ARCHS, f"--arch must be one of {', '.join(ARCHS)}, not {self.arch!r}"),
            (self.view in VIEWS, f"--view must be overhead or upright, not {self.view!r}"),
            (self.balance in BALANCES, f"--balance must be none, weights or sampler, not {self.balance!r}"),
            (self.device in DEVICES, f"--device must be one of {', '.join(DEVICES)}, not {self.device!r}"),
            (self.epochs >= 1, f"--epochs must be at least 1, not {self.epochs}"),
            (self.batch_size >= 1, f"--batch-size must be at least 1, not {self.batch_size}"),
            (self.image_size >= 32, f"--image-size must be at least 32 (pixels), not {self.image_size}"),
            (_finite(self.lr) and self.lr > 0, f"--lr must be a number above 0, not {self.lr}"),
            (_finite(self.weight_decay) and self.weight_decay >= 0,
             f"--weight-decay must be 0 or more, not {self.weight_decay}"),
            (_finite(self.month_sigma) and self.month_sigma >= 0,
             f"--month-sigma must be 0 or more, not {self.month_sigma}"),
            (_finite(self.month_weight) and self.month_weight >= 0,
             f"--month-weight must be 0 or more, not {self.month_weight}"),
            (0 <= self.dropout < 1, f"--dropout must be in [0, 1), not {self.dropout}"),
            (0 < self.val_share < 1, f"--val-share must be between 0 and 1, not {self.val_share}"),
            (self.workers >= -1, f"--workers must be -1 (automatic) or more, not {self.workers}"),
            (_finite(self.cache_gb) and self.cache_gb >= 0, f"--cache-gb must be 0 or more, not {self.cache_gb}"),
            (self.limit >= 0, f"--limit must be 0 (all) or more, not {self.limit}"),
            (self.backbone_lr_scale == -1 or (_finite(self.backbone_lr_scale) and self.backbone_lr_scale >= 0),
             f"--backbone-lr-scale must be -1 (automatic) or 0 or more, not {self.backbone_lr_scale}"),
            (0 <= self.freeze_epochs <= self.epochs,
             f"--freeze-epochs must be between 0 and --epochs ({self.epochs}), not {self.freeze_epochs}"),
            (not (self.resume and self.eval_only), "--resume and --eval-only exclude each other; choose one"),
            (not (self.init and self.pretrained),
             "--init and --pretrained both give starting weights; choose one"),
        ]
        for ok, message in rules:
            if not ok:
                raise UsageError(message)


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


# ---------------------------------------------------------------- losses

def circular_soft_targets(month: torch.Tensor, num_months: int, sigma: float) -> torch.Tensor:
    """(B,) month indices -> (B, num_months) target distributions.

    A Gaussian over the circular distance, so December also teaches January a
    little; sigma=0 gives one-hot targets.
    """
    if sigma <= 0:
        return F.one_hot(month, num_months).float()
    steps = torch.arange(num_months, device=month.device)
    d = (steps[None, :] - month[:, None]).abs()
    d = torch.minimum(d, num_months - d).float()  # (B, M)
    w = torch.exp(-0.5 * (d / sigma) ** 2)
    return w / w.sum(dim=1, keepdim=True)


def masked_losses(out: dict, biome: torch.Tensor, month: torch.Tensor, month_sigma: float,
                  biome_weight: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Biome and month losses over the images that have that label (-1 = missing); ``biome_weight``
    (per biome, mean 1 over the training images: ``_biome_weights``) weighs each image by its biome.

    A batch with no labels for a head contributes a zero that still belongs to
    the graph, so DDP sees every parameter used.
    """
    has_b, has_m = biome >= 0, month >= 0
    zero_b, zero_m = out["biome"].sum() * 0, out["month"].sum() * 0
    if has_b.any():
        loss_b = F.cross_entropy(out["biome"][has_b], biome[has_b], reduction="none")
        if biome_weight is not None:
            # A mean over the images, each weighted by its biome: not over the batch's weights, which
            # would make the loss depend on how a batch is cut (several processes would not match one).
            loss_b = loss_b * biome_weight[biome[has_b]]
        loss_b = loss_b.mean()
    else:
        loss_b = zero_b
    if has_m.any():
        logits = out["month"][has_m]
        target = circular_soft_targets(month[has_m], logits.shape[1], month_sigma)
        loss_m = -(target * F.log_softmax(logits.float(), dim=1)).sum(dim=1).mean()
    else:
        loss_m = zero_m
    return loss_b, loss_m


# ---------------------------------------------------------------- devices and processes

@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup_distributed(device_name: str) -> Dist:
    """Join the process group that ``torchrun`` describes; a single process otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    use_cuda = torch.cuda.is_available() and device_name in ("auto", "cuda")
    dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def seed_everything(seed: int):
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# ---------------------------------------------------------------- inputs, checked before any work

@dataclass
class Inputs:
    """Everything a run reads besides the images, read and checked up front."""
    classes: ClassLists
    df: pd.DataFrame                  # the manifest, with a val split carved out of train if it had none
    carved: int = 0                   # training rows moved to val
    resume: dict | None = None        # the loaded last.pt
    init: dict | None = None          # the loaded --init checkpoint
    pretrained: dict | None = None    # a torchvision state dict
    pretrained_path: Path | None = None


RESUME_KEYS = ("arch", "image_size", "view", "augment", "pretrained", "init", "backbone_lr_scale",
               "freeze_epochs", "epochs", "batch_size", "lr", "weight_decay", "month_sigma", "month_weight",
               "balance", "dropout", "val_share", "seed", "limit")


def check_inputs(cfg: TrainConfig, writes: bool = True) -> Inputs:
    """Read and check what the run needs; raises UsageError (one sentence) for the first problem.

    ``writes``: also check that ``--out`` may be written (only the process that writes does).
    """
    data, out = Path(cfg.data), Path(cfg.out)
    if not data.is_dir():
        raise UsageError(f"--data {data} is not a folder; give the output folder of dataset_preproc.py "
                         f"(run `python dataset_preproc.py --out {data}` first)")
    try:
        classes = read_class_lists(data)
        df = read_manifest(data)
        encode_targets(df, classes)  # biomes the class list does not know
    except (OSError, ValueError) as e:  # missing or unreadable files: their messages say what to do
        raise UsageError(str(e)) from None
    if not cfg.eval_only and not (df["split"] == "train").any():
        raise UsageError(f"{data / 'manifest.csv'} has no training images (split 'train'); "
                         "re-run the preprocessing")
    inputs = Inputs(classes, df)
    share, seed = cfg.val_share, cfg.seed
    if cfg.resume:
        inputs.resume = _check_resume(out / "last.pt", cfg, data)
    if cfg.eval_only:
        # Evaluate on the validation images the model was chosen with, whatever the flags say now.
        saved = _load_ours(out / "best.pt", "--eval-only", "train a model into this --out first")["meta"]
        share, seed = (saved.get("config") or {}).get("val_share", share), (saved.get("config") or {}).get("seed", seed)
    inputs.df, inputs.carved = carve_validation(df, share, seed)
    if writes:
        # A folder holding a sound checkpoint of ours (resume, eval-only) is ours to write in.
        files.check_dir_target(out, force=cfg.force or cfg.resume or cfg.eval_only)
    if not cfg.resume:  # resuming takes every weight from last.pt
        if cfg.init:
            inputs.init = _check_init(cfg)
        if cfg.pretrained:
            inputs.pretrained_path, inputs.pretrained = _pretrained_state(cfg.pretrained, cfg.arch)
    return inputs


def _load_ours(path: Path, flag: str, what_to_do: str) -> dict:
    if not path.is_file():
        raise UsageError(f"{flag}: there is no {path}; {what_to_do}")
    try:
        return load_checkpoint(path)
    except CheckpointError as e:
        raise UsageError(f"{flag}: {e}; {what_to_do}") from None


def _check_resume(path: Path, cfg: TrainConfig, data: Path) -> dict:
    anew = f"start a new run without --resume (in another --out, or in {path.parent} to replace it)"
    payload = _load_ours(path, "--resume", anew)
    if "train_state" not in payload:
        raise UsageError(f"--resume: {path} holds no training state; {anew}")
    meta = payload["meta"]
    if meta.get("manifest_sha256") != manifest_sha256(data):
        raise UsageError(f"--resume: {data / 'manifest.csv'} changed since {path} was written; "
                         f"restore it, or {anew}")
    saved = meta.get("config", {})
    defaults = TrainConfig()
    for key in RESUME_KEYS:
        before, now = saved.get(key, getattr(defaults, key)), getattr(cfg, key)
        if before != now:
            raise UsageError(f"cannot resume: {key} was {before!r} in {path}, now {now!r}; resume with "
                             f"the run's own settings: --config {path.parent / 'config.json'} --resume")
    return payload


def _check_init(cfg: TrainConfig) -> dict:
    path = Path(cfg.init)
    payload = _load_ours(path, "--init", "give a best.pt or last.pt written by `biomeseason train`")
    arch = payload["meta"].get("arch")
    if arch != cfg.arch:
        raise UsageError(f"--init {path} is a {arch}, not a {cfg.arch}; add --arch {arch} to start from it")
    return payload


def imagenet_weights_file(arch: str) -> Path | None:
    """torchvision's ImageNet weights for ``arch`` if they are in the local torch cache; never downloads."""
    from torchvision.models import get_model_weights

    folder = Path(torch.hub.get_dir()) / "checkpoints"
    for weights in get_model_weights(arch):
        candidate = folder / weights.url.rsplit("/", 1)[-1]
        if candidate.is_file():
            return candidate
    return None


def _pretrained_state(spec: str, arch: str) -> tuple[Path, dict]:
    from torchvision.models import get_model_weights

    if spec == "imagenet":
        path = imagenet_weights_file(arch)
        if path is None:
            name = get_model_weights(arch).DEFAULT.url.rsplit("/", 1)[-1]
            raise UsageError(
                f"--pretrained imagenet: {name} is not in the local torch cache "
                f"({Path(torch.hub.get_dir()) / 'checkpoints'}); on a machine with internet run "
                f"`python -c \"import torchvision; torchvision.models.{arch}(weights='DEFAULT')\"` and copy "
                f"that file into this folder, or pass --pretrained PATH to a copy of it")
    else:
        path = Path(spec)
        if not path.is_file():
            raise UsageError(f"--pretrained {path}: no such file; give torchvision ImageNet weights "
                             "(e.g. resnet18-f37072fd.pth), or 'imagenet' to take them from the torch cache")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many kinds for files it cannot read safely
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise UsageError(f"--pretrained {path} is not a weights file that loads safely ({first})") from None
    state = state.get("state_dict", state) if isinstance(state, dict) else state
    try:  # does it fit? checked now, before the images are loaded
        if not isinstance(state, dict):
            raise ValueError("it holds no state dict")
        load_backbone_weights(BiomeSeasonNet(arch, 1), state)
    except ValueError as e:
        raise UsageError(f"--pretrained {path}: {e}") from None
    return path, state


# ---------------------------------------------------------------- one epoch

def train_one_epoch(model, loader, optimizer, scheduler, device, cfg: TrainConfig, epoch: int,
                    biome_weight=None, scaler=None, show=True, frozen: bool = False) -> dict:
    model.train()
    if frozen:  # heads alone: the backbone's batch-norm statistics stay as they were too
        getattr(model, "module", model).backbone.eval()
    use_amp = scaler is not None
    totals = {"loss": 0.0, "biome_loss": 0.0, "month_loss": 0.0}
    seen, wait, start = 0, 0.0, time.perf_counter()
    bar = tqdm(total=len(loader), desc=f"epoch {epoch + 1}/{cfg.epochs}", leave=False, disable=not show)
    tick = time.perf_counter()
    for images, biome, month in loader:
        wait += time.perf_counter() - tick
        images = images.to(device, non_blocking=True)
        if use_amp:
            images = images.contiguous(memory_format=torch.channels_last)
        biome, month = biome.to(device), month.to(device)
        with torch.autocast(device.type, dtype=torch.float16, enabled=use_amp):
            out = model(images)
            loss_b, loss_m = masked_losses(out, biome, month, cfg.month_sigma, biome_weight)
            loss = loss_b + cfg.month_weight * loss_m
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss became {loss.item()} at epoch {epoch + 1}; lower --lr")
        optimizer.zero_grad(set_to_none=True)
        if use_amp:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        scheduler.step()
        n = images.shape[0]
        seen += n
        for k, v in (("loss", loss), ("biome_loss", loss_b), ("month_loss", loss_m)):
            totals[k] += v.item() * n
        bar.set_postfix(loss=f"{totals['loss'] / seen:.3f}")
        bar.update()
        tick = time.perf_counter()
    bar.close()
    seconds = time.perf_counter() - start
    stats = {f"train_{k}": v / max(seen, 1) for k, v in totals.items()}
    stats.update(seconds=seconds, images_per_s=seen / max(seconds, 1e-9),
                 data_wait_share=wait / max(seconds, 1e-9))
    return stats


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
        tf = (train_transform(short, cfg.view, IMAGENET_MEAN, IMAGENET_STD, cfg.augment) if split == "train"
              else eval_transform(short, IMAGENET_MEAN, IMAGENET_STD))
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
        if ddp.world > 1:
            dist.destroy_process_group()


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
    use_amp = cfg.amp and device.type == "cuda"

    if cfg.eval_only:
        return finish(cfg, classes, ds, device, workers, out, None, show, refit=False) if ddp.main else None

    model = _build_model(cfg, inputs, show)
    model.to(device)
    if use_amp:
        model.to(memory_format=torch.channels_last)
    net = (torch.nn.parallel.DistributedDataParallel(model, find_unused_parameters=cfg.freeze_epochs > 0)
           if ddp.world > 1 else model)

    shuffle_gen = torch.Generator()
    if cfg.balance == "sampler":
        if ddp.world > 1:
            raise UsageError("--balance sampler does not combine with several processes; use --balance weights")
        w = _biome_weights(ds["train"], len(classes.biomes))
        per_image = torch.where(ds["train"].biome >= 0, w[ds["train"].biome.clamp(min=0)], 1.0)
        sampler = WeightedRandomSampler(per_image, len(per_image), generator=shuffle_gen)
    else:
        # One shuffle for one process and for many: N processes' batches of B together hold
        # the images of one process's batch of N*B, so the runs match (tests/test_train.py).
        sampler = DistributedSampler(ds["train"], num_replicas=ddp.world, rank=ddp.rank, seed=cfg.seed)
    train_loader = make_loader(ds["train"], cfg.batch_size, workers, sampler, device=device)
    val_loader = make_loader(ds["val"], cfg.batch_size * 2, workers, device=device)
    biome_weight = _biome_weights(ds["train"], len(classes.biomes)).to(device) if cfg.balance == "weights" else None

    # The backbone may learn slower than the heads (a model started from other weights).
    backbone, heads = model.parameter_groups()
    rates = [cfg.lr * cfg.backbone_scale, cfg.lr]
    optimizer = torch.optim.AdamW([{"params": backbone, "lr": rates[0]}, {"params": heads, "lr": rates[1]}],
                                  lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=rates, epochs=cfg.epochs,
                                                    steps_per_epoch=len(train_loader), pct_start=0.2)
    scaler = torch.amp.GradScaler("cuda") if use_amp else None
    meta = _meta(cfg, classes, inputs)
    start_epoch, history, best = 0, [], -math.inf
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
                                biome_weight, scaler, show, frozen=frozen)
        if ddp.main:
            val, _ = evaluate(model, val_loader, device, classes) if len(ds["val"]) else ({}, None)
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
            # best.pt before last.pt: an interruption between the two leaves a last.pt
            # whose own best is already on disk, so resuming never loses a best epoch.
            if improved:
                save_checkpoint(out / "best.pt", model.state_dict(), meta)
            save_checkpoint(out / "last.pt", model.state_dict(), meta, state)
            files.write_csv(out / "history.csv", pd.DataFrame(history))
            print(_epoch_line(row) + ("  *best" if improved else ""), flush=True)
        if ddp.world > 1:
            dist.barrier()
    if not ddp.main:
        return None
    return finish(cfg, classes, ds, device, workers, out, history, show, refit=True)


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
            print(f"started from {cfg.init}: its backbone, and its head rows for {carried['biome']} of "
                  f"{len(classes.biomes)} biomes and {carried['month']} of {len(classes.months)} months",
                  flush=True)
    return model


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
            "view": cfg.view, "augmentation": augmentation_settings(cfg.view, cfg.augment),
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


# ---------------------------------------------------------------- command line

def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Train the biome/month ResNet", add_help=add_help)
    parser.add_argument("--config", default="", help="JSON file of settings (a run's config.json); "
                                                     "flags given override it")
    for f in dataclasses.fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        if f.type in ("bool", bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None,
                                help=f"{f.metadata['help']} (default: {f.default})")
        else:
            kind = {"int": int, "float": float, "str": str}[f.type if isinstance(f.type, str) else f.type.__name__]
            parser.add_argument(flag, type=kind, default=None, help=f"{f.metadata['help']} (default: {f.default!r})")
    return parser


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    values = _read_config(Path(args.config)) if getattr(args, "config", "") else {}
    given = {k: v for k, v in vars(args).items() if k != "config" and v is not None}
    return TrainConfig.from_dict({**values, **given})


def _read_config(path: Path) -> dict:
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"--config {path}: no such file") from None
    except (OSError, ValueError) as e:
        raise UsageError(f"--config {path} is not a JSON file of settings ({e})") from None
    if not isinstance(values, dict):
        raise UsageError(f"--config {path} must hold a JSON object of settings")
    return {k: v for k, v in values.items() if k not in DERIVED}


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


