"""Learning from small real data: Blue Marble tiles, whole regions held out, three methods, three seeds.

    python bench/real_data.py                                    # 10 epochs at 64 px, seeds 0 1 2
    python bench/real_data.py --init runs/bench-real/model/best.pt   # (c) from this model
    python bench/real_data.py --quick                            # 1 epoch at 32 px, one seed: a smoke run
    python bench/real_data.py --methods a b                      # some of the methods (the report lists those)

The tiles of data/bluemarble are split as the demo splits them
(``demo.real_split``): the regions outside ``realstats.CALIBRATION_REGIONS``
are the test split, whole, so every test tile comes from a region no method
trained on, nor measured the synthetic scenes' colours on; the calibration
regions train, and 15% of their places (a place's twelve months together)
validate. They go through our preprocessing, which must keep every tile in
its split. Methods, each with the same epochs and input size, per seed:

(a) plain: the torchvision reference recipe (``recipe.run_plain``): an
    ImageFolder-style set, ResNet-18 from scratch, Resize + horizontal flip,
    SGD one-cycle; one network for the biome and another for the month
    (calendar months as classes), scored after the last epoch.
(b) ours from scratch: ``train.fit`` with the project's defaults (best epoch
    by validation).
(c) ours with ``--init`` from a model trained on synthetic scenes alone (by
    default the one ``bench/real.py`` trains, ``runs/bench-real/model/best.pt``).
(d) ours from scratch on the real tiles and ``--per-class`` synthetic scenes
    per biome-month together, as ``make demo`` trains (``demo.write_training_data``:
    the same split of the tiles; the scenes split by preprocess); scored on the
    same held-out real tiles only.

Pins torch and BLAS/OpenMP threads (``--threads``, printed). Prints, and puts at
the top of bench/results/real_data.md (real_data_quick.md with --quick): mean
+- sd over the seeds of biome accuracy and month within +-1 on the held-out
regions, each run, the split, the date, the machine and the command. Finished
runs are remembered in ``--work`` (``recipe.measure``), so an interrupted bench
goes on where it stopped.
"""
from __future__ import annotations

import argparse
import dataclasses
import functools
import hashlib
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pandas as pd  # noqa: E402
from _machine import pin_threads, record, settings  # noqa: E402
from recipe import key_of, measure, run_ours, run_plain  # noqa: E402

from biomeseason import demo  # noqa: E402
from biomeseason.io import files  # noqa: E402
from biomeseason.io.files import UsageError  # noqa: E402
from biomeseason.training.loop import TrainConfig  # noqa: E402

DATA = ROOT / "data" / "bluemarble"
WORK = ROOT / "runs" / "bench-real-data"
INIT = ROOT / "runs" / "bench-real" / "model" / "best.pt"
DEFAULTS = {"epochs": 10, "size": 64, "seeds": [0, 1, 2], "per_class": 8}
QUICK = {"epochs": 1, "size": 32, "seeds": [0], "per_class": 1}
TARGET_POINTS = 5
# Biome and month from the image alone; the biome again given each tile's latitude (geoprior), which the
# plain recipe cannot take.
FIGURES = ("biome_acc", "month_within1", "biome_acc_with_lat")
PLAIN = "(a) plain torchvision recipe"
METHODS = ("a", "b", "c", "d")


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, help=f"epochs of every run (default: {DEFAULTS['epochs']})")
    p.add_argument("--size", type=int, help=f"network input side in px (default: {DEFAULTS['size']})")
    p.add_argument("--seeds", type=int, nargs="+", help=f"seeds (default: {DEFAULTS['seeds']})")
    p.add_argument("--per-class", type=int, help="synthetic scenes per biome-month for (d) (default: "
                   f"{DEFAULTS['per_class']}, as make demo)")
    p.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS),
                   help="which methods to run (default: all); (a) is always in the report when it has run")
    p.add_argument("--quick", action="store_true", help=f"a smoke run: {QUICK}")
    p.add_argument("--init", type=Path, default=INIT,
                   help=f"checkpoint for (c) (default: {INIT.relative_to(ROOT)}, written by bench/real.py)")
    p.add_argument("--data", type=Path, default=DATA, help=f"Blue Marble folder (default: {DATA})")
    p.add_argument("--work", type=Path, default=WORK, help=f"remembered runs (default: {WORK.relative_to(ROOT)})")
    p.add_argument("--threads", type=int, default=2, help="torch and BLAS/OpenMP threads, pinned (default: 2)")
    return p


def settings_from(args) -> dict:
    s = settings(QUICK if args.quick else DEFAULTS, args, ("epochs", "size", "seeds", "per_class"))
    if s["epochs"] < 1 or s["size"] < 32 or s["per_class"] < 1:
        raise UsageError("--epochs and --per-class must be at least 1 and --size at least 32")
    if not (args.data / "labels.csv").is_file():
        raise UsageError(f"no labels.csv in {args.data}; pass --data with the Blue Marble folder")
    if "c" in args.methods and not args.init.is_file():
        raise UsageError(f"--init {args.init} is not a file: run `python bench/real.py` first (it trains the "
                         "synthetic model) or pass --init")
    files.check_dir_target(args.work, flag="--work")
    return s


