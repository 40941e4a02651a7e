"""The work after training (evaluation, the familiarity fit, calibration on drifted images) against one epoch.

    python bench/after_training.py [--threads 2] [--epochs 1] [--work runs/bench-after-training] [--data DIR]

On REAL data: every land tile of the Blue Marble maps at 64 px (``python -m biomeseason
earth`` on the repository's ``data/bluemarble_maps``, then preprocessing; kept in
``--work`` and reused; ``--data`` names such a folder made before, e.g. ``runs/earth/processed`` of
``make earth-model``), the data the shipped model is trained on. Two runs
of ``train`` with the same seed and settings (ResNet-18, 64 px, ``--epochs``):

- ours: the familiarity score fitted on at most ``evaluation.FAMILIARITY_SAMPLES`` training
  images and the drift temperatures on at most ``evaluation.DRIFT_SAMPLES`` validation
  images per level;
- baseline: every training and validation image, as before those caps.

Prints and records each run's seconds per epoch and after training, by part, the ratio of
the work after training to one epoch (target: at most 1/3), and what the caps change in
what training stores: the share of test tiles flagged unfamiliar, and the test ECE per head.
Writes ``bench/results/after_training.md`` (newest run first).
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import pin_threads, report  # noqa: E402

from biomeseason.earth import geoprior, worldmap  # noqa: E402
from biomeseason.training import evaluation  # noqa: E402
from biomeseason.training.loop import TrainConfig, fit  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "runs" / "bench-after-training"


def earth_tiles(work: Path) -> Path:
    """The Earth's tiles at 64 px, preprocessed (made once, then reused)."""
    processed = work / "processed"
    if (processed / "manifest.csv").is_file():
        return processed
    python = sys.executable
    subprocess.run([python, "-m", "biomeseason", "earth", "--out", str(work / "earth"), "--scales", "64",
                    "--hold-out-regions", str(ROOT / "data" / "bluemarble" / "labels.csv")], check=True, cwd=ROOT)
    subprocess.run([python, str(ROOT / "dataset_preproc.py"), "--raw", str(work / "earth" / "raw"),
                    "--labels", str(work / "earth" / "labels.csv"), "--out", str(processed), "--size", "64"],
                   check=True, cwd=ROOT)
    return processed


def run(data: Path, out: Path, epochs: int, capped: bool) -> dict:
    """One training run; {epoch seconds, after-training seconds by part, test figures}."""
    caps = (evaluation.FAMILIARITY_SAMPLES, evaluation.DRIFT_SAMPLES)
    for cached in (geoprior._from_label_map, worldmap.label_map, worldmap.load_label_maps):
        cached.cache_clear()   # each run builds the Earth's prior itself, as a fresh process would
    if not capped:
        evaluation.FAMILIARITY_SAMPLES = evaluation.DRIFT_SAMPLES = 10 ** 9
    try:
        cfg = TrainConfig(data=str(data), out=str(out), force=True, epochs=epochs, image_size=64,
                          view="overhead", seed=0, progress=False)
        result = fit(cfg)
    finally:
        evaluation.FAMILIARITY_SAMPLES, evaluation.DRIFT_SAMPLES = caps
    test = result.metrics["test"]
    return {"epoch": float(result.history["seconds"].mean()), "after": result.seconds,
            "flagged": test.get("unfamiliar_share"), "biome_ece": test.get("biome_ece"),
            "month_ece": test.get("month_ece"), "biome_acc": test.get("biome_acc")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="torch and BLAS threads, pinned (default: 2)")
    parser.add_argument("--epochs", type=int, default=1, help="epochs of each run (default: 1)")
    parser.add_argument("--work", type=Path, default=WORK, help=f"tiles and runs (default: {WORK.relative_to(ROOT)})")
    parser.add_argument("--data", type=Path, help="a processed folder of the Earth's 64 px tiles to use (default: "
                                                  "made in --work)")
    args = parser.parse_args()
    threads = pin_threads(args.threads)
    data = (args.data or earth_tiles(args.work)).resolve()
    runs = {"ours (capped)": run(data, args.work / "ours", args.epochs, True),
            "baseline (every image)": run(data, args.work / "baseline", args.epochs, False)}

    lines = [f"REAL data: the Blue Marble land tiles at 64 px in `{data.relative_to(ROOT)}`; ResNet-18, "
             f"{args.epochs} epoch(s), seed 0; caps: {evaluation.FAMILIARITY_SAMPLES} training images for the "
             f"familiarity score, {evaluation.DRIFT_SAMPLES} validation images per drift level.", "",
             "| run | s per epoch | s after training | after / epoch | parts | test flagged | "
             "test biome ECE | test month ECE | test biome acc |", "|---|---|---|---|---|---|---|---|---|"]
    for name, r in runs.items():
        after = sum(r["after"].values())
        parts = "; ".join(f"{k} {v:.0f} s" for k, v in r["after"].items())
        lines.append(f"| {name} | {r['epoch']:.0f} | {after:.0f} | {after / r['epoch']:.2f} | {parts} | "
                     f"{r['flagged']:.3f} | {r['biome_ece']:.3f} | {r['month_ece']:.3f} | {r['biome_acc']:.3f} |")
    ours, base = runs.values()
    ratio = sum(ours["after"].values()) / ours["epoch"]
    lines += ["", f"ratio: the work after training takes {ratio:.2f} of an epoch (target <= 0.33: "
              f"{'met' if ratio <= 1 / 3 else 'NOT met'}); the baseline took "
              f"{sum(base['after'].values()) / base['epoch']:.2f}; ours is "
              f"{sum(base['after'].values()) / sum(ours['after'].values()):.1f}x faster after training."]
    report("after_training", "The work after training, against one epoch", lines, threads)
    return 0


if __name__ == "__main__":
    sys.exit(main())
