"""What a training run reads besides the images, read and checked before any work starts.

``check_inputs`` reads the class lists and the manifest (carving a validation
split out of train if there is none) and, as the settings ask, the ``last.pt``
to resume (its settings and data must match), a checkpoint of ours to start
from (``--init``) or ImageNet weights (``--pretrained``: a local file, or the
local torch cache through ``imagenet_weights_file``; nothing is downloaded).
Each problem is one sentence (``files.UsageError``). ``train`` re-exports the
public names here.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch

from ..io import files
from ..io.files import UsageError
from ..model import kinds
from ..model.checkpoint import CheckpointError, load_checkpoint
from ..model.network import BiomeSeasonNet, load_backbone_weights
from ..prepare.manifest import manifest_sha256, read_manifest
from .config import TrainConfig
from .dataset import ClassLists, carve_validation, encode_targets, read_class_lists

# ---------------------------------------------------------------- inputs, checked before any work

@dataclass
class Inputs:
    """Everything a run reads besides the images, read and checked up front."""
    classes: ClassLists
    df: pd.DataFrame                  # the manifest, with a val split carved out of train if it had none
    carved: int = 0                   # training rows moved to val
    resume: dict | None = None        # the loaded last.pt
    init: dict | None = None          # the loaded --init checkpoint
    teacher: dict | None = None       # the loaded --teacher checkpoint
    pretrained: dict | None = None    # a torchvision state dict
    pretrained_path: Path | None = None


RESUME_KEYS = ("arch", "image_size", "view", "augment", "camera", "min_crop", "pretrained", "init", "teacher",
               "init_camera", "teacher_camera", "distill", "freeze_bn", "backbone_lr_scale",
               "freeze_epochs", "epochs", "batch_size", "lr", "weight_decay", "month_sigma", "month_weight",
               "balance", "dropout", "val_share", "seed", "limit")

# Which camera kind of a two-kind --init / --teacher a run takes (model.kinds): moot without that checkpoint. Runs
# begun before these settings existed took the composite kind.
KIND_OF = {"init_camera": "init", "teacher_camera": "teacher"}
KIND_BEFORE = "composite"


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
    if cfg.teacher and not cfg.eval_only:
        inputs.teacher = _check_teacher(Path(cfg.teacher), classes, cfg.teacher_camera)
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
        if key in KIND_OF and not (saved.get(KIND_OF[key]) or getattr(cfg, KIND_OF[key])):
            continue
        before, now = saved.get(key, KIND_BEFORE if key in KIND_OF else getattr(defaults, key)), getattr(cfg, key)
        if before != now and key in KIND_OF and key not in saved:
            flag = "--" + key.replace("_", "-")
            raise UsageError(f"cannot resume: {path} was begun before {flag} existed, when a checkpoint of two "
                             f"camera kinds gave its {before} kind; resume with {flag} {before}")
        if before != now:
            raise UsageError(f"cannot resume: {key} was {before!r} in {path}, now {now!r}; resume with "
                             f"the run's own settings: --config {path.parent / 'config.json'} --resume")
    return payload


def _check_init(cfg: TrainConfig) -> dict:
    path = Path(cfg.init)
    found = _load_ours(path, "--init", "give a best.pt or last.pt written by `biomeseason train`")
    payload = kinds.select(found, cfg.init_camera)   # a checkpoint of two camera kinds: the one asked for
    arch = payload["meta"].get("arch")
    if arch != cfg.arch:
        raise UsageError(f"--init {path} is a {arch}, not a {cfg.arch}; add --arch {arch} to start from it")
    return payload


def _check_teacher(path: Path, classes: ClassLists, camera: str) -> dict:
    """The --teacher checkpoint (its ``camera`` kind, if it has two); its biomes and months must be the data's, in
    the same order."""
    found = _load_ours(path, "--teacher", "give a checkpoint written by `biomeseason train` or `ship`")
    payload = kinds.select(found, camera)
    meta = payload["meta"]
    for head, theirs, ours in (("biomes", meta.get("biomes"), classes.biomes),
                               ("months", meta.get("months"), classes.months)):
        if list(theirs or []) != list(ours):
            raise UsageError(f"--teacher {path} knows the {head} {theirs}, the data {list(ours)}: a teacher must "
                             "answer in the data's classes")
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
