"""After training: the model's answers on a split, its metrics, and what makes its probabilities honest.

``finish`` runs once training ends (or for ``train --eval-only``): it fits the
familiarity score on the training features and a temperature per head on the
validation split (``fit_reliability``), stores both in ``best.pt``, and
writes the test metrics, reports and plots that ``train`` lists. Its forward
passes (``predict_loader``) take uint8 batches (``EvalPixels``) and, on a CPU,
run the network a few images at a time; the validation outputs of the best
epoch come from training, which computed them already.
``misclassified`` and ``test_metrics_by`` read a finished run's reports.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from ..earth import geoprior
from ..io import files
from ..labels import MONTH_ABBR, north_month
from ..model import calibration as C
from ..model.camera import Camera
from ..model.checkpoint import load_checkpoint, save_checkpoint
from ..model.familiarity import Familiarity, image_statistics
from ..model.network import build_model
from ..model.presets import IMAGENET_MEAN, IMAGENET_STD, eval_pixels, normalise
from ..prepare.manifest import read_manifest
from . import metrics as M
from .dataset import ClassLists, ProcessedImages, make_loader

# After training, forward passes cost time in proportion to the images they see. The familiarity
# score (class means and one covariance of 512 features) and the drift temperatures (two numbers
# per head) are settled by a few thousand images; more cost time and change them little (bench/after_training.py).
# Fewer cost quality, measured on the Earth's tiles with a 1-epoch and a 20-epoch model, 5 seeded
# samples each: with 3,000 or 2,000 training images the share of test tiles flagged kept its mean
# but varied about 3 times more from sample to sample (sd 0.002-0.003 against 0.0006-0.0008);
# with 500 drifted images a level the month temperature grew faster with the distance (power 1.46
# and 1.91 against 1.27 and 1.82; every image: 1.13 and 1.57) and test tiles drifted 2 levels came
# out less well calibrated (month ECE 0.013 against 0.007 on the 20-epoch model; every image: 0.003).
FAMILIARITY_SAMPLES = 4000   # training images the familiarity score is fitted on, at most
DRIFT_SAMPLES = 1000         # validation images seen at each drift level, at most


# On a CPU the network runs fastest on a few images at a time (their activations stay in the
# caches): 32 images of 64 or 96 px take 0.95 and 2.1 ms an image, 128 take 1.1-1.3 and 3.1 ms
# (2 threads). Each image's outputs are the same to the bit whatever the chunk.
CPU_CHUNK = 32


class EvalPixels:
    """``presets.eval_pixels``: the uint8 (3, S, S) image, resized and centre-cropped;
    ``predict_loader`` normalises whole batches (``normalised``), to the same numbers as
    ``presets.eval_transform``: image by image that costs 0.1 ms, about a tenth of the network's
    time. An image the size of the crop already (the store's square tiles) is passed through as
    it is, which is what the resize and the crop would do to it."""

    def __init__(self, image_size: int):
        self.image_size = image_size
        self.steps = eval_pixels(image_size)

    def __call__(self, image):
        if (isinstance(image, torch.Tensor) and image.dtype == torch.uint8
                and tuple(image.shape[-2:]) == (self.image_size, self.image_size)):
            return image
        return self.steps(image)


class CameraPixels(EvalPixels):
    """``EvalPixels``, then a random simulated camera (``model.camera``) on a share ``p`` of the images, from
    its own seeded generator: a model trained to see other cameras is told their views are familiar."""

    def __init__(self, image_size: int, p: float, seed: int = 0):
        super().__init__(image_size)
        self.camera, self.generator = Camera(p=p), torch.Generator().manual_seed(seed)

    def __call__(self, image):
        return self.camera(super().__call__(image), self.generator)


_NORMALISE = normalise(IMAGENET_MEAN, IMAGENET_STD)


def normalised(images: torch.Tensor) -> torch.Tensor:
    """A uint8 batch (``EvalPixels``) as the network sees it (``presets.normalise``); a float batch
    is taken as normalised already."""
    return _NORMALISE(images) if images.dtype == torch.uint8 else images


def predict_loader(model, loader, device, show=False) -> dict:
    """Logits, pooled features, image statistics and targets of every image in the loader, in order (numpy).

    The loader gives uint8 batches (``EvalPixels``) or normalised float ones."""
    return predict_altered(model, loader, device, [None], show)[0]


@torch.inference_mode()
def predict_altered(model, loader, device, alters: list, show=False) -> list[dict]:
    """``predict_loader``'s outputs once for each of ``alters``: a function that changes each normalised
    batch before the model sees it, or None for the batch as it is. Each batch is loaded once for all."""
    model.eval()
    keys = ("logits_biome", "logits_month", "embed", "image_stats", "true_biome", "true_month")
    runs = [{k: [] for k in keys} for _ in alters]
    chunk = CPU_CHUNK if device.type == "cpu" else None
    for images, biome, month in tqdm(loader, desc="evaluating", leave=False, disable=not show):
        images = normalised(images)
        for parts, alter in zip(runs, alters):
            seen = images if alter is None else alter(images)
            for part in seen.split(chunk or len(seen)):
                features = model.forward_features(part.to(device))  # (B, C, h, w)
                out = model.forward_head(features)
                parts["embed"].append(model.pool(features).flatten(1).float().cpu())  # (B, C), as model.embed
                parts["image_stats"].append(torch.from_numpy(image_statistics(part, IMAGENET_MEAN, IMAGENET_STD)))
                for task in ("biome", "month"):
                    parts[f"logits_{task}"].append(out[task].float().cpu())
            parts["true_biome"].append(biome)
            parts["true_month"].append(month)
    return [{k: torch.cat(v).numpy() if v else np.zeros((0,)) for k, v in parts.items()} for parts in runs]


def split_metrics(raw: dict, classes: ClassLists, temperatures: dict | None = None) -> dict:
    """Metrics of one split from ``predict_loader`` output; with temperatures (per head: one, or
    one per image), ECE before and after too."""
    if len(raw["true_biome"]) == 0:
        return {}
    pred_b, pred_m = raw["logits_biome"].argmax(1), raw["logits_month"].argmax(1)
    metrics = {**M.biome_metrics(raw["true_biome"], pred_b, len(classes.biomes)),
               # Targets and answers are northern-equivalent months (data.encode_targets): their season is the north's.
               **M.month_metrics(raw["true_month"], pred_m, classes.months, "north")}
    metrics["score"] = M.score(metrics)
    for head, t in (temperatures or {}).items():
        logits, true = raw[f"logits_{head}"], raw[f"true_{head}"]
        metrics[f"{head}_ece"] = C.ece(C.softmax(logits, t), true)
        metrics[f"{head}_ece_uncalibrated"] = C.ece(C.softmax(logits), true)
    return metrics


def evaluate(model, loader, device, classes, show=False) -> tuple[dict, dict]:
    """(metrics, raw outputs) for one split."""
    raw = predict_loader(model, loader, device, show)
    return split_metrics(raw, classes), raw


@dataclass
class RunResult:
    out: Path
    metrics: dict                     # test metrics of the best checkpoint (and val)
    history: pd.DataFrame
    files: dict = field(default_factory=dict)
    calibration: dict = field(default_factory=dict)   # per head: temperature, ECE before/after (val)
    reliability: dict = field(default_factory=dict)   # what reliability.png shows, for plots.plot_reliability
    seconds: dict = field(default_factory=dict)       # the work after training, by part (finish)


def fit_reliability(model, ds: dict, val_raw: dict | None, device, workers: int, batch_size: int,
                    image_size: int, show: bool = False, camera: float = 0.0) -> tuple[dict, Familiarity]:
    """The familiarity score (fitted on train features) and the calibration per head (fitted on val).

    The familiarity threshold flags 5% of the validation images; without a
    val split it is set on the training images, which flags more new images.
    ``camera``: the share of training images that were seen through a simulated
    camera; the familiarity score is fitted on as many camera views.
    The temperatures are fitted on the validation images as they are and at
    each ``calibration.DRIFT_LEVELS`` (see the calibration module), so that
    the probabilities soften as images grow unlike the training data.
    """
    pixels = CameraPixels(image_size, camera) if camera > 0 else EvalPixels(image_size)
    plain = _sample(ds["train"].with_transform(pixels), FAMILIARITY_SAMPLES)
    train_raw = predict_loader(model, make_loader(plain, batch_size, workers, device=device), device, show)
    familiarity = Familiarity().fit(train_raw["embed"], train_raw["true_biome"], train_raw["image_stats"],
                                    IMAGENET_MEAN, IMAGENET_STD)
    reference = val_raw if val_raw is not None else train_raw
    familiarity.set_threshold(reference["embed"], reference["image_stats"])
    calibration = {}
    if val_raw is not None:
        val = make_loader(_sample(ds["val"], DRIFT_SAMPLES), batch_size, workers, device=device)
        # One load of the images for every level: each level's drift draws from its own generator,
        # batch after batch, so the drifted images are those of one pass per level.
        raws = [val_raw, *predict_altered(model, val, device, [_drifter(level) for level in C.DRIFT_LEVELS], show)]
        levels = np.concatenate([np.full(len(r["true_biome"]), level)
                                 for r, level in zip(raws, (0, *C.DRIFT_LEVELS))])
        distances = np.concatenate([relative_familiarity(familiarity, familiarity_scores(familiarity, r))
                                    for r in raws])
        for head in ("biome", "month"):
            calibration[head] = C.calibrate_head(np.concatenate([r[f"logits_{head}"] for r in raws]),
                                                 np.concatenate([r[f"true_{head}"] for r in raws]),
                                                 distances, levels)
    return calibration, familiarity


def _sample(ds, cap: int, seed: int = 0):
    """``ds`` itself, or a seeded random ``cap`` of its images (in order) when it holds more."""
    if len(ds) <= cap:
        return ds
    keep = np.sort(np.random.default_rng(seed).choice(len(ds), cap, replace=False))
    return torch.utils.data.Subset(ds, keep.tolist())


def _drifter(level: int, seed: int = 0):
    """Normalised batch -> the same batch at drift ``level`` (seeded: the same at every run)."""
    generator = torch.Generator().manual_seed(seed + level)
    mean = torch.tensor(IMAGENET_MEAN)[:, None, None]
    std = torch.tensor(IMAGENET_STD)[:, None, None]
    return lambda images: (C.drift(images * std + mean, level, generator) - mean) / std


def familiarity_scores(familiarity: Familiarity | None, raw: dict) -> np.ndarray | None:
    """Each image's familiarity score (``predict_loader`` outputs); None without a familiarity score."""
    return None if familiarity is None else familiarity.score(raw["embed"], raw["image_stats"])


def relative_familiarity(familiarity: Familiarity | None, scores: np.ndarray | None) -> np.ndarray | None:
    """Familiarity ``scores`` over the flag's threshold (1 = the edge); None without scores or a threshold."""
    if scores is None or familiarity.threshold is None:
        return None
    return familiarity.relative(scores)


def _temperatures(meta: dict, familiarity: Familiarity | None, scores: np.ndarray | None) -> dict:
    """Per head, the temperature of each image of a split given its familiarity ``scores`` (or one for all)."""
    stored = meta.get("calibration") or {}
    distances = relative_familiarity(familiarity, scores)
    return {head: C.temperature_at(stored.get(head) or {}, distances) for head in ("biome", "month")}


def finish(cfg, classes, ds, device, workers, out: Path, history, show, refit: bool,
           val_raw: dict | None = None) -> RunResult:
    """Calibrate best.pt (after training), evaluate it on val and test; write metrics, reports and plots.

    ``val_raw``: ``predict_loader``'s outputs on the val split that training took when it wrote
    best.pt (the same weights in eval mode, the same images and transform), used instead of
    a second pass; None (``--eval-only``, or a resumed run whose best epoch came before the
    resume) evaluates val here."""
    from . import plots

    clock = _Clock()
    payload = load_checkpoint(out / "best.pt")
    meta = payload["meta"]
    model = build_model(meta)
    model.load_state_dict(payload["model"])
    model.to(device)
    raws, evaluated = {}, []
    for split in ("val", "test"):
        if not len(ds[split]):
            continue
        if split == "val" and val_raw is not None and len(val_raw["true_biome"]) == len(ds["val"]):
            raws[split] = val_raw
            continue
        raws[split] = predict_loader(model, make_loader(ds[split], cfg.batch_size * 2, workers, device=device),
                                     device, show)
        evaluated.append(split)
    clock.lap(f"evaluation of {' and '.join(evaluated) or 'nothing'}")
    if refit:
        calibration, familiarity = fit_reliability(model, ds, raws.get("val"), device, workers,
                                                   cfg.batch_size * 2, cfg.image_size, show,
                                                   cfg.camera if cfg.augment else 0.0)
        clock.lap("familiarity and calibration")
        fam_meta, fam_tensors = familiarity.to_checkpoint()
        meta.update(calibration=calibration, familiarity={
            **fam_meta, "threshold_split": "val" if "val" in raws else "train"})
        # Where a photo was taken, from the label map of the Earth (never from the training images' places).
        prior, said = geoprior.for_biomes(classes.biomes)
        print(said, flush=True)
        geo_meta, geo_tensors = prior.to_checkpoint() if prior else (None, {})
        meta["geo_prior"] = geo_meta
        save_checkpoint(out / "best.pt", payload["model"], meta, extra={**fam_tensors, **geo_tensors})
        clock.lap("geographic prior")
    else:
        familiarity = Familiarity.from_checkpoint(payload)
        prior = geoprior.GeoPrior.from_checkpoint(payload)
    # Each split's familiarity scores, once: the temperatures, the flagged share and the report use them.
    scores = {split: familiarity_scores(familiarity, raw) for split, raw in raws.items()}
    temperatures = {split: _temperatures(meta, familiarity, scores[split]) for split in raws}
    results = {split: split_metrics(raw, classes, temperatures[split]) for split, raw in raws.items()}
    # The biome again given the latitude, and given the place (latitude and longitude), where known (-1 elsewhere).
    with_lat = {split: _biome_given_place(prior, raw, ds[split].lats, None, temperatures[split])
                for split, raw in raws.items()}
    with_place = {split: _biome_given_place(prior, raw, ds[split].lats, ds[split].lons, temperatures[split])
                  for split, raw in raws.items()}
    for split, raw in raws.items():
        known = (with_lat[split] >= 0) & (raw["true_biome"] >= 0)
        if known.any():
            true = raw["true_biome"][known]
            results[split]["biome_acc_lat_known"] = float((raw["logits_biome"].argmax(1)[known] == true).mean())
            results[split]["biome_acc_with_lat"] = float((with_lat[split][known] == true).mean())
        placed = known & ~np.isnan(ds[split].lons)
        if placed.any():
            results[split]["biome_acc_with_place"] = float(
                (with_place[split][placed] == raw["true_biome"][placed]).mean())
    if familiarity is not None:
        for split in raws:
            results[split]["unfamiliar_share"] = float(familiarity.flags(scores[split]).mean())
    metrics = {"epoch": meta["epoch"], **results}
    written = {"metrics": files.write_json(out / "metrics.json", metrics)}
    if history is None:
        history = pd.read_csv(out / "history.csv").to_dict("records") if (out / "history.csv").exists() else []
    hist = pd.DataFrame(history)
    if len(hist):
        written["curves"] = files.save_figure(out / "curves.png", plots.plot_history(hist))
    split = "test" if "test" in raws else ("val" if "val" in raws else None)
    reliability = {}
    if split:
        written.update(_reports(raws[split], ds[split], classes, out, plots, temperatures[split], familiarity,
                                scores[split], with_lat[split], with_place[split]))
        reliability = _reliability(raws[split], temperatures[split])
        if reliability:
            written["reliability"] = files.save_figure(
                out / "reliability.png", plots.plot_reliability(reliability, f"({split} split)"))
    clock.lap("metrics, reports and plots")
    for name, m in results.items():
        print(f"{name}: " + "  ".join(f"{k} {v:.3f}" for k, v in m.items() if isinstance(v, float)))
    for head, c in (meta.get("calibration") or {}).items():
        if c.get("ece_before") is not None:
            drift = (f"; drifted val ECE {c['ece_drifted_before']:.3f} -> {c['ece_drifted_after']:.3f}, "
                     f"T grows as (distance / {c['drift_start']:.2f})^{c['drift_power']:.2f} beyond that distance"
                     if c.get("drift_power") and c.get("ece_drifted_before") is not None else "")
            print(f"calibration of {head} on val: T={c['temperature']:.2f}, "
                  f"ECE {c['ece_before']:.3f} -> {c['ece_after']:.3f}{drift}")
    print(f"after training: {clock}", flush=True)
    print(f"model and reports in {out}/", flush=True)
    return RunResult(out, metrics, hist, written, meta.get("calibration") or {}, reliability, clock.seconds)


class _Clock:
    """Seconds of the parts of a piece of work, in order; ``str`` says them in one line."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, part: str) -> None:
        now = time.perf_counter()
        self.seconds[part] = round(now - self._last, 2)
        self._last = now

    def __str__(self) -> str:
        parts = ", ".join(f"{part} {s:.0f} s" for part, s in self.seconds.items())
        return f"{sum(self.seconds.values()):.0f} s ({parts})"


def _reliability(raw: dict, temperatures: dict) -> dict:
    """Per labelled head: reliability before and after its temperature(s), with the ECEs."""
    curves = {}
    for head, t in temperatures.items():
        logits, true = raw[f"logits_{head}"], raw[f"true_{head}"]
        if not (true >= 0).any():
            continue
        before, after = C.softmax(logits), C.softmax(logits, t)
        curves[head] = {"before": C.reliability(before, true), "after": C.reliability(after, true),
                        # one number for the legend: the median over images when it varies
                        "temperature": float(np.median(t)), "varies": bool(np.ndim(t) > 0),
                        "ece_before": C.ece(before, true), "ece_after": C.ece(after, true)}
    return curves


def _biome_given_place(prior: geoprior.GeoPrior | None, raw: dict, lats: np.ndarray, lons: np.ndarray | None,
                       temperatures: dict) -> np.ndarray:
    """Per image, the biome index given its latitude (and longitude, where given) too (geoprior); -1 without
    a latitude or a prior."""
    if not prior:
        return np.full(len(lats), -1)
    given = prior.apply(C.softmax(raw["logits_biome"], temperatures["biome"]), lats, lons).argmax(1)
    return np.where(np.isnan(lats), -1, given)


def _reports(raw: dict, ds: ProcessedImages, classes, out: Path, plots, temperatures: dict,
             familiarity: Familiarity | None, scores: np.ndarray | None, with_lat: np.ndarray,
             with_place: np.ndarray) -> dict:
    from sklearn.metrics import classification_report

    written = {}
    probs = {head: C.softmax(raw[f"logits_{head}"], temperatures[head]) for head in ("biome", "month")}
    pred_b, pred_m = probs["biome"].argmax(1), probs["month"].argmax(1)
    true_b, true_m = raw["true_biome"], raw["true_month"]
    month_names = [MONTH_ABBR[m - 1].title() if 1 <= m <= 12 else str(m) for m in classes.months]
    rows, pairs = [], []
    for task, names, t, p in (("biome", classes.biomes, true_b, pred_b), ("month", month_names, true_m, pred_m)):
        if not (t >= 0).any():
            continue
        cm = M.labelled_confusion(t, p, len(names))
        written[f"confusion_{task}"] = files.save_figure(out / f"confusion_{task}.png",
                                                         plots.plot_confusion(cm, names, f"{task} (test)"))
        pairs.append(M.most_confused(cm, names).assign(head=task))
        keep = t >= 0
        report = classification_report(t[keep], p[keep], labels=list(range(len(names))),
                                       target_names=names, output_dict=True, zero_division=0)
        table = pd.DataFrame(report).T.rename_axis("class").reset_index()
        written[f"report_{task}"] = files.write_csv(out / f"report_{task}.csv", table)
    if pairs:
        written["confused_pairs"] = files.write_csv(out / "confused_pairs.csv", pd.concat(pairs))
    for t, p, names, task in ((true_b, pred_b, classes.biomes, "biome"), (true_m, pred_m, classes.months, "month")):
        rows.append(pd.DataFrame({f"true_{task}": [names[j] if j >= 0 else "" for j in t],
                                  f"pred_{task}": [names[j] for j in p],
                                  f"p_{task}": probs[task].max(1).round(4)}))
    for name, given in (("pred_biome_with_lat", with_lat), ("pred_biome_with_place", with_place)):
        if (given >= 0).any():   # the biome given each image's latitude (and longitude), where known
            rows.append(pd.DataFrame({name: [classes.biomes[j] if j >= 0 else "" for j in given]}))
    # Months in the table are each image's calendar months (the head's are northern-equivalent).
    calendar = rows[1].copy()
    for column in ("true_month", "pred_month"):
        calendar[column] = [north_month(m, h or "north") if m != "" else ""
                            for m, h in zip(calendar[column], ds.hemispheres)]
    rows[1] = calendar
    if familiarity is not None:
        rows.append(pd.DataFrame({"familiarity": scores.round(3), "unfamiliar": familiarity.flags(scores)}))
    pred = pd.concat([pd.DataFrame({"path": [str(p.relative_to(ds.root)) for p in ds.paths],
                                    "source": ds.sources}), *rows], axis=1)
    written["predictions"] = files.write_csv(out / "test_predictions.csv", pred)
    return written


def misclassified(out: str | Path, head: str = "biome", top: int = 16) -> pd.DataFrame:
    """The most confident wrong test predictions of one head, from test_predictions.csv."""
    pred = pd.read_csv(Path(out) / "test_predictions.csv", keep_default_na=False)
    wrong = pred[(pred[f"true_{head}"].astype(str) != "") &
                 (pred[f"true_{head}"].astype(str) != pred[f"pred_{head}"].astype(str))]
    return wrong.sort_values(f"p_{head}", ascending=False).head(top)


def test_metrics_by(out: str | Path, data: str | Path, column: str = "domain") -> pd.DataFrame | None:
    """Test metrics per value of a manifest column (``domain``: synthetic and real, ``region``, ...),
    from test_predictions.csv: images, biome accuracy, month exact and within +-1 (calendar months,
    circular). None when the manifest has no such column."""
    manifest = read_manifest(data)
    if column not in manifest:
        return None
    pred = pd.read_csv(Path(out) / "test_predictions.csv", keep_default_na=False, dtype=str)
    return M.scores_by(pred.merge(manifest[["path", column]], on="path", how="left"), column)

