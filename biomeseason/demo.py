"""The whole chain on synthetic scenes and real tiles, headless: what ``make demo`` runs.

    python -m biomeseason demo --out runs/demo [--per-class N] [--epochs E] [--image-size S] [--smoke]
    python -m biomeseason demo --no-real ...      # synthetic scenes alone

1. training data             -> out/raw/, out/labels.csv
   synthetic scenes (biomeseason.synthetic.generate) and the real Blue Marble tiles
   shipped in data/bluemarble/: the regions the scenes' colours were
   measured on train (15% of their places validate); the other regions,
   whole, are the real test split, so the real test figures are on places
   never trained on.
2. preprocessing             -> out/processed/          (biomeseason.prepare.preprocess)
3. train.ipynb               -> out/model/best.pt, plots, metrics
4. a held-out image          -> out/heldout/            (a real tile of a region no demo model trains on;
                                                          with --no-real, a scene from a seed no training image used)
5. predict.ipynb on it       -> out/notebooks/predict.ipynb
6. hex2name.ipynb on it      -> out/notebooks/hex2name.ipynb (if the notebook exists)
7. predictions on the test split with the predict library -> out/predictions.csv,
   figures per domain (synthetic, real)                   -> out/test_by_domain.csv

Notebooks are executed with papermill (kernel ``python3``, working directory
the repository root) into out/notebooks/, where they can be opened in Jupyter
with their outputs. Each step prints a heading and its time; the run ends by
printing where everything is.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent  # the notebooks live at the repository root
KERNEL = "python3"
STEPS = 7
GENERATED = ("raw", "processed", "model", "notebooks", "heldout", "plots")

# Demo settings, sized for 10 minutes on a 2-core CPU. With the real tiles (the default):
# 672 synthetic scenes and 2,076 training/validation tiles at 64 px (the tiles are 32 px).
# Synthetic scenes alone (--no-real): 1,680 scenes at train.ipynb's 96 px.
SETTINGS = {"real": {"per_class": 8, "epochs": 10, "image_size": 64},
            "synthetic": {"per_class": 20, "epochs": 20, "image_size": None}}   # None: the notebook's
HELDOUT = ("temperate_deciduous_forest", 10)   # October: autumn colours, a clear seasonal cue
# The real image the demo ends on: a Carpathian forest in October, from a region the demo never trains on.
HELDOUT_TILE = "Deciduous/Deciduous_europe-carpathian-0585-3002_Oct.png"
HELDOUT_SEED = 1_000_003   # an integer seed; training scenes are seeded by SeedSequence([seed, ...])
SMOKE = {"per_class": 1, "epochs": 1, "image_size": 64}
REAL = ROOT / "data" / "bluemarble"   # NASA Blue Marble tiles (public domain), see its README.md
REAL_VAL = 0.15            # share of the training regions' places that validate


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Run the whole chain on synthetic data.", add_help=add_help)
    parser.add_argument("--out", default="runs/demo", help="run folder (default: %(default)s)")
    parser.add_argument("--per-class", type=int, default=None,
                        help="synthetic scenes per biome and month (default: "
                             f"{SETTINGS['real']['per_class']}, {SETTINGS['synthetic']['per_class']} with --no-real)")
    parser.add_argument("--epochs", type=int, default=None, help="training epochs (default: "
                        f"{SETTINGS['real']['epochs']}, {SETTINGS['synthetic']['epochs']} with --no-real)")
    parser.add_argument("--image-size", type=int, default=None,
                        help="network input size (default: train.ipynb's)")
    parser.add_argument("--seed", type=int, default=0, help="seed of scenes, splits and training (default: 0)")
    parser.add_argument("--tta", action="store_true", help="predict with the 8 rotations/flips (default: off)")
    parser.add_argument("--force", action="store_true",
                        help="write into an existing --out that biomeseason did not make, "
                             "keeping what is in it (default: refuse)")
    parser.add_argument("--no-real", dest="real", action="store_false",
                        help=f"train on synthetic scenes alone, without the real tiles of {REAL.relative_to(ROOT)}")
    parser.add_argument("--smoke", action="store_true",
                        help="tiny everything, to check the chain runs (1 scene per class, 1 epoch, 64 px)")
    return parser


@contextmanager
def step(number: int, title: str):
    print(f"\n== [{number}/{STEPS}] {title}", flush=True)
    start = time.perf_counter()
    yield
    print(f"   ({title}: {time.perf_counter() - start:.1f} s)", flush=True)


def prepare_out(out: Path, force: bool = False) -> None:
    """Claim the run folder and delete the generated parts of a previous run.

    A folder we did not make is refused (files.claim_dir); inside ours, only
    sub-folders that carry our marker are deleted, so a folder of the user's
    that happens to be called ``raw`` survives (and is then refused by the step
    that would write into it).
    """
    from .io.files import claim_dir, is_ours, remove_ours

    claim_dir(out, force=force)
    for name in GENERATED:
        if is_ours(out / name):
            remove_ours(out / name)


def run_notebook(name: str, out: Path, parameters: dict) -> Path:
    """Execute ROOT/name into out/notebooks/name; raises papermill's error with the cell that failed."""
    import papermill

    from .io.files import claim_dir

    target = claim_dir(out / "notebooks") / name
    print(f"   {name} -> {target}", flush=True)
    # The notebook's printed lines (one per epoch while training) also go to this
    # terminal, so a long step shows it is alive; progress bars stay in the notebook.
    # The kernel's own log says only that it talks over local TCP: errors still show, that notice does not.
    papermill.execute_notebook(str(ROOT / name), str(target), parameters=parameters,
                               kernel_name=KERNEL, cwd=str(ROOT), progress_bar=False,
                               stdout_file=sys.stdout, extra_arguments=["--IPKernelApp.log_level=ERROR"])
    return target


