"""Every camera: today's shipped Earth model beside candidate models, camera by camera, in one run.

    python bench/cameras.py                         # HEAD's models/earth.pt, and the working tree's if it differs
    python bench/cameras.py --model runs/x/best.pt  # beside a candidate (repeatable)
    python bench/cameras.py --quick                 # fewer tiles and views: a check in a few minutes

Models: the baseline is the ``models/earth.pt`` of git HEAD (taken out with ``git show`` into a temporary
file) or ``--baseline``; candidates are ``--model`` (repeatable), by default the working tree's
``models/earth.pt`` if it differs from HEAD's. Each is used as shipped (its own prior and familiarity); a
model with camera kinds (``model.kinds``) reads (a) with its composite kind and every other camera with its
photo kind, as ``predict`` does by default.

Cameras (each a table with the models side by side, and a verdict line):
(a) Blue Marble, the training camera: the 3,516 REAL shared tiles of ``data/bluemarble`` (20 regions no
    Earth model trained on), per region too.
(b) SIMULATED cameras: the same real tiles through ``model.camera.Camera().only(kind)`` for l2a, l1c and
    astronaut (seeded): simulated from real tiles, not photos from those cameras.
(c) Sentinel-2 previews, REAL (``data/cameras/sentinel2``, about 61 km): the 4 with a biome, per image too;
    the 8 without one (sea, cities, the Alps, conifer forest) as the share flagged unfamiliar and the share
    answered with p > 0.9 and not flagged; each as it is, at ``footprint_km=61.4`` and ``"auto"``; the place
    is the preview's centre from its MGRS tile.
(d) BigEarthNet-S2 patches, REAL (``data/cameras/bigearthnet``, 1.2 km, labelled by the label map's rule):
    as they are, at ``footprint_km=1.2`` and ``"auto"``. A map pixel is 7.4 km: a patch is a sixth of one,
    and at its footprint it is shown at the smallest view the model learnt from (25 px, 185 km).
(e) Astronaut views RENDERED from the real Blue Marble maps (``earth.astronaut.random_views``, the
    simulated astronaut camera, some behind a window frame), nadir points only inside the boxes of the 20
    held-out regions, labelled by the region's biome; without and with the footprint (``View.footprint_km``).
(f) Ground-level photos (bench/earth.py's ``ground_photos``: nine sample photos, the centre and four quarters
    of each): the share flagged unfamiliar.
Per camera: images, biome accuracy from the image alone, from the map alone (the place, no image) and from
the image with the place, the log loss of the map alone and of the image with the place (where the map's top
answer is nearly always right, a proper score still shows whether the image makes the right biome surer),
month within one month, the share flagged unfamiliar, the share wrong with p > 0.9 and not flagged (all by
``training.scoring``).
(g) Real camera colours against the Blue Marble (``_camera_stats``): the table behind
    ``model/camera.py``'s ranges, each range checked.
(h) A contact sheet, ``bench/results/cameras_views.jpg``.

Torch and BLAS threads are pinned (``--threads``, printed). Puts the report at the top of
``bench/results/cameras.md`` (``cameras_quick.md`` with ``--quick``) with the date, the machine and the command.
"""
from __future__ import annotations

import argparse
import hashlib
import io
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from _machine import RESULTS, pin_threads, record  # noqa: E402

TITLE = "Every camera: today's Earth model beside candidates, camera by camera"
SHARED = ROOT / "data" / "bluemarble"
CAMERAS = ROOT / "data" / "cameras"
SHIPPED = "models/earth.pt"
SHEET = RESULTS / "cameras_views.jpg"
SHEET_BYTES = 300_000
SIMULATED = ("l2a", "l1c", "astronaut")
WAYS = ("image", "map", "place")
HALF_TILE = 16 / 15           # degrees: half a 32 px shared tile, whose lat, lon is its centre
FULL = {"tiles_per_region": None, "views_per_region": 8, "view_px": 96}
QUICK = {"tiles_per_region": 1, "views_per_region": 1, "view_px": 64}
VIEW_LENS = (100.0, 1600.0)   # mm: the 50 mm lens's 190 km and more would see far beyond a region's box
VIEW_TILT = (0.0, 30.0)       # degrees: a view's ground stays within a few hundred km of its nadir
IN_REGION = 0.5               # share of a view's ground inside its region's box, or it is drawn again ...
REDRAWS = 20                  # ... up to this many times (then the last is kept)
FRAME_P = 0.3


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--baseline", type=Path, help=f"today's model (default: {SHIPPED} of git HEAD)")
    p.add_argument("--model", type=Path, action="append", default=[],
                   help=f"a candidate, repeatable (default: the working tree's {SHIPPED} if it differs from HEAD's)")
    p.add_argument("--quick", action="store_true", help=f"fewer tiles and views: {QUICK} (default: {FULL})")
    p.add_argument("--seed", type=int, default=0, help="seed of the simulated cameras and the views (default: 0)")
    p.add_argument("--threads", type=int, default=2, help="torch and BLAS threads, pinned (default: 2)")
    return p


