"""The whole Earth: the demo's recipe against the shipped Earth model, on real places neither saw.

    python bench/earth.py                        # (a) 3 seeds of the demo recipe; (b), (c) the shipped model
    python bench/earth.py --earth-seeds 0 1 2    # (b) trained from scratch per seed too (about 30 min each)
    python bench/earth.py --quick                # (a) 1 epoch, one seed: a smoke run

Models:
(a) today's demo recipe: the shared tiles of the 10 calibration regions
    (``realstats.CALIBRATION_REGIONS``) and 8 synthetic scenes per biome-month,
    ``train.fit`` at 64 px for 10 epochs, as ``make demo`` trains; per seed.
(b) the Earth model: ``models/earth.pt`` (``make earth-model``: every land tile of
    the twelve Blue Marble maps, labelled by ``worldmap``'s rule, the shared
    tiles' 20 regions held out), and with ``--earth-seeds`` the same recipe
    trained here from scratch per seed.
(c) (b) given the place: its geographic prior (``geoprior``) with the latitude,
    and with latitude and longitude. Every model has the prior, so (a) is also
    scored each way.

Scored on two sets of real places: the shared tiles of the 10 regions outside
the calibration regions (``data/bluemarble``, hand-labelled; no model here
trained on them), and the Earth tiles of the held-out 10-degree test blocks
(labelled by the rule; tiles of the 20 regions left out). Per model, way and
set: biome accuracy, macro-F1, month within +-1, season, the biome's ECE, the
share flagged unfamiliar, the share wrong with p > 0.9 and not flagged; per
region and per biome; and the share of ground-level photos (scikit-image's,
scikit-learn's and matplotlib's sample photos, five crops each) flagged
unfamiliar. Torch and BLAS threads are pinned (``--threads``, printed). Puts
the report at the top of ``bench/results/earth.md`` (``earth_quick.md`` with
``--quick``), with the date, the machine and the command. Runs of (a) and (b)
are kept in ``--work`` and reused, so an interrupted bench goes on where it stopped.
"""
from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from _machine import pin_threads, record  # noqa: E402
from real_data import markdown  # noqa: E402

from biomeseason import demo  # noqa: E402
from biomeseason.io import files  # noqa: E402
from biomeseason.predict.predictor import load_model  # noqa: E402
from biomeseason.synthetic.realstats import CALIBRATION_REGIONS  # noqa: E402
from biomeseason.training import scoring  # noqa: E402

TITLE = "The whole Earth: demo recipe against the Earth model, on real places neither saw"
WORK = ROOT / "runs" / "bench-earth"
SHARED = ROOT / "data" / "bluemarble"
EARTH = ROOT / "runs" / "earth"
SHIPPED = ROOT / "models" / "earth.pt"
DEMO = {"epochs": 10, "size": 64, "per_class": 8}
EARTH_RECIPE = {"epochs": 20, "size": 64}
QUICK = {"epochs": 1, "size": 64, "per_class": 1}
SHOWN = ("biome_acc", "biome_f1", "month_within1", "season_acc", "biome_ece", "biome_nll", "flagged",
         "wrong_p90_unflagged")


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds of (a) (default: 0 1 2)")
    p.add_argument("--earth-seeds", type=int, nargs="*", default=[],
                   help="also train the Earth model from scratch with these seeds (default: none; the shipped one)")
    p.add_argument("--threads", type=int, default=2, help="torch and BLAS threads, pinned (default: 2)")
    p.add_argument("--quick", action="store_true", help=f"a smoke run of (a): {QUICK}, the first seed only")
    p.add_argument("--earth", type=Path, default=EARTH, help="the `earth` folder (made if missing; default: "
                   f"{EARTH.relative_to(ROOT)})")
    p.add_argument("--work", type=Path, default=WORK, help=f"kept runs (default: {WORK.relative_to(ROOT)})")
    return p


