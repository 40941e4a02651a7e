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
``--fresh`` measures everything again. Prints a table and writes
bench/results/recipe.md (date, machine, settings, which data are real).
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import functools
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
import torchvision  # noqa: E402
from _machine import machine  # noqa: E402
from torchvision.transforms import v2  # noqa: E402

from biomeseason import files  # noqa: E402
from biomeseason.files import UsageError  # noqa: E402

DATA = ROOT / "data" / "bluemarble"
RESULTS = ROOT / "bench" / "results" / "recipe.md"
WORK = ROOT / "runs" / "bench-recipe"
DEFAULTS = {"epochs": 10, "size": 64, "per_class": 6, "scene_size": 64}
QUICK = {"epochs": 2, "size": 32, "per_class": 3, "scene_size": 64}
# Settings of ours that the bench sets itself; --try may change any other TrainConfig field.
FIXED = ("data", "out", "epochs", "image_size", "progress", "resume", "eval_only", "force", "init",
         "pretrained", "limit")
PLAIN = {"optimizer": "SGD", "momentum": 0.9, "weight_decay": 5e-4, "max_lr": 0.1, "batch_size": 64}
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


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
    p.add_argument("--out", type=Path, default=RESULTS, help=f"report (default: {RESULTS.relative_to(ROOT)})")
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
    files.check_output_file(args.out, looks_ours=lambda p: p.read_text(errors="replace").startswith("# Recipe"))
    files.check_dir_target(args.work, flag="--work")
    return s


def parse_try(text: str) -> dict:
    """'augment=false,lr=1e-3' -> {'augment': False, 'lr': 0.001}, typed like TrainConfig's fields."""
    from biomeseason.train import TrainConfig

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


# ---------------------------------------------------------------- data

def region_split(labels: pd.DataFrame) -> pd.DataFrame:
    """labels.csv with a 'split' column: per biome, the largest region trains, the next tests, the third validates."""
    split = {}
    for biome, rows in labels.groupby("biome"):
        counts = rows.groupby("region").size()
        ranked = sorted(counts.index, key=lambda r: (-counts[r], r))
        if len(ranked) < 2:
            raise UsageError(f"biome {biome} has a single region; a split by region needs two or more")
        for i, region in enumerate(ranked):
            split[biome, region] = "test" if i == 1 else "val" if i == 2 else "train"
    return labels.assign(split=[split[b, r] for b, r in zip(labels["biome"], labels["region"])])


def prepare_real(data: Path, tmp: Path, seed: int) -> tuple[Path, pd.DataFrame]:
    """The tiles, split by region, through our preprocessing; checks that every tile and split survived."""
    from biomeseason.preprocess import preprocess

    labels = region_split(pd.read_csv(data / "labels.csv"))
    table = labels.assign(group=labels["tile_id"])[["path", "biome", "month", "group", "split", "lat"]]
    files.write_csv(tmp / "labels_by_region.csv", table)
    result = preprocess(raw=data, out=tmp / "real", labels_csv=tmp / "labels_by_region.csv", size=32,
                        seed=seed, workers=1, progress=False)
    m = result.manifest.merge(labels[["path", "region", "tile_id", "split"]].rename(
        columns={"path": "source", "split": "given"}), on="source", how="left")
    lost = sorted(set(labels["path"]) - set(m["source"]))
    assert not lost, f"preprocessing dropped {len(lost)} tiles, e.g. {lost[:3]}"
    moved = m[m["split"] != m["given"]]
    assert moved.empty, f"{len(moved)} tiles moved out of their region's split, e.g. {moved['source'].head(3).tolist()}"
    straddle = m.groupby("tile_id")["split"].nunique()
    assert (straddle == 1).all(), f"tiles in two splits: {straddle[straddle > 1].index[:3].tolist()}"
    region_straddle = m.groupby("region")["split"].nunique()
    assert (region_straddle == 1).all(), "a region in two splits"
    print(f"real tiles: kept {len(m)} of {len(labels)}; {m['group'].nunique()} groups "
          f"({m['tile_id'].nunique()} tiles, each in one split)")
    return tmp / "real", m