# ------------------------------------------------------------------ models

def head_model(folder: Path) -> Path:
    """HEAD's shipped model, written to ``folder``."""
    data = subprocess.run(["git", "-C", str(ROOT), "show", f"HEAD:{SHIPPED}"], check=True, capture_output=True).stdout
    path = folder / "earth-HEAD.pt"
    path.write_bytes(data)
    return path


def choose_models(args, folder: Path) -> list[tuple[str, Path]]:
    """[(name, path)]: the baseline first, then the candidates."""
    baseline = args.baseline or head_model(folder)
    models = [("today" if args.baseline is None else f"baseline {args.baseline}", baseline)]
    candidates = list(args.model)
    working = ROOT / SHIPPED
    if not candidates and working.is_file() and working.read_bytes() != Path(baseline).read_bytes():
        candidates = [working]
    for path in candidates:
        try:
            name = str(Path(path).resolve().relative_to(ROOT))
        except ValueError:
            name = str(path)
        models.append((name, Path(path)))
    return models


def digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:12]


# ------------------------------------------------------------------ the images of each camera

@dataclass
class Set:
    """One camera's images in one way of asking: a table (``file`` a path or an (h, w, 3) uint8 array, ``lat``,
    ``lon``, ``biome`` canonical or '' if unknown, ``month`` or 0) and the options of ``predict_tiles``."""
    camera: str
    variant: str
    table: pd.DataFrame
    options: dict = field(default_factory=dict)
    by: str | None = None
    kind: str = "photo"   # which kind of a model with camera kinds reads it (model.kinds)


def column(arrays) -> np.ndarray:
    """A table column of images: a 1-d object array, one (h, w, 3) array an entry (pandas would stack them)."""
    out = np.empty(len(arrays), dtype=object)
    for i, a in enumerate(arrays):
        out[i] = a
    return out


def canonical(biomes) -> list[str]:
    from biomeseason.labels import Vocabulary

    vocab = Vocabulary.load()
    return [vocab.resolve(b, fuzzy=False).biome if b else "" for b in biomes]


def shared_tiles(tiles_per_region: int | None) -> pd.DataFrame:
    """The shared tiles of the 20 held-out regions (with ``tiles_per_region``: the first places of each)."""
    from biomeseason.training import scoring

    table = scoring.read_tiles(SHARED / "labels.csv")
    if tiles_per_region:
        first = table.groupby("region")["tile_id"].apply(lambda ids: sorted(set(ids))[:tiles_per_region])
        keep = {t for ids in first for t in ids}
        table = table[table["tile_id"].isin(keep)].reset_index(drop=True)
    return table


def region_boxes(table: pd.DataFrame) -> pd.DataFrame:
    """Per region: its biome and box (the extent of its tiles, whose lat, lon are their centres)."""
    g = table.groupby("region")
    return pd.DataFrame({"biome": g["biome"].first(), "lat0": g["lat"].min() - HALF_TILE,
                         "lat1": g["lat"].max() + HALF_TILE, "lon0": g["lon"].min() - HALF_TILE,
                         "lon1": g["lon"].max() + HALF_TILE}).reset_index()


def simulated(table: pd.DataFrame, kind: str, seed: int) -> pd.DataFrame:
    """The tiles as a simulated camera of one kind shows them (seeded), as arrays in ``file``."""
    from biomeseason.model.camera import Camera
    from biomeseason.training import scoring

    out = table.copy()
    out["file"] = column(scoring.camera_views(list(table["file"]), Camera().only(kind), seed))
    return out