def defaults_digest() -> str:
    """Eight hex digits that change whenever a default of ``TrainConfig`` does."""
    return hashlib.sha256(json.dumps(dataclasses.asdict(TrainConfig()), sort_keys=True).encode()).hexdigest()[:8]


def prepare(data: Path, tmp: Path) -> tuple[Path, pd.DataFrame]:
    """The tiles split as the demo splits them, through our preprocessing; every tile kept in its split."""
    from biomeseason.prepare.preprocess import preprocess

    tiles = demo.real_split(pd.read_csv(data / "labels.csv"), seed=0)
    files.write_csv(tmp / "labels.csv", tiles[["path", "biome", "month", "group", "split", "lat", "region"]])
    result = preprocess(raw=data, out=tmp / "real", labels_csv=tmp / "labels.csv", size=32, seed=0, workers=1,
                        progress=False)
    m = result.manifest
    assert len(m) == len(tiles), f"preprocessing kept {len(m)} of {len(tiles)} tiles"
    given = tiles.set_index("path")["split"]
    moved = m[m["split"].to_numpy() != given.loc[m["source"]].to_numpy()]
    assert moved.empty, f"{len(moved)} tiles left their split, e.g. {moved['source'].head(3).tolist()}"
    assert (m.groupby("group")["split"].nunique() == 1).all(), "a place in two splits"
    test_regions = set(m.loc[m["split"] == "test", "region"])
    assert not test_regions & set(m.loc[m["split"] != "test", "region"]), "a test region also trains"
    return tmp / "real", m


def prepare_mixed(data: Path, tmp: Path, per_class: int) -> Path:
    """The tiles (split as in ``prepare``) and synthetic scenes together, as the demo writes them."""
    from biomeseason.prepare.preprocess import preprocess

    labels_csv = demo.write_training_data(tmp / "mixed", per_class, seed=0, real=True, smoke=False,
                                          tiles_dir=data)
    m = preprocess(raw=tmp / "mixed" / "raw", out=tmp / "mixed" / "processed", labels_csv=labels_csv, seed=0,
                   progress=False).manifest
    real = m[m["domain"] == "real"]
    assert len(real) == len(pd.read_csv(data / "labels.csv")), f"preprocessing kept {len(real)} tiles"
    assert not set(real.loc[real["split"] == "test", "region"]) & set(real.loc[real["split"] != "test", "region"])
    print(m.groupby(["domain", "split"]).size().to_string(), flush=True)
    return tmp / "mixed" / "processed"


def markdown(df: pd.DataFrame, index: bool = True) -> str:
    """A markdown table (pandas' to_markdown needs tabulate, which the project does not install)."""
    df = df.reset_index() if index else df
    lines = ["| " + " | ".join(map(str, df.columns)) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)


def summary(rows: pd.DataFrame) -> pd.DataFrame:
    """Mean and sd over seeds per method, as text."""
    out = {}
    for method, g in rows.groupby("method", sort=False):
        out[method] = {metric: (f"{g[metric].mean():.3f} ± {g[metric].std(ddof=1):.3f}" if g[metric].notna().sum() > 1
                                else f"{g[metric].mean():.3f}" if g[metric].notna().any() else "—")
                       for metric in FIGURES}
        out[method]["seeds"] = len(g)
    return pd.DataFrame(out).T


def verdict(rows: pd.DataFrame) -> list[str]:
    mean = rows.groupby("method", sort=False)[["biome_acc", "month_within1"]].mean()
    if PLAIN not in mean.index:
        return ["- (a) was not run: no comparison against it"]
    plain = {"biome_acc": mean.loc[PLAIN, "biome_acc"], "month_within1": mean.loc[PLAIN, "month_within1"]}
    lines = []
    for method in [m for m in mean.index if not m.startswith("(a)")]:
        gaps = {k: 100 * (mean.loc[method, k] - plain[k]) for k in plain}
        met = all(g >= TARGET_POINTS for g in gaps.values())
        lines.append(f"- {method}: biome {gaps['biome_acc']:+.1f} points, month within ±1 "
                     f"{gaps['month_within1']:+.1f} points against (a): target of +{TARGET_POINTS} on both "
                     f"{'met' if met else 'not met'}")
    with_lat = rows.groupby("method", sort=False)["biome_acc_with_lat"].mean()
    plain_lat = with_lat.get(PLAIN)
    for method in [m for m in with_lat.index if m != PLAIN and pd.notna(with_lat[m])]:
        lines.append(f"- {method}, given each tile's latitude: biome "
                     f"{100 * (with_lat[method] - plain['biome_acc']):+.1f} points against (a) from the image alone"
                     + (f", {100 * (with_lat[method] - plain_lat):+.1f} against (a) given the latitude too"
                        if pd.notna(plain_lat) else ""))
    return lines


