"""Do our training defaults lose to a plain torchvision recipe? Real tiles split by region, and an upright set.

    python bench/recipe.py                  # 10 epochs at 64 px (about an hour on 2 busy cores)
    python bench/recipe.py --quick          # 2 epochs at 32 px, 3 scenes per biome-month: a smoke run
    python bench/recipe.py --try augment=false --try lr=1e-3    # also ours with these changes (real tiles)

Two data sets:

* REAL: the Blue Marble tiles of data/bluemarble (3,516 tiles of
  32 px). Split by region, so the test measures places never trained on: for
  each biome its regions are ranked by tile count (then name); the largest
  trains, the next is test, the third (where there is one) is val, any further
  ones train. A tile's twelve months (its ``tile_id``) are one group and never
  straddle two splits. The split goes into a copy of labels.csv
  (path,biome,month,group,split,lat) and through ``preprocess.preprocess``,
  which must keep every tile and every given split.
* SYNTHETIC: no ground-level photo collection is available offline, so the
  stand-in upright set is our oblique "orbital" scenes
  (``synthetic.write_scenes(look="orbital")``), split by preprocess.

Methods, same epochs and input size:

* ours: ``train.fit(TrainConfig(...))`` with the project's defaults; on the
  real tiles once with ``view="overhead"`` (what a user with satellite tiles
  says) and once with the default view; scored on the test split of the
  best epoch (``metrics.json``): biome accuracy and month within +-1.
* plain: the torchvision reference recipe: an ImageFolder-style data set of
  the same processed train/test images (read with ``images.read_image``),
  ResNet-18 from scratch (``resnet18(weights=None, num_classes=7)``), v2
  Resize, RandomHorizontalFlip, ToDtype, Normalize; SGD momentum 0.9, weight
  decay 5e-4, OneCycleLR to 0.1, batch 64, cross-entropy on the biome alone;
  test accuracy after the last epoch.

Each finished run is remembered in ``--work``/results.json under its settings,
so an interrupted or extended bench (more ``--try``) repeats only what is new;
``--fresh`` measures everything again. Torch and BLAS/OpenMP threads are pinned
(``--threads``, printed). Prints a table and puts the report at the top of
bench/results/recipe.md, newest run first (date, machine, threads, command,
settings, which data are real). The data, the two methods and the remembered
runs are in ``_recipe_runs``.
"""
from __future__ import annotations

import argparse
import dataclasses
import functools
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from _machine import pin_threads, record  # noqa: E402  (bench/ is on the path: the script's folder)
from _recipe_runs import (  # noqa: E402  (real_data.py imports the runs from here)
    PLAIN,
    counts_table,
    key_of,
    measure,
    prepare_real,
    prepare_synthetic,
    remembered,
    run_ours,
    run_plain,
)

from biomeseason.io import files  # noqa: E402
from biomeseason.io.files import UsageError  # noqa: E402

__all__ = ["key_of", "measure", "run_ours", "run_plain"]   # for bench/real_data.py

TITLE = "Recipe check: our training defaults against a plain torchvision recipe"
DATA = ROOT / "data" / "bluemarble"
WORK = ROOT / "runs" / "bench-recipe"
DEFAULTS = {"epochs": 10, "size": 64, "per_class": 6, "scene_size": 64}
QUICK = {"epochs": 2, "size": 32, "per_class": 3, "scene_size": 64}
# Settings of ours that the bench sets itself; --try may change any other TrainConfig field.
FIXED = ("data", "out", "epochs", "image_size", "progress", "resume", "eval_only", "force", "init",
         "pretrained", "limit")


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, help=f"epochs of every run (default: {DEFAULTS['epochs']}, "
                   f"{QUICK['epochs']} with --quick)")
    p.add_argument("--size", type=int, help=f"network input side in px (default: {DEFAULTS['size']}, "
                   f"{QUICK['size']} with --quick)")
    p.add_argument("--quick", action="store_true", help=f"a smoke run: {QUICK}")
    p.add_argument("--per-class", type=int, help="synthetic scenes per biome-month (default: "
                   f"{DEFAULTS['per_class']}, {QUICK['per_class']} with --quick)")
    p.add_argument("--try", dest="tries", action="append", default=[], metavar="KEY=VALUE[,KEY=VALUE]",
                   help="also train ours on the real tiles with these TrainConfig settings changed "
                        "(view=overhead unless given); repeatable (default: none)")
    p.add_argument("--seed", type=int, default=0, help="seed of scenes, splits and training (default: 0)")
    p.add_argument("--data", type=Path, default=DATA, help=f"Blue Marble folder (default: {DATA})")
    p.add_argument("--work", type=Path, default=WORK,
                   help=f"remembered results of finished runs (default: {WORK.relative_to(ROOT)})")
    p.add_argument("--fresh", action="store_true", help="measure every run again (default: reuse finished runs)")
    p.add_argument("--no-synthetic", action="store_true", help="skip the synthetic upright set (default: run it)")
    p.add_argument("--threads", type=int, default=2, help="torch and BLAS/OpenMP threads, pinned (default: 2)")
    return p