def real_table(folder: Path, lat: str = "lat", lon: str = "lon") -> pd.DataFrame:
    """A data/cameras labels.csv with canonical biomes ('' where none), each file's path, and its place."""
    table = pd.read_csv(folder / "labels.csv", dtype={"biome": str}, keep_default_na=False)
    table["biome"] = canonical(table["biome"])
    table["file"] = [str(folder / p) for p in table["path"]]
    table["lat"], table["lon"] = table[lat].astype(float), table[lon].astype(float)
    table["footprint_km"] = table["footprint_km"].astype(float)
    return table


def rendered_views(boxes: pd.DataFrame, per_region: int, size: int, seed: int) -> tuple[pd.DataFrame, list]:
    """``per_region`` astronaut views of each region (months drawn at random; a view's nadir uniform in the
    region's box), rendered month by month so one month's maps are in memory at a time."""
    from biomeseason.earth import astronaut

    rng = np.random.default_rng(seed)
    plan = [(i, r, int(rng.integers(1, 13))) for i, r in enumerate(boxes.itertuples()) for _ in range(per_region)]
    rows, views = [], []
    for month in sorted({m for _, _, m in plan}):
        for k, (_, box, m) in enumerate(plan):
            if m != month:
                continue

            def nadir(g, box=box):
                return g.uniform(box.lat0, box.lat1), g.uniform(box.lon0, box.lon1)

            for attempt in range(REDRAWS):    # a view whose ground lies mostly outside the box is drawn again
                [view] = astronaut.random_views(1, months=[month], where=nadir, size=size, frame_p=FRAME_P,
                                                rng=np.random.default_rng([seed, k, attempt]), camera="astronaut",
                                                focal_mm=VIEW_LENS, tilt_deg=VIEW_TILT)
                ground = view.ground.reshape(-1, 2)
                ground = ground[np.isfinite(ground[:, 0])]
                inside = ((ground[:, 0] >= box.lat0) & (ground[:, 0] <= box.lat1) & (ground[:, 1] >= box.lon0)
                          & (ground[:, 1] <= box.lon1))
                if len(ground) and inside.mean() >= IN_REGION:
                    break
            lat, lon = view.centre or (view.lat, view.lon)
            rows.append({"order": k, "region": box.region, "biome": box.biome, "month": month, "lat": lat, "lon": lon,
                         "footprint_km": view.footprint_km, "in_region": float(inside.mean()) if len(ground) else 0.0,
                         "frame": view.frame, "focal_mm": view.focal_mm, "tilt_deg": view.tilt_deg})
            views.append((k, view))
        astronaut.month_levels.cache_clear()
    order = np.argsort([k for k, _ in views])
    table = pd.DataFrame(rows).sort_values("order").reset_index(drop=True)
    table["file"] = column([views[i][1].image for i in order])
    return table, [views[i][1] for i in order]


def ground_table() -> pd.DataFrame:
    from earth import ground_photos  # bench/earth.py's photos, as it takes them

    photos = ground_photos()
    return pd.DataFrame({"path": [n for n, _ in photos], "file": column([a for _, a in photos]),
                         "lat": np.nan, "lon": np.nan, "biome": "", "month": 0})


def sets_of(settings: dict, seed: int) -> tuple[list[Set], dict]:
    """Every camera's sets, made once and shared by every model; and what the report says about them."""
    shared = shared_tiles(settings["tiles_per_region"])
    boxes = region_boxes(shared)
    sets = [Set("(a) Blue Marble, 20 held-out regions", "as it is", shared, by="region", kind="composite")]
    sets += [Set("(b) SIMULATED cameras on the same real tiles", kind, simulated(shared, kind, seed))
             for kind in SIMULATED]
    s2 = real_table(CAMERAS / "sentinel2", "centre_lat", "centre_lon")
    ben = real_table(CAMERAS / "bigearthnet")
    for camera, table, km in (("(c) Sentinel-2 previews", s2, 61.4), ("(d) BigEarthNet-S2 patches", ben, 1.2)):
        sets += [Set(camera, "as it is", table), Set(camera, f"footprint {km:g} km", table, {"footprint_km": km}),
                 Set(camera, "footprint auto", table, {"footprint_km": "auto"})]
    views, view_list = rendered_views(boxes, settings["views_per_region"], settings["view_px"], seed)
    footprints = [None if f is None or not np.isfinite(f) else float(f) for f in views["footprint_km"]]
    sets += [Set("(e) Astronaut views rendered from the maps", "no footprint", views, {"scene": True}),
             Set("(e) Astronaut views rendered from the maps", "footprint given", views,
                 {"scene": True, "footprint_km": footprints})]
    sets.append(Set("(f) Ground-level photos", "as it is", ground_table()))
    return sets, {"shared": shared, "boxes": boxes, "views": views, "view_list": view_list, "s2": s2, "ben": ben}


