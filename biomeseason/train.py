"""Train the two-head ResNet (biome, month) on ``data/processed/``.

    python -m biomeseason train --data data/processed --out models
    python -m biomeseason train --out models --resume          # continue the last run
    python -m biomeseason train --out models --eval-only       # evaluate models/best.pt
    torchrun --nproc_per_node=2 -m biomeseason train ...       # DistributedDataParallel

Writes into ``--out``: ``last.pt`` and ``best.pt`` (by validation score),
``config.json``, ``history.csv`` (one row per epoch), ``metrics.json`` (test
metrics of the best checkpoint), ``curves.png``, ``confusion_biome.png``,
``confusion_month.png``, ``confused_pairs.csv``, ``report_biome.csv``,
``report_month.csv`` and ``test_predictions.csv``.

Season is derived from the predicted month, never learned. A missing label
masks that head's loss for that image only.
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
from torch.utils.data import DataLoader, RandomSampler, WeightedRandomSampler
from torch.utils.data.distributed import DistributedSampler
from tqdm.auto import tqdm

from . import __version__
from . import metrics as M
from .checkpoint import load_checkpoint, save_checkpoint
from .data import (SPLITS, ProcessedImages, estimate_cache_bytes, manifest_sha256, read_class_lists,
                   read_manifest)
from .labels import MONTH_ABBR
from .model import BiomeSeasonNet, build_model, load_backbone_weights, select_device
from .presets import IMAGENET_MEAN, IMAGENET_STD, eval_transform, train_transform


def setting(default, help_: str):
    """A default with its help text, shown by ``--help``."""
    return field(default=default, metadata={"help": help_})


@dataclass
class TrainConfig:
    data: str = setting("data/processed", "processed folder: manifest.csv, labels.json, images/")
    out: str = setting("models", "checkpoints, metrics and plots go here")
    arch: str = setting("resnet18", "resnet18 | resnet34 | resnet50")
    image_size: int = setting(96, "input side in pixels (96 for a CPU; 224 is usual on a GPU)")
    pretrained: str = setting("", "local file of torchvision ImageNet weights; empty = from scratch")
    epochs: int = setting(30, "passes over the training split")
    batch_size: int = setting(64, "images per batch, per process")
    lr: float = setting(3e-3, "peak learning rate of the one-cycle schedule (AdamW)")
    weight_decay: float = setting(0.05, "AdamW weight decay")
    month_sigma: float = setting(1.0, "width (months) of the circular soft month labels; 0 = one-hot")
    month_weight: float = setting(1.0, "weight of the month loss against the biome loss")
    balance: str = setting("none", "none | weights (class-weighted biome loss) | sampler (balanced batches)")
    dropout: float = setting(0.0, "dropout before the heads")
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
    def from_dict(cls, values: dict) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown training setting(s) {unknown}; known: {sorted(known)}")
        cfg = cls(**values)
        cfg.check()
        return cfg

    def check(self):
        if self.balance not in ("none", "weights", "sampler"):
            raise ValueError(f"balance must be none, weights or sampler, not {self.balance!r}")
        if self.epochs < 1 or self.batch_size < 1 or self.image_size < 32:
            raise ValueError("epochs and batch_size must be >= 1 and image_size >= 32")


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
    """Biome and month losses over the images that have that label (-1 = missing).

    A batch with no labels for a head contributes a zero that still belongs to
    the graph, so DDP sees every parameter used.
    """
    has_b, has_m = biome >= 0, month >= 0
    zero_b, zero_m = out["biome"].sum() * 0, out["month"].sum() * 0
    loss_b = F.cross_entropy(out["biome"][has_b], biome[has_b], weight=biome_weight) if has_b.any() else zero_b
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


# ---------------------------------------------------------------- one epoch, evaluation

def train_one_epoch(model, loader, optimizer, scheduler, device, cfg: TrainConfig, epoch: int,
                    biome_weight=None, scaler=None, show=True) -> dict:
    model.train()
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


@torch.no_grad()
def predict_loader(model, loader, device, show=False) -> dict:
    """Softmax outputs and targets of every image in the loader, in order."""
    model.eval()
    probs = {"biome": [], "month": []}
    targets = {"biome": [], "month": []}
    for images, biome, month in tqdm(loader, desc="evaluating", leave=False, disable=not show):
        out = model(images.to(device))
        for task, t in (("biome", biome), ("month", month)):
            probs[task].append(out[task].float().softmax(1).cpu())
            targets[task].append(t)
    return {f"{k}_{task}": torch.cat(v[task]).numpy() if v[task] else np.zeros((0,))
            for k, v in (("probs", probs), ("true", targets)) for task in ("biome", "month")}


def evaluate(model, loader, device, classes, show=False) -> tuple[dict, dict]:
    """(metrics, raw outputs) for one split."""
    raw = predict_loader(model, loader, device, show)
    if len(raw["true_biome"]) == 0:
        return {}, raw
    pred_b, pred_m = raw["probs_biome"].argmax(1), raw["probs_month"].argmax(1)
    metrics = {**M.biome_metrics(raw["true_biome"], pred_b, len(classes.biomes)),
               **M.month_metrics(raw["true_month"], pred_m, classes.months, classes.hemisphere)}
    metrics["score"] = M.score(metrics)
    return metrics, raw


# ---------------------------------------------------------------- the run

@dataclass
class RunResult:
    out: Path
    metrics: dict                     # test metrics of the best checkpoint (and val)
    history: pd.DataFrame
    files: dict = field(default_factory=dict)


def _loader(ds, batch_size, workers, sampler=None, shuffle=False, device=None):
    return DataLoader(ds, batch_size=batch_size, sampler=sampler, shuffle=shuffle,
                      num_workers=workers, persistent_workers=workers > 0,
                      pin_memory=device is not None and device.type == "cuda")


def _datasets(cfg: TrainConfig, classes, df, progress):
    short = cfg.image_size
    budget = cfg.cache_gb * 1e9
    cache = estimate_cache_bytes(df, short) <= budget
    if progress and not cache:
        print(f"images need more than --cache-gb {cfg.cache_gb}: reading them from disk each epoch")
    parts = {}
    for split in SPLITS:
        rows = df[df["split"] == split]
        if split == "train" and cfg.limit:
            rows = rows.sample(n=min(cfg.limit, len(rows)), random_state=cfg.seed).sort_index()
        tf = (train_transform if split == "train" else eval_transform)(short, IMAGENET_MEAN, IMAGENET_STD)
        parts[split] = ProcessedImages(cfg.data, rows, classes, short, tf, cache=cache, progress=progress)
    return parts


def _biome_weights(ds: ProcessedImages, n: int) -> torch.Tensor:
    counts = torch.bincount(ds.biome[ds.biome >= 0], minlength=n).float()
    return counts.sum() / (n * counts.clamp(min=1))


def fit(cfg: TrainConfig) -> RunResult | None:
    """Train (or resume, or only evaluate) as ``cfg`` says; returns the result on rank 0."""
    cfg.check()
    ddp = setup_distributed(cfg.device)
    try:
        return _fit(cfg, ddp)
    finally:
        if ddp.world > 1:
            dist.destroy_process_group()


def _fit(cfg: TrainConfig, ddp: Dist) -> RunResult | None:
    device = select_device(cfg.device, ddp.local_rank)
    show = cfg.progress and ddp.main
    out = Path(cfg.out)
    seed_everything(cfg.seed + ddp.rank)
    classes = read_class_lists(cfg.data)
    df = read_manifest(cfg.data)
    ds = _datasets(cfg, classes, df, show)
    if len(ds["train"]) == 0 and not cfg.eval_only:
        raise ValueError(f"no training images in {cfg.data}/manifest.csv (split == 'train')")
    workers = cfg.workers if cfg.workers >= 0 else (4 if device.type == "cuda" else 0)
    use_amp = cfg.amp and device.type == "cuda"

    if cfg.eval_only:
        return _finish(cfg, classes, ds, device, workers, out, None, show) if ddp.main else None

    model = BiomeSeasonNet(cfg.arch, len(classes.biomes), len(classes.months), cfg.dropout)
    if cfg.pretrained:
        _load_pretrained(model, cfg.pretrained)
    model.to(device)
    if use_amp:
        model.to(memory_format=torch.channels_last)
    net = torch.nn.parallel.DistributedDataParallel(model) if ddp.world > 1 else model

    shuffle_gen = torch.Generator()
    if ddp.world > 1:
        if cfg.balance == "sampler":
            raise ValueError("--balance sampler does not combine with several processes; use --balance weights")
        sampler = DistributedSampler(ds["train"], num_replicas=ddp.world, rank=ddp.rank, seed=cfg.seed)
    elif cfg.balance == "sampler":
        w = _biome_weights(ds["train"], len(classes.biomes))
        per_image = torch.where(ds["train"].biome >= 0, w[ds["train"].biome.clamp(min=0)], 1.0)
        sampler = WeightedRandomSampler(per_image, len(per_image), generator=shuffle_gen)
    else:
        sampler = RandomSampler(ds["train"], generator=shuffle_gen)
    train_loader = _loader(ds["train"], cfg.batch_size, workers, sampler, device=device)
    val_loader = _loader(ds["val"], cfg.batch_size * 2, workers, device=device)
    biome_weight = _biome_weights(ds["train"], len(classes.biomes)).to(device) if cfg.balance == "weights" else None

    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=cfg.lr, epochs=cfg.epochs,
                                                    steps_per_epoch=len(train_loader), pct_start=0.2)
    scaler = torch.amp.GradScaler("cuda") if use_amp else None
    meta = _meta(cfg, classes)
    start_epoch, history, best = 0, [], -math.inf
    if cfg.resume:
        start_epoch, history, best = _resume(out / "last.pt", model, optimizer, scheduler, scaler, cfg)
        if ddp.main:
            print(f"resuming {out / 'last.pt'} after epoch {start_epoch}", flush=True)
    elif ddp.main:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(json.dumps(dataclasses.asdict(cfg), indent=2) + "\n")

    for epoch in range(start_epoch, cfg.epochs):
        # Everything random in an epoch is seeded by (seed, epoch, rank), so a
        # resumed run repeats exactly what the uninterrupted one would have done.
        torch.manual_seed(cfg.seed * 100_003 + epoch * 1009 + ddp.rank)
        shuffle_gen.manual_seed(cfg.seed * 100_003 + epoch)
        if isinstance(sampler, DistributedSampler):
            sampler.set_epoch(epoch)
        stats = train_one_epoch(net, train_loader, optimizer, scheduler, device, cfg, epoch,
                                biome_weight, scaler, show)
        if ddp.main:
            val, _ = evaluate(model, val_loader, device, classes) if len(ds["val"]) else ({}, None)
            row = {"epoch": epoch + 1, "lr": scheduler.get_last_lr()[0], **stats,
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
            save_checkpoint(out / "last.pt", model.state_dict(), meta, state)
            if improved:
                save_checkpoint(out / "best.pt", model.state_dict(), meta)
            pd.DataFrame(history).to_csv(out / "history.csv", index=False)
            print(_epoch_line(row) + ("  *best" if improved else ""), flush=True)
        if ddp.world > 1:
            dist.barrier()
    if not ddp.main:
        return None
    return _finish(cfg, classes, ds, device, workers, out, history, show)


def _epoch_line(row: dict) -> str:
    def f(key, fmt="{:.3f}"):
        v = row.get(key)
        return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else fmt.format(v)
    return (f"epoch {row['epoch']:>3}  loss {f('train_loss')}  val biome acc {f('val_biome_acc')}  "
            f"month acc {f('val_month_acc')}  ±1 {f('val_month_within1')}  season {f('val_season_acc')}  "
            f"{f('images_per_s', '{:.0f}')} img/s")


def _meta(cfg: TrainConfig, classes) -> dict:
    return {"arch": cfg.arch, "biomes": classes.biomes, "months": classes.months,
            "hemisphere": classes.hemisphere, "image_size": cfg.image_size,
            # ImageNet statistics either way: right for pretrained weights, harmless from scratch.
            "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD),
            "config": dataclasses.asdict(cfg), "manifest_sha256": manifest_sha256(cfg.data),
            "biomeseason_version": __version__, "epoch": 0, "metrics": {}}


def _load_pretrained(model, path):
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--pretrained {path}: no such file. Weights are only read from a local "
                                "file (e.g. torchvision's resnet18-f37072fd.pth copied from a torch cache)")
    state = torch.load(path, map_location="cpu", weights_only=True)
    load_backbone_weights(model, state.get("state_dict", state) if isinstance(state, dict) else state)


def _resume(path: Path, model, optimizer, scheduler, scaler, cfg) -> tuple[int, list, float]:
    payload = load_checkpoint(path)
    if "train_state" not in payload:
        raise ValueError(f"{path} holds no training state to resume from")
    saved = payload["meta"]["config"]
    for key in ("arch", "image_size", "epochs", "batch_size", "lr", "seed", "data"):
        if saved.get(key) != getattr(cfg, key):
            raise ValueError(f"cannot resume: {key} was {saved.get(key)!r} in {path}, now {getattr(cfg, key)!r}")
    state = payload["train_state"]
    model.load_state_dict(payload["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    if scaler is not None and state.get("scaler"):
        scaler.load_state_dict(state["scaler"])
    return int(state["epoch"]), list(state["history"]), float(state["best"])


def _finish(cfg, classes, ds, device, workers, out: Path, history, show) -> RunResult:
    """Evaluate best.pt on val and test; write metrics, reports and plots."""
    from . import plots

    payload = load_checkpoint(out / "best.pt")
    model = build_model(payload["meta"])
    model.load_state_dict(payload["model"])
    model.to(device)
    results, files = {}, {}
    raws = {}
    for split in ("val", "test"):
        if len(ds[split]):
            loader = _loader(ds[split], cfg.batch_size * 2, workers, device=device)
            results[split], raws[split] = evaluate(model, loader, device, classes, show)
    metrics = {"epoch": payload["meta"]["epoch"], **results}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    files["metrics"] = out / "metrics.json"
    if history is None:
        history = pd.read_csv(out / "history.csv").to_dict("records") if (out / "history.csv").exists() else []
    hist = pd.DataFrame(history)
    if len(hist):
        files["curves"] = plots.save(plots.plot_history(hist), out / "curves.png")
    split = "test" if "test" in raws else ("val" if "val" in raws else None)
    if split:
        files.update(_reports(raws[split], ds[split], classes, out, plots))
    for name, m in results.items():
        print(f"{name}: " + "  ".join(f"{k} {v:.3f}" for k, v in m.items() if isinstance(v, float)))
    print(f"model and reports in {out}/", flush=True)
    return RunResult(out, metrics, hist, files)


def _reports(raw: dict, ds: ProcessedImages, classes, out: Path, plots) -> dict:
    from sklearn.metrics import classification_report

    files = {}
    pred_b, pred_m = raw["probs_biome"].argmax(1), raw["probs_month"].argmax(1)
    true_b, true_m = raw["true_biome"], raw["true_month"]
    month_names = [MONTH_ABBR[m - 1].title() if 1 <= m <= 12 else str(m) for m in classes.months]
    rows, pairs = [], []
    for task, names, t, p in (("biome", classes.biomes, true_b, pred_b), ("month", month_names, true_m, pred_m)):
        if not (t >= 0).any():
            continue
        cm = M.labelled_confusion(t, p, len(names))
        files[f"confusion_{task}"] = plots.save(plots.plot_confusion(cm, names, f"{task} (test)"),
                                                out / f"confusion_{task}.png")
        pairs.append(M.most_confused(cm, names).assign(head=task))
        keep = t >= 0
        report = classification_report(t[keep], p[keep], labels=list(range(len(names))),
                                       target_names=names, output_dict=True, zero_division=0)
        pd.DataFrame(report).T.to_csv(out / f"report_{task}.csv")
        files[f"report_{task}"] = out / f"report_{task}.csv"
    if pairs:
        pd.concat(pairs).to_csv(out / "confused_pairs.csv", index=False)
        files["confused_pairs"] = out / "confused_pairs.csv"
    for t, p, names, probs, task in ((true_b, pred_b, classes.biomes, raw["probs_biome"], "biome"),
                                     (true_m, pred_m, classes.months, raw["probs_month"], "month")):
        rows.append(pd.DataFrame({f"true_{task}": [names[j] if j >= 0 else "" for j in t],
                                  f"pred_{task}": [names[j] for j in p],
                                  f"p_{task}": probs.max(1).round(4)}))
    pred = pd.concat([pd.DataFrame({"path": [str(p.relative_to(ds.root)) for p in ds.paths],
                                    "source": ds.sources}), *rows], axis=1)
    pred.to_csv(out / "test_predictions.csv", index=False)
    files["predictions"] = out / "test_predictions.csv"
    return files


# ---------------------------------------------------------------- command line

def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Train the biome/month ResNet", add_help=add_help)
    parser.add_argument("--config", default="", help="JSON file of settings; flags given override it")
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
    values = json.loads(Path(args.config).read_text()) if getattr(args, "config", "") else {}
    given = {k: v for k, v in vars(args).items() if k != "config" and v is not None}
    return TrainConfig.from_dict({**values, **given})


def main(args: argparse.Namespace) -> int:
    try:
        cfg = config_from_args(args)
        fit(cfg)
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


def misclassified(out: str | Path, head: str = "biome", top: int = 16) -> pd.DataFrame:
    """The most confident wrong test predictions of one head, from test_predictions.csv."""
    pred = pd.read_csv(Path(out) / "test_predictions.csv", keep_default_na=False)
    wrong = pred[(pred[f"true_{head}"].astype(str) != "") &
                 (pred[f"true_{head}"].astype(str) != pred[f"pred_{head}"].astype(str))]
    return wrong.sort_values(f"p_{head}", ascending=False).head(top)