def write_heldout(out: Path, size: int = 256, real: bool = False, tiles_dir: Path = REAL) -> Path:
    """The image the demo ends on, named by its true labels: with ``real``, a shipped Blue Marble tile of a
    held-out region (``HELDOUT_TILE``); else one scene from a seed no training image used."""
    from PIL import Image

    from .io import files
    from .io.files import claim_dir, save_image
    from .labels import MONTH_ABBR
    from .synthetic.generate import FILE_PREFIX, render_scene

    folder = claim_dir(out / "heldout")
    if real:
        return files.atomic_write(folder / Path(HELDOUT_TILE).name, (tiles_dir / HELDOUT_TILE).read_bytes())
    biome, month = HELDOUT
    path = folder / f"{FILE_PREFIX[biome]}_{MONTH_ABBR[month - 1].capitalize()}.jpg"
    return save_image(path, Image.fromarray(render_scene(biome, month, HELDOUT_SEED, size)), quality=92)


def write_training_data(out: Path, per_class: int, seed: int, real: bool, smoke: bool,
                        tiles_dir: Path = REAL) -> Path | None:
    """Synthetic scenes into out/raw/, the real tiles into out/raw/bluemarble/, and, with the
    real tiles, out/labels.csv naming both (domain, split by region, place groups, latitude).
    ``tiles_dir``: the Blue Marble tiles (labels.csv and the PNGs; default: the copy shipped in data/).
    Returns the labels CSV (None without the real tiles: the scenes' names are their labels)."""
    import pandas as pd

    from .io.files import atomic_write, write_csv
    from .labels import Vocabulary, parse_filename
    from .synthetic import generate as synthetic
    from .synthetic import realstats

    scenes = synthetic.write_scenes(out / "raw", per_class=per_class, seed=seed, workers=os.cpu_count() or 1)
    print(f"   {len(scenes)} synthetic scenes in {out / 'raw'}")
    if not real:
        return None
    if not (tiles_dir / "labels.csv").is_file():
        raise FileNotFoundError(f"{tiles_dir / 'labels.csv'} is missing: restore data/bluemarble/ from the "
                                "repository, or run the demo with --no-real")
    vocab = Vocabulary.load()
    labels = [parse_filename(path.name, vocab) for path in scenes]
    rows = [pd.DataFrame({"path": [str(path.relative_to(out / "raw").as_posix()) for path in scenes],
                          "biome": [label.biome for label in labels],
                          "month": [label.month for label in labels], "domain": "synthetic"})]
    tiles = real_split(pd.read_csv(tiles_dir / "labels.csv", dtype={"month": int}), seed, smoke)
    for path in tiles["path"]:
        atomic_write(out / "raw" / "bluemarble" / path, (tiles_dir / path).read_bytes())
    rows.append(tiles.assign(path="bluemarble/" + tiles["path"], domain="real")[
        ["path", "biome", "month", "domain", "group", "split", "lat", "region"]])
    table = pd.concat(rows, ignore_index=True)
    counts = tiles.groupby("split")["path"].size().to_dict()
    print(f"   {len(tiles)} real tiles in {out / 'raw' / 'bluemarble'}: "
          + ", ".join(f"{counts.get(k, 0)} {k}" for k in ("train", "val", "test"))
          + f" (test: the {tiles.loc[tiles['split'] == 'test', 'region'].nunique()} regions outside "
          f"{len(realstats.CALIBRATION_REGIONS)} training regions)")
    return write_csv(out / "labels.csv", table)