# ------------------------------------------------------------------ scoring

def answer(predictor, s: Set) -> pd.DataFrame:
    from biomeseason.training import scoring

    return scoring.predict_tiles(predictor, s.table, **s.options)


def summarise(answers: pd.DataFrame, predictor, by: str | None = None) -> tuple[dict, pd.DataFrame | None]:
    """The figures of one set for one model: those of the labelled images (``scoring.figures``: image, map,
    image with the place), and for the unlabelled ones the share flagged and the share answered with p > 0.9
    and not flagged (image alone, and with the place where it is known). Also the per-group figures."""
    from biomeseason.training import scoring

    labelled = answers[answers["biome"] != ""].reset_index(drop=True)
    rest = answers[answers["biome"] == ""].reset_index(drop=True)
    out = {"images": len(answers), "labelled": len(labelled), "flagged": float(answers["unfamiliar"].mean())}
    groups = None
    if len(labelled):
        f = scoring.figures(labelled, predictor, by=by, ways=WAYS)
        key = by or "group"
        overall = f[f[key] == "all"].set_index("way")
        for way in WAYS:
            if way in overall.index:
                out[f"acc_{way}"] = float(overall.loc[way, "biome_acc"])
                out[f"nll_{way}"] = float(overall.loc[way, "biome_nll"])
        out["month1"] = float(overall.loc["image", "month_within1"]) if (labelled["month"] > 0).all() else np.nan
        out["wrong_image"] = float(overall.loc["image", "wrong_p90_unflagged"])
        if "place" in overall.index:
            out["wrong_place"] = float(overall.loc["place", "wrong_p90_unflagged"])
        if by:
            groups = f[f[key] != "all"].pivot(index=key, columns="way", values="biome_acc")
            groups["tiles"] = f[(f[key] != "all") & (f["way"] == "image")].set_index(key)["tiles"]
    if len(rest):
        out["rest"] = len(rest)
        out["rest_flagged"] = float(rest["unfamiliar"].mean())
        unflagged = ~rest["unfamiliar"].to_numpy(dtype=bool)
        for way in ("image", "place"):
            if way == "place" and (predictor.geo is None or rest["lat"].isna().all()):
                continue
            probs = scoring.biome_probs(rest, predictor, way)
            out[f"rest_sure_{way}"] = float(((probs.max(1) > scoring.CONFIDENT) & unflagged).mean())
    return out, groups


def per_image(answers: pd.DataFrame, predictor) -> pd.DataFrame:
    """Per labelled image: its biome, the answer and p of each way, and the flag."""
    from biomeseason.training import scoring

    labelled = answers[answers["biome"] != ""].reset_index(drop=True)
    out = pd.DataFrame({"picture": [Path(p).stem[:40] for p in labelled["path"]], "true": labelled["biome"]})
    for way in WAYS:
        probs = scoring.biome_probs(labelled, predictor, way)
        out[way] = [f"{predictor.biomes[i]} ({p[i]:.2f})" for i, p in zip(probs.argmax(1), probs)]
    out["flagged"] = ["yes" if u else "no" for u in labelled["unfamiliar"]]
    return out


