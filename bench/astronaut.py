"""Astronaut-style photos made from real tiles: how models do on oblique, framed views of real places.

    python bench/astronaut.py          # the demo model and bench/real.py's synthetic-only model
    python bench/astronaut.py --model models/best.pt --model other.pt

No real astronaut photo collection is available offline, so this makes
astronaut-style photos out of REAL imagery: each is one Blue Marble tile
(data/bluemarble, regions outside
``realstats.CALIBRATION_REGIONS`` only, never trained on by the demo) seen
obliquely from orbit with the horizon and the limb (``synthetic_looks.to_view``),
a little blue haze, then framed as photos from a station window often are:
black margins and a light caption band with text. Each is saved as a JPEG
and predicted with every model given, with the tile's hemisphere, through
the predictor's scene finder (``predict``). Reports per model biome
accuracy, month within +-1, season, the share flagged unfamiliar, and how
often the scene box leaves the margins and the caption out (at least 95% of
the box inside the drawn photo; the finder may also leave out the space
above the limb, so the box is compared by containment, not IoU). Torch and
BLAS threads are pinned (``--threads``, printed). Puts the report at the top of
bench/results/astronaut.md, with the date, the machine and the command.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from _machine import pin_threads, record  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

from biomeseason.io import files  # noqa: E402
from biomeseason.io.images import read_image  # noqa: E402
from biomeseason.labels import Vocabulary, season_of  # noqa: E402
from biomeseason.synthetic import looks, realstats  # noqa: E402
from biomeseason.training.metrics import circular_distance  # noqa: E402

DATA = ROOT / "data" / "bluemarble"
RESULTS = ROOT / "bench" / "results" / "astronaut.md"
MODELS = [ROOT / "runs" / "demo" / "model" / "best.pt", ROOT / "runs" / "bench-real" / "model" / "best.pt"]
PHOTO = 320                 # side of the oblique view
CANVAS = (440, 400)         # the framed photo (w, h): margins and a caption band around the view


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, action="append",
                   help="a checkpoint; repeatable (default: those of make demo and bench/real.py)")
    p.add_argument("--places", type=int, default=2, help="places per held-out region, x 12 months (default: 2)")
    p.add_argument("--seed", type=int, default=0, help="seed of the places and the views (default: 0)")
    p.add_argument("--data", type=Path, default=DATA, help=f"Blue Marble folder (default: {DATA})")
    p.add_argument("--threads", type=int, default=2, help="torch and BLAS threads, pinned (default: 2)")
    return p


def make_photo(tile: np.ndarray, rng) -> tuple[Image.Image, tuple[int, int, int, int]]:
    """An oblique, hazy, framed view of a (32, 32, 3) tile, and the box of the view in the frame."""
    ground = np.moveaxis(tile.astype(np.float32), -1, 0)                 # (3, 32, 32)
    ground = looks.haze(ground, 0.05, looks.SKY_BLUE, rng)
    view = Image.fromarray(looks.to_view(ground, PHOTO, "oblique", rng))
    frame = Image.new("RGB", CANVAS, (4, 4, 4))
    left = int(rng.integers(20, CANVAS[0] - PHOTO - 20))
    top = int(rng.integers(10, 30))
    frame.paste(view, (left, top))
    band = top + PHOTO + int(rng.integers(10, 25))
    draw = ImageDraw.Draw(frame)
    draw.rectangle((0, band, CANVAS[0], CANVAS[1]), fill=(238, 238, 232))
    draw.text((12, band + 8), f"ISS{int(rng.integers(10, 70)):03d}-E-{int(rng.integers(1000, 99999))}",
              fill=(20, 20, 20))
    return frame, (left, top, left + PHOTO, top + PHOTO)


def inside(box, photo) -> float:
    """Share of ``box`` that lies within ``photo`` (both (l, t, r, b))."""
    w = max(0, min(box[2], photo[2]) - max(box[0], photo[0]))
    h = max(0, min(box[3], photo[3]) - max(box[1], photo[1]))
    return w * h / max(1, (box[2] - box[0]) * (box[3] - box[1]))


def main() -> int:
    args = get_args_parser().parse_args()
    args.model = args.model or MODELS
    missing = [m for m in args.model if not m.is_file()]
    if missing or not (args.data / "labels.csv").is_file():
        print(f"error: not found: {missing or args.data / 'labels.csv'}", file=sys.stderr)
        return 2
    threads = pin_threads(args.threads)
    from biomeseason.predict.predictor import load_model

    labels = pd.read_csv(args.data / "labels.csv")
    held = labels[~labels["region"].isin(realstats.CALIBRATION_REGIONS)]
    rng = np.random.default_rng(args.seed)
    places = [g for _, r in held.groupby("region")
              for g in rng.choice(np.sort(r["group"].unique()), min(args.places, r["group"].nunique()), replace=False)]
    rows = held[held["group"].isin(places)].reset_index(drop=True)
    vocab = Vocabulary.load()
    rows["true_biome"] = [vocab.resolve(b).biome for b in rows["biome"]]
    rows["hemisphere"] = np.where(rows["lat"] < 0, "south", "north")
    rows["true_season"] = [season_of(m, h) for m, h in zip(rows["month"], rows["hemisphere"])]
    results = []
    with tempfile.TemporaryDirectory(prefix="astronaut-") as tmp:
        paths, boxes = [], []
        for i, path in enumerate(rows["path"]):
            photo, box = make_photo(np.asarray(read_image(args.data / path).image), rng)
            paths.append(files.save_image(Path(tmp) / f"{i:04d}.jpg", photo, quality=88))
            boxes.append(box)
        files.save_image(RESULTS.with_name("astronaut_examples.jpg"), contact_sheet(paths[:: max(1, len(paths) // 12)]),
                         quality=85)
        for model in args.model:
            predictor = load_model(model)
            preds = predictor.predict(paths, batch_size=32, hemisphere=list(rows["hemisphere"]))
            d = circular_distance([p.month for p in preds], rows["month"])
            # The biome again with each photo's latitude given, as `predict --lat` answers (models with a prior).
            given = predictor.predict(paths, batch_size=32, lat=list(rows["lat"])) if predictor.geo else None
            results.append({
                "model": str(model), "photos": len(preds),
                "biome accuracy": np.mean([p.biome == t for p, t in zip(preds, rows["true_biome"])]),
                "biome given latitude": (np.mean([p.biome == t for p, t in zip(given, rows["true_biome"])])
                                         if given else np.nan),
                "month within +-1": float(np.mean(d <= 1)),
                "season": np.mean([p.season == t for p, t in zip(preds, rows["true_season"])]),
                "flagged unfamiliar": np.mean([bool(p.unfamiliar) for p in preds]),
                "scene box without margins": np.mean([inside(p.scene_box, b) >= 0.95 for p, b in zip(preds, boxes)])})
    table = pd.DataFrame(results).set_index("model")
    text = "\n".join([
        f"- photos: {len(rows)} = {len(places)} REAL Blue Marble places x 12 months from the held-out regions "
        f"({', '.join(sorted(rows['region'].unique()))}), each seen obliquely with the limb, hazed, framed by "
        "black margins and a caption band; predicted with each tile's hemisphere and, for a model with a "
        "geographic prior, once more given each tile's latitude. Examples: "
        "`bench/results/astronaut_examples.jpg`.", "",
        "```", table.round(3).to_string(), "```", "",
        "Chance: biome 1/7 = 0.14, month within +-1 3/12 = 0.25, season 0.25.", ""])
    print(text)
    record("astronaut", "Astronaut-style photos made from real tiles", text, threads)
    return 0


def contact_sheet(paths: list[Path], side: int = 220) -> Image.Image:
    sheet = Image.new("RGB", (side * 4, side * ((len(paths) + 3) // 4)), (255, 255, 255))
    for i, path in enumerate(paths):
        im = read_image(path).image
        im.thumbnail((side, side))
        sheet.paste(im, ((i % 4) * side, (i // 4) * side))
    return sheet


if __name__ == "__main__":
    sys.exit(main())