def prepare_synthetic(tmp: Path, s: dict) -> tuple[Path, pd.DataFrame]:
    from biomeseason import synthetic
    from biomeseason.preprocess import preprocess

    synthetic.write_scenes(tmp / "scenes", per_class=s["per_class"], seed=s["seed"], size=s["scene_size"],
                           look="orbital", workers=1, progress=False)
    result = preprocess(raw=tmp / "scenes", out=tmp / "synthetic", size=s["scene_size"], seed=s["seed"],
                        workers=1, progress=False)
    m = result.manifest
    expected = s["per_class"] * 7 * 12
    assert len(m) == expected, f"synthetic: kept {len(m)} of {expected} scenes"
    print(f"synthetic orbital scenes: kept {len(m)} of {expected}")
    return tmp / "synthetic", m


def counts_table(m: pd.DataFrame) -> str:
    t = pd.crosstab(m["biome"], m["split"], margins=True, margins_name="total")
    return t[[c for c in ("train", "val", "test", "total") if c in t]].to_string()


# ---------------------------------------------------------------- the two methods

def run_ours(processed: Path, out: Path, s: dict, changes: dict, domain: str = "") -> dict:
    """``train.fit`` with the project's defaults but for ``changes``; the test split's biome accuracy and
    month within +-1, of the images of one ``domain`` (a manifest column's value) when given."""
    from biomeseason.evaluation import test_metrics_by
    from biomeseason.train import TrainConfig, fit

    cfg = TrainConfig(data=str(processed), out=str(out), epochs=s["epochs"], image_size=s["size"],
                      seed=s["seed"], progress=False, **changes)
    t0 = time.perf_counter()
    result = fit(cfg)
    seconds = time.perf_counter() - t0
    test = result.metrics["test"]
    if domain:
        test = test_metrics_by(out, processed, "domain").loc[domain].to_dict()
    given = result.metrics["test"].get("biome_acc_with_lat")   # over the test images that have a latitude
    return {"biome_acc": test["biome_acc"], "month_within1": test["month_within1"], "seconds": seconds,
            "best_epoch": result.metrics.get("epoch"), "biome_acc_with_lat": given}


class TensorFolder(torch.utils.data.Dataset):
    """ImageFolder's contract (classes sorted by name, (image, class index) samples) over decoded tensors."""

    def __init__(self, root: Path, rows: pd.DataFrame, classes: list, transform, target: str = "biome"):
        from biomeseason.images import read_image

        self.classes = classes
        self.targets = [classes.index(b) for b in rows[target]]
        # The tiles are tiny: decode them once, as ImageFolder would on every epoch.
        self.images = [v2.functional.pil_to_tensor(read_image(root / p).image) for p in rows["path"]]
        self.transform = transform

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return self.transform(self.images[i]), self.targets[i]


def run_plain(processed: Path, s: dict, target: str = "biome") -> dict:
    """The torchvision classification recipe on one label (``biome``, or ``month``: its own network,
    calendar months as classes); test accuracy (biome) or month within +-1 after the last epoch."""
    m = pd.read_csv(processed / "manifest.csv", dtype=str, keep_default_na=False)
    m = m[m[target] != ""]
    if target == "month":
        m = m.assign(month=m["month"].astype(int))
    classes = sorted(m[target].unique())
    train_tf = v2.Compose([v2.Resize(s["size"], antialias=True), v2.RandomHorizontalFlip(),
                           v2.ToDtype(torch.float32, scale=True), v2.Normalize(MEAN, STD)])
    test_tf = v2.Compose([v2.Resize(s["size"], antialias=True),
                          v2.ToDtype(torch.float32, scale=True), v2.Normalize(MEAN, STD)])
    train = TensorFolder(processed, m[m["split"] == "train"], classes, train_tf, target)
    test = TensorFolder(processed, m[m["split"] == "test"], classes, test_tf, target)
    torch.manual_seed(s["seed"])
    loader = torch.utils.data.DataLoader(train, batch_size=PLAIN["batch_size"], shuffle=True,
                                         generator=torch.Generator().manual_seed(s["seed"]))
    model = torchvision.models.resnet18(weights=None, num_classes=len(classes))
    opt = torch.optim.SGD(model.parameters(), lr=PLAIN["max_lr"], momentum=PLAIN["momentum"],
                          weight_decay=PLAIN["weight_decay"])
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=PLAIN["max_lr"], epochs=s["epochs"],
                                                steps_per_epoch=len(loader))
    t0 = time.perf_counter()
    for epoch in range(s["epochs"]):
        model.train()
        total = 0.0
        for x, y in loader:
            loss = torch.nn.functional.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(y)
        print(f"plain epoch {epoch + 1}/{s['epochs']}: train loss {total / len(train):.3f}", flush=True)
    model.eval()
    right, probs = [], []
    with torch.no_grad():
        for x, y in torch.utils.data.DataLoader(test, batch_size=256):
            out = model(x)
            p = out.argmax(1)
            probs.append(out.softmax(1))
            if target == "month":   # circular distance between month indices (classes are 1..12)
                d = (p - y).abs() % len(classes)
                right.append(torch.minimum(d, len(classes) - d) <= 1)
            else:
                right.append(p == y)
    share = torch.cat(right).float().mean().item()
    given = None
    if target == "biome" and "lat" in m:   # the same geographic prior as ours (the label map's), on its softmax
        from biomeseason import geoprior

        te = m[m["split"] == "test"]
        prior, _ = geoprior.for_biomes(list(classes))
        lats = pd.to_numeric(te["lat"], errors="coerce").to_numpy()
        known = ~np.isnan(lats)
        if prior and known.any():
            answer = prior.apply(torch.cat(probs).numpy(), lats).argmax(1)
            given = float((answer == np.array(test.targets))[known].mean())
    return {"biome_acc": share if target == "biome" else None,
            "month_within1": share if target == "month" else None, "seconds": time.perf_counter() - t0,
            "biome_acc_with_lat": given}