def run_model(name: str, path: Path, sets: list[Set]) -> tuple[list[dict], dict]:
    from biomeseason.predict.predictor import load_model

    predictors = {}
    rows, extra = [], {}
    for s in sets:
        if s.kind not in predictors:
            predictors[s.kind] = load_model(path, camera=s.kind)
        predictor = predictors[s.kind]
        start = time.perf_counter()
        answers = answer(predictor, s)
        figures, groups = summarise(answers, predictor, s.by)
        rows.append({"model": name, "camera": s.camera, "variant": s.variant, **figures})
        if groups is not None:
            extra[("groups", s.camera, s.variant)] = groups
        if s.camera.startswith(("(c)", "(d)")):
            extra[("images", s.camera, s.variant)] = per_image(answers, predictor)
        print(f"{name}: {s.camera}, {s.variant}: {len(s.table)} images in {time.perf_counter() - start:.0f} s",
              flush=True)
    return rows, extra


# ------------------------------------------------------------------ the report

def cell(values: list, n: int | None = None) -> str:
    """The models' values side by side ('a · b'); counts where there are few images."""
    def one(v):
        if v is None or (isinstance(v, float) and not np.isfinite(v)):
            return "—"
        return f"{round(v * n)}/{n}" if n is not None and n < 20 else f"{v:.3f}"
    return " · ".join(one(v) for v in values)


COLUMNS = [("biome, image", "acc_image", "labelled"), ("biome, map", "acc_map", "labelled"),
           ("biome, image + place", "acc_place", "labelled"), ("log loss, map", "nll_map", None),
           ("log loss, image + place", "nll_place", None), ("month ±1", "month1", "labelled"),
           ("flagged", "flagged", "images"), ("wrong p>0.9 unflagged, image", "wrong_image", "labelled"),
           ("wrong p>0.9 unflagged, place", "wrong_place", "labelled"),
           ("unlabelled: flagged", "rest_flagged", "rest"),
           ("unlabelled: p>0.9 unflagged, image", "rest_sure_image", "rest"),
           ("unlabelled: p>0.9 unflagged, place", "rest_sure_place", "rest")]


def camera_table(rows: pd.DataFrame, models: list[str]) -> list[str]:
    """One camera: a row per variant, the models side by side in each cell."""
    shown = [(title, key, count) for title, key, count in COLUMNS if key in rows and rows[key].notna().any()
             and not (key == "flagged" and rows["labelled"].sum() == 0)]   # then it is the unlabelled one
    lines = ["| variant | images (labelled) | " + " | ".join(t for t, _, _ in shown) + " |",
             "|" + "---|" * (2 + len(shown))]
    for variant, part in rows.groupby("variant", sort=False):
        part = part.set_index("model").reindex(models)
        first = part.iloc[0]
        counts = {"images": int(first["images"]), "labelled": int(first["labelled"]),
                  "rest": int(first["rest"]) if "rest" in part and pd.notna(first.get("rest")) else 0}
        values = [cell([part.loc[m, key] if key in part else None for m in models],
                       counts[count] if count else None) for _, key, count in shown]
        lines.append(f"| {variant} | {counts['images']} ({counts['labelled']}) | " + " | ".join(values) + " |")
    return lines


def verdict(rows: pd.DataFrame, models: list[str]) -> str:
    """Which model is ahead from the image alone and with the place (over the camera's variants), and whether the
    image with the place is ever worse than the map alone."""
    parts = []
    if "acc_image" in rows and rows["acc_image"].notna().any():
        if len(models) > 1:
            for way, words in (("acc_image", "image alone"), ("acc_place", "image + place")):
                mean = rows.groupby("model")[way].mean().reindex(models)
                best = mean.idxmax()
                tie = (mean == mean.max()).sum() > 1
                parts.append(f"{words}: {'tie' if tie else best + ' ahead'} "
                             f"({', '.join(f'{m} {v:.3f}' for m, v in mean.items())}; mean over variants)")
        else:
            parts.append(f"only {models[0]} ran: no comparison of models")
        worse = rows[rows["acc_place"] < rows["acc_map"] - 1e-9]
        parts.append("image + place never worse than the map alone" if worse.empty else
                     "image + place WORSE than the map alone: " + "; ".join(
                         f"{r.model}, {r.variant} ({r.acc_place:.3f} < {r.acc_map:.3f})" for r in worse.itertuples()))
        if "nll_place" in rows and rows["nll_place"].notna().any():
            behind = rows[rows["nll_place"] >= rows["nll_map"] - 1e-9]
            parts.append("in log loss image + place beats the map alone everywhere" if behind.empty else
                         "in log loss image + place NOT better than the map alone: " + "; ".join(
                             f"{r.model}, {r.variant} ({r.nll_place:.3f} >= {r.nll_map:.3f})"
                             for r in behind.itertuples()))
    else:
        flagged = rows.groupby("model")["rest_flagged"].mean().reindex(models)
        parts.append("share flagged: " + ", ".join(f"{m} {v:.3f}" for m, v in flagged.items())
                     + (f"; {flagged.idxmax()} flags more" if len(models) > 1 and flagged.nunique() > 1 else ""))
    return "**verdict:** " + "; ".join(parts) + "."


