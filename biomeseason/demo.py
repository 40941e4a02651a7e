"""The whole chain on synthetic data, headless: what ``make demo`` runs.

    python -m biomeseason demo --out runs/demo [--per-class N] [--epochs E] [--image-size S] [--smoke]

1. synthetic scenes          -> out/raw/                (biomeseason.synthetic)
2. preprocessing             -> out/processed/          (biomeseason.preprocess)
3. train.ipynb               -> out/model/best.pt, plots, metrics
4. a held-out scene          -> out/heldout/            (a seed no training image used)
5. predict.ipynb on it       -> out/notebooks/predict.ipynb
6. hex2name.ipynb on it      -> out/notebooks/hex2name.ipynb (if the notebook exists)
7. predictions on the test split with the predict library -> out/predictions.csv

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

# Demo settings, measured on a 2-core CPU: about 9 minutes of training at 96 px
# reach test biome accuracy >= 0.95 and month within +-1 >= 0.85.
PER_CLASS = 20             # scenes per (biome, month): 7 x 12 x 20 = 1,680 images
EPOCHS = 20
HELDOUT = ("temperate_deciduous_forest", 10)   # October: autumn colours, a clear seasonal cue
HELDOUT_SEED = 1_000_003   # an integer seed; training scenes are seeded by SeedSequence([seed, ...])
SMOKE = {"per_class": 1, "epochs": 1, "image_size": 64}


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Run the whole chain on synthetic data.", add_help=add_help)
    parser.add_argument("--out", default="runs/demo", help="run folder (default: %(default)s)")
    parser.add_argument("--per-class", type=int, default=None,
                        help=f"synthetic scenes per biome and month (default: {PER_CLASS})")
    parser.add_argument("--epochs", type=int, default=None, help=f"training epochs (default: {EPOCHS})")
    parser.add_argument("--image-size", type=int, default=None,
                        help="network input size (default: train.ipynb's)")
    parser.add_argument("--seed", type=int, default=0, help="seed of scenes, splits and training (default: 0)")
    parser.add_argument("--tta", action="store_true", help="predict with the 8 rotations/flips (default: off)")
    parser.add_argument("--force", action="store_true",
                        help="write into an existing --out that biomeseason did not make, "
                             "keeping what is in it (default: refuse)")
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
    from .files import claim_dir, is_ours, remove_ours

    claim_dir(out, force=force)
    for name in GENERATED:
        if is_ours(out / name):
            remove_ours(out / name)


def run_notebook(name: str, out: Path, parameters: dict) -> Path:
    """Execute ROOT/name into out/notebooks/name; raises papermill's error with the cell that failed."""
    import papermill

    from .files import claim_dir

    target = claim_dir(out / "notebooks") / name
    print(f"   {name} -> {target}", flush=True)
    # The notebook's printed lines (one per epoch while training) also go to this
    # terminal, so a long step shows it is alive; progress bars stay in the notebook.
    papermill.execute_notebook(str(ROOT / name), str(target), parameters=parameters,
                               kernel_name=KERNEL, cwd=str(ROOT), progress_bar=False,
                               stdout_file=sys.stdout)
    return target


def write_heldout(out: Path, size: int = 256) -> Path:
    """One scene from a seed no training image used, named by its true labels."""
    from PIL import Image

    from .files import claim_dir, save_image
    from .labels import MONTH_ABBR
    from .synthetic import FILE_PREFIX, render_scene

    biome, month = HELDOUT
    folder = claim_dir(out / "heldout")
    path = folder / f"{FILE_PREFIX[biome]}_{MONTH_ABBR[month - 1].capitalize()}.jpg"
    return save_image(path, Image.fromarray(render_scene(biome, month, HELDOUT_SEED, size)), quality=92)


def predict_test_split(processed: Path, predictor, csv_path: Path, tta: bool) -> str:
    """Predictions of the library on the test split, next to the true labels; returns a summary line."""
    import pandas as pd

    from .files import write_rows
    from .manifest import read_manifest

    test = read_manifest(processed)
    test = test[test["split"] == "test"]
    results = predictor.predict([processed / p for p in test["path"]], tta=tta, batch_size=64, progress=True)
    rows = [{**r.to_row(), "true_biome": b, "true_month": "" if pd.isna(m) else int(m)}
            for r, b, m in zip(results, test["biome"], test["month"])]
    write_rows(csv_path, rows)
    biome_ok = [r["biome"] == r["true_biome"] for r in rows if r["true_biome"]]
    month_ok = [r["month"] == r["true_month"] for r in rows if r["true_month"] != ""]
    return (f"{len(rows)} test images; biome accuracy {_share(biome_ok)}, "
            f"month accuracy {_share(month_ok)}")


def save_heldout_figure(image: Path, predictor, target: Path, tta: bool) -> Path:
    """The prediction figure of predict.ipynb, also as a PNG for people without Jupyter."""
    import matplotlib
    matplotlib.use("Agg")  # headless: the figure only goes to a file
    from . import explain
    from .files import claim_dir, save_figure

    result = predictor.predict(image, tta=tta)[0]
    fig = explain.plot_prediction(image, result, explain.grad_cams(predictor, image, result))
    claim_dir(target.parent)
    return save_figure(target, fig, dpi=100)


def _share(flags: list[bool]) -> str:
    return f"{sum(flags) / len(flags):.3f}" if flags else "n/a"


def main(args: argparse.Namespace) -> int:
    from papermill.exceptions import PapermillExecutionError

    from . import preprocess, synthetic
    from .files import UsageError
    from .predict import load_model

    out = Path(args.out).resolve()
    per_class = args.per_class or (SMOKE["per_class"] if args.smoke else PER_CLASS)
    # Synthetic scenes are nadir views: all eight rotations/flips are the same scene.
    training = {"DATA_DIR": str(out / "processed"), "OUT_DIR": str(out / "model"),
                "SEED": args.seed, "SMOKE": bool(args.smoke), "VIEW": "overhead",
                "EPOCHS": args.epochs or (SMOKE["epochs"] if args.smoke else EPOCHS)}
    # The image size is passed on only when asked for, so train.ipynb's default (96) stays the one source.
    image_size = args.image_size or (SMOKE["image_size"] if args.smoke else None)
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
        with step(1, f"synthetic scenes ({per_class} per biome and month)"):
            scenes = synthetic.write_scenes(out / "raw", per_class=per_class, seed=args.seed,
                                            workers=os.cpu_count() or 1)
            print(f"   {len(scenes)} scenes in {out / 'raw'}")
        with step(2, "preprocessing"):
            result = preprocess.preprocess(out / "raw", out / "processed", seed=args.seed)
            print(result.summary)
        with step(3, "training: train.ipynb"):
            run_notebook("train.ipynb", out, training)
        with step(4, "a held-out scene"):
            heldout = write_heldout(out)
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
            print("   " + predict_test_split(out / "processed", predictor, csv_path, args.tta))
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