def real_split(tiles, seed: int, smoke: bool = False):
    """train / val / test for the real tiles: regions of ``realstats.CALIBRATION_REGIONS`` train,
    REAL_VAL of their places (whole, all twelve months) validate, every other region is test.
    ``smoke``: one place per region."""
    import numpy as np

    from .synthetic.realstats import CALIBRATION_REGIONS

    if smoke:
        first = tiles.groupby("region")["group"].transform("min")
        tiles = tiles[tiles["group"] == first]
    tiles = tiles.copy()
    training = tiles["region"].isin(CALIBRATION_REGIONS)
    places = np.sort(tiles.loc[training, "group"].unique())
    rng = np.random.default_rng(seed)
    val = set(rng.choice(places, size=int(round(REAL_VAL * len(places))), replace=False))
    tiles["split"] = np.where(~training, "test", np.where(tiles["group"].isin(val), "val", "train"))
    return tiles.reset_index(drop=True)


def predict_test_split(processed: Path, predictor, csv_path: Path, tta: bool) -> list[str]:
    """Predictions of the library on the test split, next to the true labels, each image in its
    hemisphere; writes the figures per domain (synthetic, real) beside the CSV and returns one
    summary line per domain."""
    import pandas as pd

    from .io.files import write_csv, write_rows
    from .labels import season_of
    from .prepare.manifest import read_manifest
    from .training.metrics import scores_by

    test = read_manifest(processed)
    test = test[test["split"] == "test"].reset_index(drop=True)
    domain = test["domain"] if "domain" in test else pd.Series("synthetic", index=test.index)
    results = predictor.predict([processed / p for p in test["path"]], tta=tta, batch_size=64, progress=True,
                                hemisphere=list(test["hemisphere"].replace("", predictor.hemisphere)))
    rows = [{**r.to_row(), "true_biome": b, "true_month": "" if pd.isna(m) else int(m), "domain": d}
            for r, b, m, d in zip(results, test["biome"], test["month"], domain)]
    # The biome once more given each tile's latitude (geoprior), as `predict --lat` would answer.
    lats = pd.to_numeric(test["lat"], errors="coerce") if "lat" in test else pd.Series(float("nan"), index=test.index)
    given = (predictor.geo.apply([list(r.biome_probs.values()) for r in results], lats.to_numpy()).argmax(1)
             if predictor.geo and results else [-1] * len(rows))
    for row, j, lat in zip(rows, given, lats):
        row["biome_given_lat"] = "" if pd.isna(lat) or j < 0 else predictor.biomes[j]
    write_rows(csv_path, rows)
    table = pd.DataFrame(rows)
    figures = scores_by(table, "domain", pred=("biome", "month"))
    given = table[table["biome_given_lat"] != ""]
    figures["biome_acc_given_lat"] = (given["biome_given_lat"] == given["true_biome"]).groupby(given["domain"]).mean()
    dated = table[table["true_month"] != ""]
    right_season = dated["season"] == [season_of(int(m), h) for m, h in zip(dated["true_month"], dated["hemisphere"])]
    figures["season_acc"] = right_season.groupby(dated["domain"]).mean()
    figures["unfamiliar_share"] = table["unfamiliar"].map(lambda v: v is True).groupby(table["domain"]).mean()
    write_csv(csv_path.with_name("test_by_domain.csv"), figures.reset_index())
    return [f"{f.Index}: {f.images} test images; biome accuracy {_fmt(f.biome_acc)}"
            + (f" ({_fmt(f.biome_acc_given_lat)} given the latitude)" if pd.notna(f.biome_acc_given_lat) else "")
            + f", month {_fmt(f.month_acc)}, within +-1 {_fmt(f.month_within1)}, season {_fmt(f.season_acc)}"
            for f in figures.itertuples()]


# The demo's held-out images are Blue Marble tiles: of a shipped model of two camera kinds (model.kinds), the kind
# that reads such composites answers for it, as bench/earth.py reads them.
TILES_KIND = "composite"