def regions_table(extra: dict, models: list[str], camera: str, boxes: pd.DataFrame) -> list[str]:
    per = {m: extra[m].get(("groups", camera, "as it is")) for m in models}
    lines = ["| region | biome | tiles | image | map | image + place |", "|---|---|---|---|---|---|"]
    biome = boxes.set_index("region")["biome"]
    first = per[models[0]]
    for region in first.index:
        vals = [cell([per[m].loc[region, way] for m in models]) for way in WAYS]
        lines.append(f"| {region} | {biome[region]} | {int(first.loc[region, 'tiles'])} | " + " | ".join(vals) + " |")
    worse = {m: int((per[m]["place"] < per[m]["map"] - 1e-9).sum()) for m in models}
    lines += ["", "Regions where the image with the place is below the map alone: "
              + ", ".join(f"{m} {worse[m]} of {len(per[m])}" for m in models) + "."]
    return lines


def images_table(extra: dict, models: list[str], camera: str, variants: list[str]) -> list[str]:
    lines = ["| image | variant | model | true | image: answer (p) | map: answer (p) | image + place: answer (p) | "
             "flagged |", "|---|---|---|---|---|---|---|---|"]
    for variant in variants:
        for m in models:
            t = extra[m][("images", camera, variant)]
            lines += [f"| {r.picture} | {variant} | {m} | {r.true} | {r.image} | {r.map} | {r.place} | {r.flagged} |"
                      for r in t.itertuples()]
    return lines


