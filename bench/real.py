"""Zero-shot transfer to real imagery: train on synthetic scenes only, score real Blue Marble tiles.

    python bench/real.py                 # the demo settings (20 scenes per biome-month, 96 px, 20 epochs)
    python bench/real.py --quick         # 8 scenes, 64 px, 8 epochs: for iterating on the scenes
    python bench/real.py --model runs/demo/model/best.pt    # score an existing checkpoint, no training

Training goes through the library (synthetic.write_scenes -> preprocess ->
train.fit). Scoring reads the tiles of data/bluemarble whose
region is NOT in ``realstats.CALIBRATION_REGIONS`` (the regions the
generator's colours were measured on), with ``predict.load_model(...).predict``.

Pins torch and BLAS/OpenMP threads (``--threads``, printed). Prints, and puts
at the top of bench/results/real.md (real_quick.md with --quick; with the
date, the machine, the command, the settings and the regions scored): biome
accuracy and macro-F1, month exact and within +-1, season, ECE of each head,
the share of tiles flagged unfamiliar, and the share of all tiles whose answer
is wrong with p > 0.9 and not flagged. Each tile is predicted with its hemisphere (from its ``lat``),
as a user gives it with ``predict --hemisphere`` or a photo's EXIF GPS does:
the model answers the northern month a tile looks like and prediction turns
it into the tile's calendar month and season. Chance: biome
1/7 = 0.14, month within +-1 3/12 = 0.25, season 0.25.

Targets (real, held-out regions): biome accuracy >= 0.50, month within +-1 >= 0.50.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from _machine import pin_threads, record, settings  # noqa: E402  (bench/ is on the path: the script's folder)

from biomeseason.io import files  # noqa: E402
from biomeseason.labels import season_of  # noqa: E402
from biomeseason.model.checkpoint import load_checkpoint  # noqa: E402
from biomeseason.synthetic import realstats  # noqa: E402

DATA = ROOT / "data" / "bluemarble"
FIGURE = ROOT / "bench" / "results" / "real_reliability.png"
DEMO = {"per_class": 20, "image_size": 96, "epochs": 20, "scene_size": 256}    # demo --no-real
QUICK = {"per_class": 8, "image_size": 64, "epochs": 8, "scene_size": 128}
TARGETS = {"biome accuracy": 0.50, "month within +-1": 0.50}
CONFIDENT = 0.9
ECE_BINS = 15


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true",
                   help=f"small run for iterating: {QUICK} (default: the demo settings {DEMO})")
    p.add_argument("--model", type=Path, help="score this checkpoint; no training (default: train one)")
    p.add_argument("--data", type=Path, default=DATA, help=f"Blue Marble folder (default: {DATA})")
    p.add_argument("--work", type=Path, default=ROOT / "runs" / "bench-real",
                   help="scenes, processed data and model of the training run (default: runs/bench-real)")
    p.add_argument("--per-class", type=int, help="scenes per biome-month (default: from the settings)")
    p.add_argument("--epochs", type=int, help="training epochs (default: from the settings)")
    p.add_argument("--image-size", type=int, help="network input side (default: from the settings)")
    p.add_argument("--look", default="mixed", help="synthetic look: nadir | orbital | mixed (default: mixed)")
    p.add_argument("--seed", type=int, default=0, help="seed of scenes, splits and training (default: 0)")
    p.add_argument("--threads", type=int, default=2, help="torch and BLAS/OpenMP threads, pinned (default: 2)")
    return p


def settings_from(args) -> dict:
    s = settings(QUICK if args.quick else DEMO, args, ("per_class", "epochs", "image_size"))
    s["look"], s["seed"] = args.look, args.seed
    return s


def train(s: dict, work: Path) -> tuple[Path, dict]:
    """Scenes -> processed -> fit, all through the library; returns best.pt and the synthetic test metrics."""
    from biomeseason.prepare import preprocess
    from biomeseason.synthetic import generate as synthetic
    from biomeseason.training.loop import TrainConfig, fit

    files.claim_dir(work)   # ours (marker), so its sub-folders are ours to replace
    for sub in ("raw", "processed", "model"):
        shutil.rmtree(work / sub, ignore_errors=True)
    t0 = time.perf_counter()
    synthetic.write_scenes(work / "raw", per_class=s["per_class"], seed=s["seed"], size=s["scene_size"],
                           look=s["look"], workers=os.cpu_count() or 1, progress=False)
    t1 = time.perf_counter()
    preprocess.preprocess(work / "raw", work / "processed", seed=s["seed"], progress=False)
    t2 = time.perf_counter()
    cfg = TrainConfig(data=str(work / "processed"), out=str(work / "model"), arch="resnet18",
                      image_size=s["image_size"], epochs=s["epochs"], seed=s["seed"], progress=False)
    result = fit(cfg)
    t3 = time.perf_counter()
    s["seconds"] = {"scenes": round(t1 - t0, 1), "preprocess": round(t2 - t1, 1), "train": round(t3 - t2, 1)}
    return work / "model" / "best.pt", result.metrics.get("test", {})


def ece(confidence: np.ndarray, correct: np.ndarray, bins: int = ECE_BINS) -> float:
    """Expected calibration error: mean |accuracy - confidence| over equal-width bins, weighted by count."""
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        m = which == b
        if m.any():
            total += m.mean() * abs(correct[m].mean() - confidence[m].mean())
    return float(total)


def score(model: Path, data: Path) -> tuple[dict, pd.DataFrame, list[str]]:
    from sklearn.metrics import f1_score

    from biomeseason.labels import Vocabulary
    from biomeseason.predict.predictor import load_model

    labels = pd.read_csv(data / "labels.csv")
    held = labels[~labels["region"].isin(realstats.CALIBRATION_REGIONS)].reset_index(drop=True)
    regions = sorted(held["region"].unique())
    predictor = load_model(model, camera="composite")   # Blue Marble tiles: a two-kind model's composite kind
    paths = [data / p for p in held["path"]]
    hemispheres = ["south" if lat < 0 else "north" for lat in held["lat"]]
    preds = predictor.predict(paths, batch_size=64, hemisphere=hemispheres)
    # The same network with no calibration at all (T = 1 for every image): the "before" of the diagram.
    predictor.calibration = {head: {} for head in predictor.calibration}
    predictor.temperatures = {head: 1.0 for head in predictor.temperatures}
    plain = predictor.predict(paths, batch_size=64, hemisphere=hemispheres)
    vocab = Vocabulary.load()
    df = held.assign(
        true_biome=[vocab.resolve(b).biome for b in held["biome"]],
        biome_pred=[p.biome for p in preds], biome_p=[p.biome_p for p in preds],
        month_pred=[p.month for p in preds], month_p=[p.month_p for p in preds],
        season_pred=[p.season for p in preds],
        unfamiliar=[getattr(p, "unfamiliar", None) for p in preds])
    df.attrs["probs"] = {
        "before": np.array([[p.biome_probs[b] for b in predictor.biomes] for p in plain]),
        "after": np.array([[p.biome_probs[b] for b in predictor.biomes] for p in preds]),
        "labels": np.array([predictor.biomes.index(b) if b in predictor.biomes else -1 for b in df["true_biome"]])}
    df["true_season"] = [season_of(m, "south" if lat < 0 else "north") for m, lat in zip(df["month"], df["lat"])]
    d = np.abs(df["month"] - df["month_pred"]) % 12
    df["month_dist"] = np.minimum(d, 12 - d)
    df["biome_ok"] = df["true_biome"] == df["biome_pred"]
    flagged = df["unfamiliar"].map(lambda v: bool(v) if v is not None else False)
    has_flag = df["unfamiliar"].notna().all()
    m = {
        "tiles": len(df),
        "biome accuracy": df["biome_ok"].mean(),
        "biome macro-F1": f1_score(df["true_biome"], df["biome_pred"], average="macro", zero_division=0),
        "month exact": (df["month_dist"] == 0).mean(),
        "month within +-1": (df["month_dist"] <= 1).mean(),
        "season": (df["season_pred"] == df["true_season"]).mean(),
        "ECE biome": ece(df["biome_p"].to_numpy(), df["biome_ok"].to_numpy()),
        "ECE biome, uncalibrated (T = 1)": ece(df.attrs["probs"]["before"].max(1), df["biome_ok"].to_numpy()),
        "ECE month": ece(df["month_p"].to_numpy(), (df["month_dist"] == 0).to_numpy()),
        "flagged unfamiliar": flagged.mean() if has_flag else "n/a",
        "wrong biome, p > 0.9, not flagged": (~df["biome_ok"] & (df["biome_p"] > CONFIDENT) & ~flagged).mean(),
        "wrong month, p > 0.9, not flagged": ((df["month_dist"] > 0) & (df["month_p"] > CONFIDENT)
                                              & ~flagged).mean(),
    }
    return m, df, regions


def _fmt(v) -> str:
    return f"{v:.3f}" if isinstance(v, (float, np.floating)) else str(v)


def report(m: dict, df: pd.DataFrame, regions: list[str], s: dict, model: Path, synthetic_test: dict) -> str:
    lines = [f"- model: {model}" + (" (trained by this run on synthetic scenes only)" if s.get("trained") else
                                    " (given with --model)"),
             f"- settings: {s}",
             f"- real tiles scored: {m['tiles']} from the held-out regions {', '.join(regions)}",
             f"- calibration regions (colours measured, not scored): {', '.join(realstats.CALIBRATION_REGIONS)}",
             "", "### Real tiles (held-out regions)", "", "| metric | value | target |", "|---|---|---|"]
    lines += [f"| {k} | {_fmt(v)} | {TARGETS.get(k, '')} |" for k, v in m.items()]
    if synthetic_test:
        lines += ["", "### Synthetic test split of the same run", "", "| metric | value |", "|---|---|"]
        lines += [f"| {k} | {_fmt(v)} |" for k, v in synthetic_test.items() if isinstance(v, (int, float))]
    lines += ["", "### Per region (real)", "", "| biome | region | lat | tiles | biome acc | month +-1 | season |",
              "|---|---|---|---|---|---|---|"]
    for (b, r), g in df.groupby(["biome", "region"]):
        lines.append(f"| {b} | {r} | {g['lat'].mean():.0f} | {len(g)} | {g['biome_ok'].mean():.2f} | "
                     f"{(g['month_dist'] <= 1).mean():.2f} | {(g['season_pred'] == g['true_season']).mean():.2f} |")
    calibration = (load_checkpoint(model)["meta"].get("calibration") or {})
    if calibration:
        lines += ["", "### Calibration stored in the model (fitted on synthetic validation images, clean and drifted)",
                  "", "| head | T0 | grows beyond distance | power | val ECE before -> after | drifted val ECE before "
                  "-> after |", "|---|---|---|---|---|---|"]
        for head, c in calibration.items():
            lines.append(f"| {head} | {_fmt(c.get('temperature'))} | {_fmt(c.get('drift_start'))} | "
                         f"{_fmt(c.get('drift_power'))} | {_fmt(c.get('ece_before'))} -> {_fmt(c.get('ece_after'))} | "
                         f"{_fmt(c.get('ece_drifted_before'))} -> {_fmt(c.get('ece_drifted_after'))} |")
        lines += ["", f"Reliability of the biome answers on the real tiles: `{FIGURE.relative_to(ROOT)}`."]
    cm = pd.crosstab(df["biome"], df["biome_pred"])
    lines += ["", "### Biome confusion (rows true, columns predicted; real)", "",
              "```", cm.to_string(), "```", ""]
    return "\n".join(lines)


def save_reliability(df: pd.DataFrame) -> None:
    """The reliability diagram of the biome head on the real tiles, uncalibrated and calibrated."""
    from biomeseason.model import calibration as C
    from biomeseason.training import plots

    probs = df.attrs["probs"]
    curve = {"before": C.reliability(probs["before"], probs["labels"]),
             "after": C.reliability(probs["after"], probs["labels"]),
             "ece_before": C.ece(probs["before"], probs["labels"]), "ece_after": C.ece(probs["after"], probs["labels"]),
             "temperature": None}   # one per tile: it grows with the tile's familiarity distance
    fig = plots.plot_reliability({"biome": curve}, f"(real tiles, {len(df)} held out)")
    files.save_figure(FIGURE, fig)


def main() -> int:
    args = get_args_parser().parse_args()
    if not (args.data / "labels.csv").is_file():
        print(f"error: no labels.csv in {args.data}; pass --data", file=sys.stderr)
        return 2
    if args.model is not None and not args.model.is_file():
        print(f"error: --model {args.model} is not a file", file=sys.stderr)
        return 2
    if args.look not in ("nadir", "orbital", "mixed"):
        print(f"error: --look must be nadir, orbital or mixed, not {args.look!r}", file=sys.stderr)
        return 2
    threads = pin_threads(args.threads)
    s = settings_from(args)
    synthetic_test: dict = {}
    if args.model is None:
        print(f"training on synthetic scenes: {s}", flush=True)
        model, synthetic_test = train(s, args.work)
        s["trained"] = True
    else:
        model = args.model
    m, df, regions = score(model, args.data)
    text = report(m, df, regions, s, model, synthetic_test)
    if not args.quick:
        save_reliability(df)
    print(text)
    record("real_quick" if args.quick else "real", "Zero-shot transfer: synthetic training, real Blue Marble tiles",
           text, threads)
    return 0


if __name__ == "__main__":
    sys.exit(main())