def ensure_earth(folder: Path) -> None:
    """The Earth tiles (and, for training, their processed copy), made as `make earth-model` makes them."""
    from biomeseason.earth import tiles as earth
    from biomeseason.prepare.preprocess import preprocess

    if not (folder / "labels.csv").is_file():
        args = earth.get_args_parser().parse_args(["--out", str(folder), "--hold-out-regions",
                                                   str(SHARED / "labels.csv"), "--no-progress"])
        earth.main(args)
    if not (folder / "processed" / "manifest.csv").is_file():
        preprocess(raw=folder / "raw", out=folder / "processed", labels_csv=folder / "labels.csv", size=64,
                   progress=False)


def train_demo_recipe(work: Path, seed: int, s: dict) -> Path:
    """(a): the demo's training data and settings; its best.pt (kept and reused)."""
    from biomeseason.prepare.preprocess import preprocess
    from biomeseason.training.loop import TrainConfig, fit

    run = work / f"a-seed{seed}-e{s['epochs']}-pc{s['per_class']}"
    model = run / "model" / "best.pt"
    if model.is_file():
        print(f"(a) seed {seed}: kept from an earlier run ({model})", flush=True)
        return model
    files.claim_dir(run)
    labels_csv = demo.write_training_data(run, s["per_class"], seed, real=True, smoke=False)
    preprocess(raw=run / "raw", out=run / "processed", labels_csv=labels_csv, seed=seed, progress=False)
    fit(TrainConfig(data=str(run / "processed"), out=str(run / "model"), epochs=s["epochs"], image_size=s["size"],
                    view="overhead", seed=seed, progress=False))
    return model


def train_earth(work: Path, earth: Path, seed: int) -> Path:
    """(b) from scratch with one seed, as `make earth-model` trains."""
    from biomeseason.training.loop import TrainConfig, fit

    model = work / f"b-seed{seed}" / "best.pt"
    if not model.is_file():
        fit(TrainConfig(data=str(earth / "processed"), out=str(model.parent), epochs=EARTH_RECIPE["epochs"],
                        image_size=EARTH_RECIPE["size"], view="overhead", seed=seed, progress=False))
    return model