def report(rows: pd.DataFrame, extra: dict, models: list[tuple[str, Path]], info: dict, stats: list[str],
           settings: dict, seed: int, seconds: float, sheet_note: str) -> str:
    names = [m for m, _ in models]
    views = info["views"]
    lines = [f"- time: {seconds / 60:.1f} min; settings {settings}; seed {seed}",
             "- models: " + "; ".join(f"**{m}** = `{'git HEAD:' + SHIPPED if m == 'today' else m}` "
                                      f"(sha256 {digest(p)}…)" for m, p in models),
             f"- cells: {' · '.join(names)}" + ("" if len(names) > 1 else " (the baseline alone: no candidate given, "
                                                 "and the working tree's model is HEAD's)"),
             "- ways: `image` the image alone; `map` the place alone (the model's prior from the label map, no "
             "image); `image + place` both (latitude and longitude). Counts where a set has fewer than 20 images.",
             "- `log loss`: the mean of -ln p given to the true biome (lower is better), the map's and the image "
             "with the place's: a proper score, so where the map's top answer is nearly always right it still shows "
             "whether the image makes the right biome surer.",
             "- `wrong p>0.9 unflagged`: answered wrongly with p > 0.9 and not flagged unfamiliar (the answers that "
             "mislead); `unlabelled`: images of none of the seven biomes (or no land): flagged, and answered with "
             "p > 0.9 and not flagged.", "", "Chance: biome 1/7 = 0.14, month within ±1 3/12 = 0.25.", ""]
    camera_notes = {
        "(a)": f"REAL: {len(info['shared'])} Blue Marble tiles (32 px, 7.4 km a pixel) of the 20 regions of "
               "`data/bluemarble`, hand-labelled; no Earth model trained on them.",
        "(b)": f"SIMULATED from the REAL tiles of (a): each tile through `Camera().only(kind)` (seed {seed}); "
               "what an l2a / l1c / astronaut camera might make of the same ground, not photos from them.",
        "(c)": "REAL: 12 Sentinel-2 previews (`data/cameras/sentinel2`, 343 px, 61.4 km; L1C and L2A); 4 with a "
               "biome, 8 without (sea, cities, the Alps, conifer forest). The place: the preview's centre from its "
               "MGRS tile. Four images: one image is 0.25 of the accuracy.",
        "(d)": "REAL: 6 BigEarthNet-S2 patches (`data/cameras/bigearthnet`, 120 px at 10 m = 1.2 km, rendered "
               "DN/3000 linear), labelled by the label map's rule at the patch centre. A Blue Marble pixel is "
               "7.4 km: a patch is a sixth of one map pixel, ground the model never saw this close; at "
               "`footprint_km=1.2` the patch is shown at the smallest view the model learnt from "
               "(`Predictor.smallest_view`, 25 px: as if it were 185 km), not as the 2 x 2 px of one flat colour "
               "the maps' scale would give it.",
        "(e)": f"RENDERED (not photos) from the REAL Blue Marble maps: {len(views)} ISS views "
               f"(`earth.astronaut.random_views`, {settings['view_px']} px, lenses {VIEW_LENS[0]:g}-{VIEW_LENS[1]:g} "
               f"mm, tilt {VIEW_TILT[0]:g}-{VIEW_TILT[1]:g} deg, the simulated astronaut camera, a window frame in "
               f"{views['frame'].mean():.0%}), nadir points uniform in the boxes of the 20 held-out regions, "
               f"{settings['views_per_region']} a region, random months (seed {seed}); labelled by the region's "
               f"biome. Footprints {np.nanmin(views['footprint_km'].astype(float)):.0f}-"
               f"{np.nanmax(views['footprint_km'].astype(float)):.0f} km (median "
               f"{np.nanmedian(views['footprint_km'].astype(float)):.0f}); a view is drawn again (up to {REDRAWS} "
               f"times) until at least {IN_REGION:.0%} of its ground lies inside its region's box: on average "
               f"{views['in_region'].mean():.0%} does, {(views['in_region'] < IN_REGION).sum()} of {len(views)} "
               "stayed below (the rest is the land around the box, which the label may not fit). The place: the "
               "ground at the view's centre. Predicted with the scene finder (as a user's photo is); the footprint "
               "is the whole frame's centre row.",
        "(f)": "REAL photos taken on the ground (bench/earth.py's `ground_photos`: nine sample photos of "
               "scikit-image, scikit-learn and matplotlib, the centre and the four quarters of each); no biome: "
               "each should be flagged.",
    }
    for camera, part in rows.groupby("camera", sort=False):
        tag = camera.split()[0]
        lines += [f"### {camera}", "", camera_notes.get(tag, ""), "", *camera_table(part, names), ""]
        if tag == "(b)":
            for kind, p in part.groupby("variant", sort=False):
                lines.append(f"- {kind}: " + verdict(p, names))
        else:
            lines.append(verdict(part, names))
        lines.append("")
        if tag == "(a)":
            lines += ["Per region (biome accuracy):", "", *regions_table(extra, names, camera, info["boxes"]), ""]
        if tag in ("(c)", "(d)"):
            variants = list(part["variant"].unique())
            lines += ["Per labelled image:", "", *images_table(extra, names, camera, variants), ""]
    lines += ["### (g) Real camera colours against the Blue Marble (the simulator's ranges checked)", "",
              "REAL images of `data/cameras` against the REAL Blue Marble map of the same month "
              "(`data/bluemarble_maps`); `bench/_camera_stats.py`.", "", *stats, "",
              "### (h) Contact sheet", "", sheet_note, ""]
    return "\n".join(lines)


# ------------------------------------------------------------------ the contact sheet

SHORT = {"boreal_forest": "Boreal", "temperate_deciduous_forest": "Deciduous", "desert": "DV",
         "tropical_rainforest": "Rainforest", "tropical_grassland": "TropGrass", "tundra": "Tundra",
         "temperate_grassland": "USGrass"}      # the original study's names: short enough for a caption