def settings_from(args) -> dict:
    s = dict(QUICK if args.quick else DEFAULTS)
    for key, value in (("epochs", args.epochs), ("size", args.size), ("per_class", args.per_class)):
        if value is not None:
            s[key] = value
    s["seed"] = args.seed
    if s["epochs"] < 1:
        raise UsageError(f"--epochs must be at least 1, not {s['epochs']}")
    if s["size"] < 32:
        raise UsageError(f"--size must be at least 32 (pixels), not {s['size']}")
    if s["per_class"] < 3:
        raise UsageError(f"--per-class must be at least 3 so that every split has scenes, not {s['per_class']}")
    if not (args.data / "labels.csv").is_file():
        raise UsageError(f"no labels.csv in {args.data}; pass --data with the Blue Marble folder")
    if args.threads < 1:
        raise UsageError(f"--threads must be at least 1, not {args.threads}")
    files.check_dir_target(args.work, flag="--work")
    return s


def parse_try(text: str) -> dict:
    """'augment=false,lr=1e-3' -> {'augment': False, 'lr': 0.001}, typed like TrainConfig's fields."""
    from biomeseason.training.loop import TrainConfig

    kinds = {f.name: type(f.default) for f in dataclasses.fields(TrainConfig)}
    out = {}
    for part in filter(None, text.split(",")):
        key, sep, value = part.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or key not in kinds or key in FIXED:
            raise UsageError(f"--try takes KEY=VALUE with a TrainConfig setting other than "
                             f"{', '.join(FIXED)}, not {part!r}")
        kind = kinds[key]
        try:
            if kind is bool:
                if value.lower() not in ("true", "false", "1", "0"):
                    raise ValueError
                out[key] = value.lower() in ("true", "1")
            else:
                out[key] = kind(value)
        except ValueError:
            raise UsageError(f"--try {key} needs a {kind.__name__}, not {value!r}") from None
    if not out:
        raise UsageError("--try needs at least one KEY=VALUE")
    out.setdefault("view", "overhead")
    dataclasses.replace(TrainConfig(), **out).check()
    return out


# ---------------------------------------------------------------- report

def fmt(v) -> str:
    return "—" if v is None else f"{v:.3f}"


def table(rows: list[dict]) -> str:
    lines = ["| data set | method | biome accuracy | month within ±1 | seconds |", "|---|---|---|---|---|"]
    lines += [f"| {r['data']} | {r['method']} | {fmt(r['biome_acc'])} | {fmt(r['month_within1'])} | "
              f"{r['seconds']:.0f} |" for r in rows]
    return "\n".join(lines)


def verdicts(rows: list[dict]) -> list[str]:
    out = []
    for data in dict.fromkeys(r["data"] for r in rows):
        group = [r for r in rows if r["data"] == data]
        plain = next((r for r in group if r["method"].startswith("plain")), None)
        if plain is None:
            continue
        for r in group:
            if r is plain:
                continue
            d = 100 * (r["biome_acc"] - plain["biome_acc"])
            out.append(f"- {data}: {r['method']} {'beats' if d > 0 else 'loses to'} the plain recipe by "
                       f"{abs(d):.1f} points of biome accuracy")
    return out