def compare_with_shipped(predictor, tiles_dir: Path = REAL, shipped: Path | None = None) -> list[str]:
    """The demo's model next to the shipped Earth model on the same held-out real places (the regions the demo
    does not train on), each from the image alone and given the place; one line per model."""
    from .predict.predictor import load_model
    from .synthetic.realstats import CALIBRATION_REGIONS
    from .training import scoring
    from .training.ship import SHIPPED

    shipped = shipped or SHIPPED
    tiles = scoring.read_tiles(tiles_dir / "labels.csv")
    tiles = tiles[~tiles["region"].isin(CALIBRATION_REGIONS)].reset_index(drop=True)
    models = [("this demo's model", predictor)]
    if shipped.is_file():
        models.append((f"shipped {shipped.name}", load_model(shipped, camera=TILES_KIND)))
    lines = []
    for name, model in models:
        table = scoring.figures(scoring.predict_tiles(model, tiles), model).set_index("way")
        place = (f", {table.at['place', 'biome_acc']:.3f} given the place" if "place" in table.index else "")
        lines.append(f"{name}: biome {table.at['image', 'biome_acc']:.3f} from the image{place}; month within +-1 "
                     f"{table.at['image', 'month_within1']:.3f}; wrong with p > 0.9 and not flagged "
                     f"{table.at['image', 'wrong_p90_unflagged']:.1%} ({len(tiles)} real tiles of "
                     f"{tiles['region'].nunique()} held-out regions)")
    if len(models) == 1:
        lines.append(f"(no shipped model at {shipped} to compare with)")
    return lines


def save_heldout_figure(image: Path, predictor, target: Path, tta: bool, tiles_dir: Path = REAL,
                        shipped: Path | None = None) -> Path:
    """The held-out image's figure, as a PNG for people without Jupyter: this demo's model and the shipped
    one (the model a user starts with) side by side, each with its answer, top-3 and Grad-CAM maps, the
    image's true labels (read from its name) beside both, and, for a real tile, each model's answer given
    the tile's place. Titled by the file's name, its region and month."""
    import matplotlib
    matplotlib.use("Agg")  # headless: the figure only goes to a file
    from .io.files import claim_dir, save_figure
    from .labels import MONTH_ABBR, MONTH_NAMES, Vocabulary, parse_filename
    from .predict import explain
    from .predict.predictor import load_model
    from .training.ship import SHIPPED

    label = parse_filename(image.name, Vocabulary.load())
    truth = f"{label.biome}, {MONTH_ABBR[label.month - 1].capitalize()}" if label.month else label.biome
    region, lat, lon = _place_of(image.name, tiles_dir)
    shipped = shipped or SHIPPED
    models = [("this demo's model", predictor)]
    if shipped.is_file():
        models.append((f"shipped {shipped.name}", load_model(shipped, camera=TILES_KIND)))
    answers = []
    for name, model in models:
        result = model.predict(image, tta=tta)[0]   # the image alone: what the heat maps explain
        note = ""
        if lat is not None and model.geo:
            given = model.predict(image, tta=tta, lat=lat, lon=lon)[0]
            note = f";  given the place: {given.biome.replace('_', ' ')} ({given.biome_p:.2f})"
        answers.append((name, result, explain.grad_cams(model, image, result), note))
    where = f"{region} ({explain.place_text(lat, lon)})" if region else None
    month = MONTH_NAMES[label.month - 1].capitalize() if label.month else None
    title = " · ".join(part for part in (image.name, where, month) if part)
    fig = explain.plot_comparison(image, answers, truth=truth, title=title)
    claim_dir(target.parent)
    return save_figure(target, fig, dpi=100)


def _place_of(name: str, tiles_dir: Path) -> tuple[str | None, float | None, float | None]:
    """(region, lat, lon) of a shipped Blue Marble tile by its file name; Nones for any other image."""
    import pandas as pd

    labels = tiles_dir / "labels.csv"
    if not labels.is_file():
        return None, None, None
    tiles = pd.read_csv(labels)
    row = tiles[tiles["path"].map(lambda p: Path(p).name) == name]
    if row.empty:
        return None, None, None
    row = row.iloc[0]
    return str(row["region"]), float(row["lat"]), float(row["lon"])


def _fmt(value: float) -> str:
    return "n/a" if value != value else f"{value:.3f}"


NOTEBOOK_MODULES = ("papermill", "nbformat", "ipykernel")


def missing_notebook_modules() -> list[str]:
    """What the demo needs to execute the notebooks and this installation lacks."""
    import importlib.util

    return [name for name in NOTEBOOK_MODULES if importlib.util.find_spec(name) is None]