def ground_photos() -> list[tuple[str, np.ndarray]]:
    """Photos taken on the ground that ship inside the installed packages, five crops of each (centre and
    quarters), as uint8 RGB arrays."""
    import matplotlib.cbook
    import skimage.data
    from sklearn.datasets import load_sample_images

    from biomeseason.io.images import read_image

    photos = {name: getattr(skimage.data, name)() for name in ("astronaut", "camera", "coffee", "chelsea", "rocket")}
    photos["motorcycle"] = skimage.data.stereo_motorcycle()[0]
    for name, image in zip(("china", "flower"), load_sample_images().images):
        photos[name] = image
    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
        photos["grace_hopper"] = np.asarray(read_image(f.read()).image)
    out = []
    for name, image in photos.items():
        image = np.stack([image] * 3, axis=-1) if image.ndim == 2 else image[..., :3]
        h, w = image.shape[:2]
        crops = {"whole": image, "centre": image[h // 4:3 * h // 4, w // 4:3 * w // 4]}
        crops.update({f"q{i}": image[y:y + h // 2, x:x + w // 2] for i, (y, x) in
                      enumerate(((0, 0), (0, w // 2), (h // 2, 0), (h // 2, w // 2)))})
        out += [(f"{name}/{crop}", np.ascontiguousarray(a)) for crop, a in crops.items() if crop != "whole"]
    return out


def score_model(name: str, model_path: Path, sets: dict, ground) -> tuple[pd.DataFrame, dict]:
    from biomeseason.earth import geoprior

    predictor = load_model(model_path, camera="composite")   # Blue Marble tiles (model.kinds)
    own = predictor.geo
    # Every model with today's prior, as training gives it, and the image weight it learnt (ship), if any.
    predictor.geo, _ = geoprior.for_biomes(predictor.biomes)
    if predictor.geo is not None and own is not None and own.image_weight:
        predictor.geo = copy.copy(predictor.geo)   # the cached prior stays as for_biomes gives it
        predictor.geo.image_weight = own.image_weight
    rows, flagged = [], {}
    for set_name, (table, by) in sets.items():
        t0 = time.perf_counter()
        answers = scoring.predict_tiles(predictor, table)
        f = scoring.figures(answers, predictor, by=by).rename(columns={by: "group"})
        rows.append(f.assign(model=name, set=set_name))
        print(f"{name} on {set_name}: {len(table)} tiles in {time.perf_counter() - t0:.0f} s", flush=True)
    if predictor.cameras:   # photos are read by the photo kind, as predict does by default
        predictor = load_model(model_path, camera="photo")
    results = predictor.predict([a for _, a in ground], scene=False)
    flagged = {"ground_flagged": float(np.mean([bool(r.unfamiliar) for r in results])),
               "ground_n": len(results)}
    return pd.concat(rows, ignore_index=True), flagged


def tune_prior(model_path: Path, earth: Path, radii=(0, 150, 300, 600, 1000), floors=(0.02, 0.05, 0.1, 0.2)):
    """Biome accuracy on the Earth tiles of the validation blocks given the place, per radius and floor of the
    geographic prior: how its defaults (``geoprior.RADIUS_KM``, ``FLOOR``) were chosen, never on test places."""
    from biomeseason.earth import geoprior

    predictor = load_model(model_path, camera="composite")
    table = scoring.read_tiles(earth / "labels.csv", root=earth / "raw")
    table = table[table["split"] == "val"].reset_index(drop=True)
    answers = scoring.predict_tiles(predictor, table)
    probs = answers[[f"p_{b}" for b in predictor.biomes]].to_numpy(dtype=float)
    true = np.array([predictor.biomes.index(b) for b in answers["biome"]])
    rows = []
    for radius in radii:
        for floor in floors:
            prior, _ = geoprior.for_biomes(predictor.biomes, radius_km=radius, floor=floor)
            lons = answers["lon"].to_numpy(dtype=float) if radius else None
            given = prior.apply(probs, answers["lat"].to_numpy(dtype=float), lons)
            rows.append({"radius_km": f"{radius:>4}" if radius else "latitude only", "floor": floor,
                         "biome_acc": round(float((given.argmax(1) == true).mean()), 3)})
    return pd.DataFrame(rows), len(table), float((probs.argmax(1) == true).mean())


def summarise(rows: pd.DataFrame, group: str = "all") -> pd.DataFrame:
    """Mean (± sd over seeds) per method, set and way, for one group."""
    g = rows[rows["group"] == group]
    out = []
    for (method, set_name, way), part in g.groupby(["method", "set", "way"], sort=False):
        row = {"method": method, "set": set_name, "way": way, "runs": len(part), "tiles": int(part["tiles"].iloc[0])}
        for k in SHOWN:
            v = part[k].astype(float)
            row[k] = f"{v.mean():.3f} ± {v.std(ddof=1):.3f}" if len(v) > 1 else f"{v.mean():.3f}"
        out.append(row)
    return pd.DataFrame(out)


def per_group(rows: pd.DataFrame, set_name: str, metric: str = "biome_acc") -> pd.DataFrame:
    """Mean over runs of one metric per group (columns: method and way)."""
    g = rows[(rows["set"] == set_name) & (rows["way"] != "lat")]
    table = g.groupby(["group", "method", "way"])[metric].mean().unstack(["method", "way"]).round(3)
    table.columns = [f"{m} / {w}" for m, w in table.columns]
    tiles = g.groupby("group")["tiles"].first()
    return table.assign(tiles=tiles).reset_index()


def main() -> int:
    args = get_args_parser().parse_args()
    pin_threads(args.threads)
    s = QUICK if args.quick else DEMO
    seeds = args.seeds[:1] if args.quick else args.seeds
    start = time.perf_counter()
    ensure_earth(args.earth)
    shared = scoring.read_tiles(SHARED / "labels.csv")
    shared = shared[~shared["region"].isin(CALIBRATION_REGIONS)].reset_index(drop=True)
    blocks = scoring.read_tiles(args.earth / "labels.csv", root=args.earth / "raw")
    blocks = blocks[(blocks["split"] == "test") & (blocks["region"] == "")].reset_index(drop=True)
    sets = {"shared tiles, 10 held-out regions": (shared, "region"), "Earth tiles, test blocks": (blocks, "biome")}
    ground = ground_photos()
    models = [("(a) demo recipe", seed, train_demo_recipe(args.work, seed, s)) for seed in seeds]
    models += [("(b) Earth model", seed, train_earth(args.work, args.earth, seed)) for seed in args.earth_seeds]
    if SHIPPED.is_file():
        models.append(("(b) Earth model, shipped", "shipped", SHIPPED))
    rows, ground_rows = [], []
    for method, seed, path in models:
        r, g = score_model(f"{method} {seed}", path, sets, ground)
        rows.append(r.assign(method=method, seed=seed))
        ground_rows.append({"method": method, "seed": seed, **g})
    rows = pd.concat(rows, ignore_index=True)
    ground_table = pd.DataFrame(ground_rows)
    tuned = tune_prior(SHIPPED if SHIPPED.is_file() else models[-1][2], args.earth)
    text = report(rows, ground_table, tuned, args, s, seeds, len(shared), len(blocks), time.perf_counter() - start)
    print(text)
    record("earth_quick" if args.quick else "earth", TITLE, text, args.threads)
    return 0


def report(rows, ground_table, tuned, args, s, seeds, n_shared, n_blocks, seconds) -> str:
    ways = ("- ways: `image` from the image alone; `lat` given the latitude; `place` given latitude and "
            "longitude (the map's biomes within `geoprior.RADIUS_KM`); (c) is (b) answered `lat` and `place`.")
    sections = [
        f"- time: {seconds / 60:.0f} min",
        f"- (a) demo recipe: {s['epochs']} epochs at {s['size']} px, tiles of the 10 calibration regions + "
        f"{s['per_class']} synthetic scenes per biome-month; seeds {seeds}",
        "- (b) Earth model: `models/earth.pt` (`make earth-model`)"
        + (f"; and from scratch with seeds {args.earth_seeds}" if args.earth_seeds else "; one training run"),
        ways,
        f"- REAL data: (1) {n_shared} shared Blue Marble tiles (hand-labelled) of the 10 regions outside "
        "the calibration regions; no model here trained on them. (2) "
        f"{n_blocks} Earth tiles of the held-out 10-degree test blocks, labelled by the rule "
        "(`biomeseason.earth.worldmap`), the 20 regions' tiles left out.",
        "- caveat: on (2) `place` looks up the same label map that labelled the tiles, so it measures agreement "
        "with the rule as much as the model; (1) has labels of its own.",
        "", "### All tiles of each set (mean ± sd over seeds where several)", "",
        markdown(summarise(rows), index=False), "",
        "### Biome accuracy per region, shared tiles", "",
        markdown(per_group(rows, "shared tiles, 10 held-out regions"), index=False), "",
        "### Biome accuracy per biome, Earth test blocks", "",
        markdown(per_group(rows, "Earth tiles, test blocks"), index=False), "",
        "### Ground-level photos flagged unfamiliar", "",
        "Nine photos taken on the ground that ship with scikit-image, scikit-learn and matplotlib (astronaut, "
        "camera, coffee, chelsea, rocket, motorcycle, china, flower, grace_hopper), centre and four quarters "
        "of each: the share the model flags as unlike its training images.", "",
        markdown(ground_table, index=False), "",
        "### The prior's radius and floor, chosen on the validation blocks", "",
        f"Biome accuracy of the Earth model on the {tuned[1]} labelled Earth tiles of the validation blocks given "
        f"the place (image alone: {tuned[2]:.3f}); the defaults are `geoprior.RADIUS_KM` and `geoprior.FLOOR`.", "",
        markdown(tuned[0].pivot(index="radius_km", columns="floor", values="biome_acc").reset_index(), index=False),
        "", "Chance: biome 1/7 = 0.14, month within ±1 3/12 = 0.25.", ""]
    return "\n".join(sections)


if __name__ == "__main__":
    sys.exit(main())