def report(rows: pd.DataFrame, s: dict, m: pd.DataFrame, init: Path) -> str:
    by_split = m.groupby("split").agg(tiles=("path", "size"), places=("group", "nunique"),
                                      regions=("region", lambda r: ", ".join(sorted(set(r)))))
    each = rows.assign(**{k: rows[k].map(lambda v: "—" if pd.isna(v) else f"{v:.3f}")
                          for k in FIGURES}, seconds=rows["seconds"].round(0))
    return "\n".join([
        f"- settings: {s['epochs']} epochs, input {s['size']} px, seeds {s['seeds']}",
        "- data: REAL, NASA Blue Marble Next Generation 2004 monthly tiles (32 px), split by region: test "
        "regions are never trained on (nor used to measure the synthetic scenes' colours); validation is 15% "
        "of the training regions' places. A place's twelve months are never in two splits.",
        "- (a) plain: ResNet-18 from scratch, Resize + RandomHorizontalFlip, SGD momentum 0.9, weight decay "
        "5e-4, OneCycleLR to 0.1, batch 64, last epoch; one network for the biome, another for the month "
        "(calendar months).",
        "- (b) ours from scratch: `train.fit` with the defaults (view upright, augmentation on, every biome "
        "weighing alike in the loss, AdamW one-cycle, best epoch by validation, northern-equivalent months "
        "from each tile's latitude).",
        f"- (c) ours with `--init {init}`: a model trained on synthetic scenes alone (bench/real.py).",
        f"- (d) ours from scratch on the same real tiles and {s['per_class']} synthetic scenes per biome-month "
        "(672 for 8) together, as `make demo` trains; scored on the same held-out real tiles only.",
        "- biome_acc_with_lat: the biome given each test tile's latitude too: the image's probabilities times "
        "the share of each biome among all land at that latitude on the label map (`geoprior`, floor 0.05), "
        "as `predict --lat` answers; for (a), the same prior on its softmax.",
        "", "### Held-out regions (test), mean ± sd over seeds", "",
        markdown(summary(rows).rename_axis('method')), "", *verdict(rows), "",
        "Chance: biome 1/7 = 0.14, month within ±1 3/12 = 0.25.", "",
        "### Each run", "", markdown(each, index=False), "",
        "### Split", "", markdown(by_split), ""])


def main() -> int:
    args = get_args_parser().parse_args()
    try:
        s = settings_from(args)
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    threads = pin_threads(args.threads)
    rows = []
    try:
        with files.terminate_as_interrupt(), tempfile.TemporaryDirectory(prefix="bench-real-data-") as tmp_name:
            tmp = Path(tmp_name)
            real, m = prepare(args.data, tmp)
            print(m.groupby("split").size().to_string(), flush=True)
            mixed = None
            init_scale = TrainConfig(init=str(args.init)).backbone_scale   # the default; part of the run's key
            # Our runs are remembered under the training defaults too: a changed default trains anew.
            ours = f"ours, defaults {defaults_digest()}"

            def run_mixed(run):
                nonlocal mixed
                mixed = mixed or prepare_mixed(args.data, tmp, s["per_class"])
                return run_ours(mixed, tmp / f"d{run['seed']}", run, {}, domain="real")

            for seed in s["seeds"]:
                run = {"epochs": s["epochs"], "size": s["size"], "seed": seed}
                methods = [m for m in [
                    ("(a) plain torchvision recipe", "plain biome", functools.partial(run_plain, real, run, "biome")),
                    ("(a) plain torchvision recipe", "plain month", functools.partial(run_plain, real, run, "month")),
                    ("(b) ours from scratch", ours, functools.partial(run_ours, real, tmp / f"b{seed}", run, {})),
                    ("(c) ours --init synthetic model", f"{ours}, init, backbone at {init_scale:g} of the heads' rate",
                     functools.partial(run_ours, real, tmp / f"c{seed}", run, {"init": str(args.init)})),
                    ("(d) ours, real tiles + synthetic scenes", f"{ours} + {s['per_class']} scenes per biome-month",
                     functools.partial(run_mixed, run)),
                ] if m[0][1] in args.methods]
                for method, name, fn in methods:
                    needs = () if name == "plain month" else ("biome_acc_with_lat",)
                    result = measure(key_of("held-out regions", name, run), args.work, set(), fn, needs)
                    rows.append({"method": method, "seed": seed, **{k: result.get(k) for k in
                                                                   (*FIGURES, "seconds")}})
    except KeyboardInterrupt:
        print("\ninterrupted: finished runs are remembered; run the same command again to go on", file=sys.stderr)
        return 130
    table = pd.DataFrame(rows)
    # The plain recipe's two networks are one method: biome from one, month from the other.
    table = table.groupby(["method", "seed"], sort=False).agg(
        {"biome_acc": "max", "month_within1": "max", "biome_acc_with_lat": "max", "seconds": "sum"}).reset_index()
    text = report(table, s, m, args.init)
    print(text)
    record("real_data_quick" if args.quick else "real_data",
           "Learning from small real data: Blue Marble tiles, held-out regions", text, threads)
    return 0


if __name__ == "__main__":
    sys.exit(main())