# ---------------------------------------------------------------- runs, remembered

def remembered(work: Path) -> dict:
    path = work / "results.json"
    try:
        return json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, ValueError):
        return {}


def measure(key: str, work: Path, fresh: set, run, needs: tuple = ()) -> dict:
    """A run's result: remembered from an earlier run with the same settings (and every figure of
    ``needs``), or measured and remembered.

    The file is read again before each run and each write, so two benches may share ``--work``.
    """
    cache = remembered(work)
    if key in cache and key not in fresh and all(k in cache[key] for k in needs):
        print(f"{key}: from an earlier run ({cache[key]['date']})", flush=True)
        return cache[key]
    print(f"{key}: training", flush=True)
    result = {**run(), "date": datetime.datetime.now().isoformat(timespec="seconds")}
    files.claim_dir(work, flag="--work")
    files.write_json(work / "results.json", {**remembered(work), key: result})
    return result


def key_of(data: str, method: str, s: dict, changes: dict | None = None) -> str:
    shown = {k: s[k] for k in ("epochs", "size", "seed")}
    if data == "synthetic":
        shown.update(per_class=s["per_class"], scene_size=s["scene_size"])
    return f"{data} | {method} | {json.dumps({**shown, **(changes or {})}, sort_keys=True)}"


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
    lines = ["# Recipe check: our training defaults against a plain torchvision recipe", "",
             f"- date: {datetime.datetime.now().isoformat(timespec='seconds')}",
             f"- machine: {machine()}",
             f"- settings: epochs {s['epochs']}, input {s['size']} px, seed {s['seed']} (one seed per run)",
             "- command: `nice -n 10 .venv/bin/python bench/recipe.py "
             + " ".join(sys.argv[1:]) + "`",
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
              "", "## Results (test split)", "", table(rows), "", *verdicts(rows), "",
              "Chance: biome 1/7 = 0.143 (the test splits are not balanced), month within ±1 3/12 = 0.250. "
              "One seed per run: the seed-to-seed spread is not measured here, so a gap of a few points is a "
              "hint, not a verdict. Seconds are wall clock on a shared machine (other jobs, and at times two "
              "of these runs, at once); ours includes per-epoch validation, calibration and reports.", "",
              "## Real split by region", "", "```", regions.fillna("-").to_string(), "", counts_table(real_m),
              "```", ""]
    if synth_m is not None:
        lines += ["## Synthetic split (by group, from preprocess)", "", "```", counts_table(synth_m), "```", ""]
    if others:
        lines += ["## Other runs remembered in --work (other settings; the same code and splits)", "",
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
    files.write_text(args.out, report(rows, s, real_m, synth_m, others))
    print(f"written {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