def main(args: argparse.Namespace) -> int:
    from .io.files import UsageError

    missing = missing_notebook_modules()
    if missing:   # before any work: a plain `pip install .` has the library and its commands, not Jupyter
        raise UsageError(f"the demo executes the notebooks and needs {', '.join(missing)}: "
                         "pip install 'biomeseason[notebooks]' (make setup installs it)")
    from papermill.exceptions import PapermillExecutionError

    from .predict.predictor import load_model
    from .prepare import preprocess

    out = Path(args.out).resolve()
    settings = SMOKE if args.smoke else SETTINGS["real" if args.real else "synthetic"]
    per_class = args.per_class or settings["per_class"]
    # Synthetic scenes and the north-up tiles are nadir views: all eight rotations/flips are the same scene.
    training = {"DATA_DIR": str(out / "processed"), "OUT_DIR": str(out / "model"),
                "SEED": args.seed, "SMOKE": bool(args.smoke), "VIEW": "overhead",
                "EPOCHS": args.epochs or settings["epochs"]}
    # Without a size of the demo's own, train.ipynb's default (96) stays the one source.
    image_size = args.image_size or settings["image_size"]
    if image_size:
        training["IMAGE_SIZE"] = image_size
    model = out / "model" / "best.pt"
    for name, value in (("--per-class", args.per_class), ("--epochs", args.epochs),
                        ("--image-size", args.image_size)):
        if value is not None and value < (32 if name == "--image-size" else 1):
            raise UsageError(f"{name} must be at least {32 if name == '--image-size' else 1}, not {value}")
    start = time.perf_counter()
    prepare_out(out, force=args.force)
    try:
        with step(1, f"training data: synthetic scenes ({per_class} per biome and month)"
                     + (" and real Blue Marble tiles" if args.real else "")):
            labels_csv = write_training_data(out, per_class, args.seed, args.real, args.smoke)
        with step(2, "preprocessing"):
            result = preprocess.preprocess(out / "raw", out / "processed", seed=args.seed, labels_csv=labels_csv)
            print(result.summary)
        with step(3, "training: train.ipynb"):
            run_notebook("train.ipynb", out, training)
        with step(4, "a held-out image" + (": a real tile of a region never trained on" if args.real else "")):
            heldout = write_heldout(out, real=args.real)
            print(f"   {heldout}")
        with step(5, "prediction: predict.ipynb"):
            run_notebook("predict.ipynb", out, {"IMAGE_PATH": str(heldout), "MODEL_PATH": str(model),
                                                "TTA": bool(args.tta)})
        with step(6, "colours: hex2name.ipynb"):
            if (ROOT / "hex2name.ipynb").exists():
                run_notebook("hex2name.ipynb", out, {"IMAGE_PATH": str(heldout), "FOLDER": str(heldout.parent),
                                                     "OUT_CSV": str(out / "colors.csv")})
            else:
                print("   hex2name.ipynb is not in this repository yet; skipped")
        with step(7, "predictions on the test split"):
            csv_path = out / "predictions.csv"  # the test split, with the true labels beside
            predictor = load_model(model)  # once, for both the CSV and the figure
            for line in predict_test_split(out / "processed", predictor, csv_path, args.tta):
                print("   " + line)
            if args.real:
                print("   the same held-out real places, this demo's model next to the shipped one:")
                for line in compare_with_shipped(predictor):
                    print("   " + line)
            figure = save_heldout_figure(heldout, predictor, out / "plots" / "heldout_prediction.png", args.tta)
    except PapermillExecutionError as e:
        print(f"\nerror: a notebook failed in cell {e.cell_index} ({e.ename}: {e.evalue}); "
              f"the executed notebook with the full traceback is in {out / 'notebooks'}")
        return 1
    print_summary(out, model, csv_path, figure, time.perf_counter() - start)
    return 0


def print_summary(out: Path, model: Path, csv_path: Path, figure: Path, seconds: float) -> None:
    notebooks = sorted((out / "notebooks").glob("*.ipynb"))
    plots = sorted((out / "model").glob("*.png")) + [figure]
    print(f"\n== demo finished in {seconds / 60:.1f} min")
    print(f"executed notebooks: {', '.join(map(_shown, notebooks))}")
    print(f"model:              {_shown(model)}")
    print(f"plots:              {', '.join(map(_shown, plots))}")
    print(f"predictions:        {_shown(csv_path)}")
    if (out / "colors.csv").exists():
        print(f"colours:            {_shown(out / 'colors.csv')}")
    print(f"Open the notebooks in Jupyter to see their outputs. To classify your own image, set "
          f"MODEL_PATH = \"{_shown(model)}\" and IMAGE_PATH in predict.ipynb, or run "
          f"`python -m biomeseason predict PHOTO_OR_FOLDER --model {_shown(model)}`.")


def _shown(path: Path) -> str:
    """Relative to the current folder when inside it: shorter to read and to paste."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)
