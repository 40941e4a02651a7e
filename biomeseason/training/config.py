"""Training settings: ``TrainConfig`` (one commented defaults block, every value checked) and the
command line that fills it (``--config`` a run's config.json, flags given override it).

    cfg = TrainConfig.from_dict({"data": "data/processed", "epochs": 5})   # an unknown key is a UsageError
    cfg = config_from_args(get_args_parser().parse_args())

``train`` re-exports every name here.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from ..io.files import UsageError
from ..model.kinds import KINDS
from ..model.network import ARCHS
from ..model.presets import VIEWS

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
    camera: float = setting(0.0, "share of training images seen through a random simulated camera (exposure, "
                                 "white balance, haze, clouds, blur, noise, JPEG; model/camera.py); 0 = none")
    min_crop: float = setting(0.6, "smallest random crop as a share of the image's area: 0.05 shows a 450 km "
                                   "tile at 100 km too")
    pretrained: str = setting("", "imagenet (torchvision weights, from the local torch cache only) | a local "
                                  "weights file | empty = from scratch")
    init: str = setting("", "a checkpoint of ours to start from: its backbone, and its head rows for "
                            "the classes both models know")
    init_camera: str = setting("photo", "which camera kind of an --init that reads two (models/earth.pt; "
                                        "model/kinds.py): photo (photos of any camera) | composite (cloud-free "
                                        "monthly composites like the Blue Marble)")
    teacher: str = setting("", "a checkpoint of ours (e.g. models/earth.pt) with the same classes: the model also "
                               "learns to answer on each image seen through --camera what the teacher answers "
                               "on the same image as it is (keeps what the teacher knows of one camera while "
                               "learning others)")
    teacher_camera: str = setting("photo", "which camera kind of a --teacher that reads two: photo | composite "
                                           "(the kind that reads the training images as they are)")
    distill: float = setting(1.0, "weight of the teacher's loss (KL divergence) against the labels' loss")
    backbone_lr_scale: float = setting(-1.0, "backbone learning rate relative to the heads; -1 = 0.5 with "
                                             "--init, 0.1 with --pretrained, else 1")
    freeze_bn: bool = setting(False, "keep the batch-norm statistics of the starting weights (--init, "
                                     "--pretrained): views of other cameras then do not move how plain images "
                                     "are normalised")
    own_camera: bool = setting(False, "train only the weights a camera kind owns (the first convolution and stage, "
                                      "every batch norm, the heads; model/kinds.py), the others kept as --init has "
                                      "them: with --camera and --teacher, the photo kind of a model that reads "
                                      "composites and photos (`ship --base`)")
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
            (self.init_camera in KINDS, f"--init-camera must be one of {', '.join(KINDS)}, not {self.init_camera!r}"),
            (self.teacher_camera in KINDS,
             f"--teacher-camera must be one of {', '.join(KINDS)}, not {self.teacher_camera!r}"),
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
            (_finite(self.camera) and 0 <= self.camera <= 1, f"--camera must be within 0..1, not {self.camera}"),
            (_finite(self.min_crop) and 0 < self.min_crop <= 1, f"--min-crop must be in (0, 1], not {self.min_crop}"),
            (0 < self.val_share < 1, f"--val-share must be between 0 and 1, not {self.val_share}"),
            (self.workers >= -1, f"--workers must be -1 (automatic) or more, not {self.workers}"),
            (_finite(self.cache_gb) and self.cache_gb >= 0, f"--cache-gb must be 0 or more, not {self.cache_gb}"),
            (self.limit >= 0, f"--limit must be 0 (all) or more, not {self.limit}"),
            (self.backbone_lr_scale == -1 or (_finite(self.backbone_lr_scale) and self.backbone_lr_scale >= 0),
             f"--backbone-lr-scale must be -1 (automatic) or 0 or more, not {self.backbone_lr_scale}"),
            (0 <= self.freeze_epochs <= self.epochs,
             f"--freeze-epochs must be between 0 and --epochs ({self.epochs}), not {self.freeze_epochs}"),
            (_finite(self.distill) and self.distill >= 0, f"--distill must be 0 or more, not {self.distill}"),
            (not (self.resume and self.eval_only), "--resume and --eval-only exclude each other; choose one"),
            (not self.freeze_bn or bool(self.init or self.pretrained),
             "--freeze-bn keeps the statistics of starting weights: add --init or --pretrained"),
            (not self.own_camera or bool(self.init),
             "--own-camera keeps the other weights of a model of ours: add --init"),
            (not (self.own_camera and self.freeze_bn),
             "--own-camera learns the kind's own batch-norm statistics: drop --freeze-bn"),
            (not (self.init and self.pretrained),
             "--init and --pretrained both give starting weights; choose one"),
        ]
        for ok, message in rules:
            if not ok:
                raise UsageError(message)


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


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