def contact_sheet(info: dict, seed: int, columns: int = 12, size: int = 96) -> str:
    """Real Sentinel-2 and BigEarthNet images, Blue Marble tiles through each simulated camera, rendered views;
    a row each."""
    from astronaut_views import caption_cell, sheet
    from PIL import ImageFont

    from biomeseason.io import files
    from biomeseason.io.images import read_image
    from biomeseason.model.camera import Camera
    from biomeseason.training import scoring

    font = ImageFont.load_default(size=10)
    blank = np.full((size, size, 3), 255, np.uint8)

    def row(images, captions):
        cells = [caption_cell(im, [c], size, font) for im, c in zip(images[:columns], captions)]
        return cells + [caption_cell(blank, [""], size, font)] * (columns - len(cells))

    s2, ben, shared = info["s2"], info["ben"], info["shared"]
    cells = row([np.asarray(read_image(f).image) for f in s2["file"]],
                [f"S2 {p[:14]}" for p in s2["path"]])
    cells += row([np.asarray(read_image(f).image) for f in ben["file"]],
                 [f"BEN {c[:8]} {m:02d}" for c, m in zip(ben["country"], ben["month"])])
    # A place of each biome in January and in July (12 of the 14).
    picks = shared[shared["month"].isin([1, 7])].groupby(["biome", "month"]).head(1)
    picks = picks.sort_values(["biome", "month"])[:columns]
    for kind in ("bluemarble", *SIMULATED):
        images = [np.asarray(read_image(f).image) for f in picks["file"]] if kind == "bluemarble" else \
            scoring.camera_views(list(picks["file"]), Camera().only(kind), seed)
        cells += row(images, [f"{kind[:5]} {SHORT[b]} {m:02d}" for b, m in zip(picks["biome"], picks["month"])])
    views = info["view_list"][:columns]
    cells += row([v.image for v in views], [f"ISS {SHORT[b]} {v.focal_mm:.0f}mm" for v, b in
                                           zip(views, info["views"]["biome"])])
    title = ["Row 1: REAL Sentinel-2 previews (61 km); row 2: REAL BigEarthNet-S2 patches (1.2 km, DN/3000 linear).",
             "Rows 3-6: REAL Blue Marble tiles of held-out regions (January, July) as they are, then through the "
             f"SIMULATED l2a, l1c and astronaut cameras (seed {seed}).",
             "Last row: astronaut views RENDERED from the REAL Blue Marble maps over held-out regions (simulated "
             "camera; some behind a window frame)."]
    image = sheet(cells, columns, title, font)
    for quality in (85, 75, 65, 55, 45):
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=quality, optimize=True)
        if buffer.tell() <= SHEET_BYTES:
            break
    files.atomic_write(SHEET, buffer.getvalue())
    return (f"`{SHEET.relative_to(ROOT)}` ({buffer.tell() / 1000:.0f} KB, JPEG quality {quality}): " + " ".join(title))


def main() -> int:
    args = get_args_parser().parse_args()
    import torch  # noqa: F401  (loaded first, so that pin_threads pins its threads too)

    threads = pin_threads(args.threads)
    settings = QUICK if args.quick else FULL
    start = time.perf_counter()
    import _camera_stats

    from biomeseason.model.camera import KINDS

    with tempfile.TemporaryDirectory() as tmp:
        models = choose_models(args, Path(tmp))
        print("models: " + "; ".join(f"{m} = {p}" for m, p in models), flush=True)
        t0 = time.perf_counter()
        stats = _camera_stats.report(_camera_stats.measure(_camera_stats.load_images(CAMERAS)), KINDS)
        print(f"camera colours measured in {time.perf_counter() - t0:.1f} s", flush=True)
        t0 = time.perf_counter()
        sets, info = sets_of(settings, args.seed)
        print(f"images made in {time.perf_counter() - t0:.0f} s ({len(info['views'])} rendered views)", flush=True)
        rows, extra = [], {}
        for name, path in models:
            r, e = run_model(name, path, sets)
            rows += r
            extra[name] = e
        sheet_note = contact_sheet(info, args.seed)
        text = report(pd.DataFrame(rows), extra, models, info, stats, settings, args.seed,
                      time.perf_counter() - start, sheet_note)
    print(text)
    record("cameras_quick" if args.quick else "cameras", TITLE, text, threads)
    return 0


if __name__ == "__main__":
    sys.exit(main())