def report(rows, s, real_m, synth_m, others: dict) -> str:
    regions = real_m.groupby(["split", "biome"])["region"].first().unstack(0)
    lines = [f"- settings: epochs {s['epochs']}, input {s['size']} px, seed {s['seed']} (one seed per run)",
             "- REAL data: NASA Blue Marble Next Generation 2004 monthly tiles (data/bluemarble), "
             f"{len(real_m)} tiles of 32 px, split by region (never a region or a tile in two splits).",
             ]
    if synth_m is not None:
        lines.append(f"- SYNTHETIC data: {len(synth_m)} of our oblique 'orbital' scenes "
                     f"({s['per_class']} per biome-month, {s['scene_size']} px), a stand-in for an upright "
                     "photo set: no real ground-level collection is available offline. Split by preprocess.")
    lines += ["- ours: `train.fit(TrainConfig(...))` with the defaults except data, out, epochs, image_size, "
              "progress (and view where shown); test metrics of the best epoch (by validation).",
              "- plain: ImageFolder-style loading of the same processed images, "
              "`resnet18(weights=None, num_classes=7)`, v2 Resize + RandomHorizontalFlip + ToDtype + Normalize, "
              f"SGD momentum {PLAIN['momentum']}, weight decay {PLAIN['weight_decay']}, OneCycleLR max_lr "
              f"{PLAIN['max_lr']}, batch {PLAIN['batch_size']}, cross-entropy on the biome only; test accuracy "
              "after the last epoch.",
              "", "### Results (test split)", "", table(rows), "", *verdicts(rows), "",
              "Chance: biome 1/7 = 0.143 (the test splits are not balanced), month within ±1 3/12 = 0.250. "
              "One seed per run: the seed-to-seed spread is not measured here, so a gap of a few points is a "
              "hint, not a verdict. Seconds are wall clock on a shared machine (other jobs, and at times two "
              "of these runs, at once); ours includes per-epoch validation, calibration and reports.", "",
              "### Real split by region", "", "```", regions.fillna("-").to_string(), "", counts_table(real_m),
              "```", ""]
    if synth_m is not None:
        lines += ["### Synthetic split (by group, from preprocess)", "", "```", counts_table(synth_m), "```", ""]
    if others:
        lines += ["### Other runs remembered in --work (other settings; the same code and splits)", "",
                  "| data \\| method \\| settings | biome accuracy | month within ±1 | seconds | date |",
                  "|---|---|---|---|---|"]
        lines += [f"| {k.replace('|', chr(92) + '|')} | {fmt(v['biome_acc'])} | {fmt(v['month_within1'])} | "
                  f"{v['seconds']:.0f} | {v['date']} |" for k, v in sorted(others.items())]
        lines.append("")
    return "\n".join(lines)


def main() -> int:
    try:
        return bench(get_args_parser().parse_args())
    except KeyboardInterrupt:
        print("\ninterrupted: finished runs are remembered; run the same command again to go on",
              file=sys.stderr)
        return 130


def bench(args) -> int:
    try:
        s = settings_from(args)
        tries = [parse_try(t) for t in args.tries]
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    threads = pin_threads(args.threads)
    torch.manual_seed(s["seed"])
    rows, keys = [], []

    def add(data: str, method: str, key: str, run):
        # --fresh measures each key again once in this invocation.
        rows.append({"data": data, "method": method, **measure(key, args.work, fresh, run)})
        fresh.discard(key)
        keys.append(key)

    real_name, synth_name = "Blue Marble (REAL), unseen regions", "orbital scenes (SYNTHETIC upright stand-in)"
    with files.terminate_as_interrupt(), tempfile.TemporaryDirectory(prefix="bench-recipe-") as tmp_name:
        tmp = Path(tmp_name)
        real, real_m = prepare_real(args.data, tmp, s["seed"])
        print(counts_table(real_m))
        # Ours as a satellite user would set it, then the plain recipe (the main comparison is
        # complete early), the --try variants, and ours with the default view.
        real_runs = [("ours, view overhead", {"view": "overhead"})]
        real_runs += [("ours, " + ", ".join(f"{k}={v}" for k, v in c.items()), c) for c in tries]
        real_runs += [("ours, default view (upright)", {})]
        fresh = {key_of("real", "ours", s, c) for _, c in real_runs} | {key_of("real", "plain", s)} \
            if args.fresh else set()
        for i, (method, changes) in enumerate(real_runs):
            add(real_name, method, key_of("real", "ours", s, changes),
                functools.partial(run_ours, real, tmp / f"ours-real-{i}", s, changes))
            if i == 0:
                add(real_name, "plain torchvision recipe", key_of("real", "plain", s),
                    functools.partial(run_plain, real, s))
        synth_m = None
        if not args.no_synthetic:
            synth, synth_m = prepare_synthetic(tmp, s)
            print(counts_table(synth_m))
            fresh |= {key_of("synthetic", m, s) for m in ("ours", "plain")} if args.fresh else set()
            add(synth_name, "ours, default view (upright)", key_of("synthetic", "ours", s),
                functools.partial(run_ours, synth, tmp / "ours-synth", s, {}))
            add(synth_name, "plain torchvision recipe", key_of("synthetic", "plain", s),
                functools.partial(run_plain, synth, s))
    others = {k: v for k, v in remembered(args.work).items() if k not in keys}
    print()
    print(table(rows))
    print("\n".join(verdicts(rows)))
    record("recipe", TITLE, report(rows, s, real_m, synth_m, others), threads)
    return 0


if __name__ == "__main__":
    sys.exit(main())
