"""Real cameras against the Blue Marble: the colours of each real image beside the map's at the same place and
month, and the camera that turns one into the other (imported by bench/cameras.py; not a benchmark).

    rows = measure(load_images(ROOT / "data" / "cameras"))      # one dict per image, a few seconds
    lines = report(rows)                                         # per-image table, pooled fits, ranges vs KINDS

The essential measurement of the camera study behind ``biomeseason/model/camera.py`` (its ranges come from
it), on the repository's own copies: ``data/cameras`` (12 Sentinel-2 previews, 6 BigEarthNet patches) and
``data/bluemarble_maps``. Per image, on 8-bit values:

* where it lies on the map: a preview's pixels are placed on a square of ``footprint_km`` about its centre
  (``centre_lat``, ``centre_lon``; aligned with north, which the UTM grid is to within 1.5 degrees at these
  places, under 1 km at a preview's edge) and averaged into the 7.4 km map pixel each falls in; a
  BigEarthNet patch (1.2 km) lies inside one map pixel: the map's bilinear value at its centre;
* cloud screening: real pixels with every channel above 170 are left out of the fits, unless the map is
  itself bright (snow) there;
* the mean colour, real and map; ``g0`` = their ratio per channel (a pure gain); the white balance
  ``g0_R / g0_G``; the exposure ``E1`` (ratio of mean luma); the blue excess (B - G, real minus map);
  the dark-object blue (1st percentile: the haze floor); the sensor noise (``estimate_sigma``);
* for previews whose map footprint is not flat (std >= 5 in every channel, >= 16 map pixels): the moment
  fit ``real = g * map + a`` per channel (g the ratio of std's at the map's scale) and the contrast left
  after the gain (``g / g0``: the atmosphere's transmission);
* pooled over a group of images (least squares on their mean colours): ``real = g * map + a`` per channel
  and ``luma_real = E * luma_map ** gamma`` (log-log): the gains, haze offsets and gamma of that camera.

Images mostly of sea, under snow, or where the map is held out (``hidden_mask.png``) are listed, not used
for the ranges (``land`` says which are). Twelve previews and six patches: enough to bound a simulator's
ranges, not to pin them.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

LUMA = np.array([0.2126, 0.7152, 0.0722])
PER_DEGREE = 15                 # the Blue Marble grid
KM_PER_DEGREE = 111.32
BRIGHT = 170                    # every channel above: cloud, snow or ice
WINDOW = 5                      # map pixels around a patch smaller than one, for its land share


def srgb_encode(v):
    v = np.clip(np.asarray(v, dtype=np.float64), 0, 1)
    return np.where(v <= 0.0031308, v * 12.92, 1.055 * v ** (1 / 2.4) - 0.055)


def load_images(root: Path) -> list[dict]:
    """The real images of ``data/cameras`` as dicts: name, kind, product, image (h, w, 3) uint8, place, month."""
    from biomeseason.io.images import read_image

    items = []
    s2 = pd.read_csv(root / "sentinel2" / "labels.csv", dtype={"biome": str}, keep_default_na=False)
    for row in s2.itertuples():
        product = "L1C" if "MSIL1C" in row.product else "L2A"
        items.append({"name": Path(row.path).stem, "kind": f"Sentinel-2 {product}", "product": product,
                      "image": np.asarray(read_image(root / "sentinel2" / row.path).image),
                      "lat": float(row.centre_lat), "lon": float(row.centre_lon), "month": int(row.month),
                      "km": float(row.footprint_km), "note": row.note})
    ben = pd.read_csv(root / "bigearthnet" / "labels.csv", dtype={"biome": str}, keep_default_na=False)
    for row in ben.itertuples():
        image = np.asarray(read_image(root / "bigearthnet" / row.path).image)
        base = {"kind": "BigEarthNet", "product": "L2A", "lat": float(row.lat), "lon": float(row.lon),
                "month": int(row.month), "km": float(row.footprint_km), "note": row.note}
        name = f"BEN {row.country} {row.date} {'_'.join(Path(row.path).stem.split('_')[-2:])}"
        items.append({**base, "name": f"{name} A", "rendition": "A", "image": image})
        # Rendition B (reflectance x 2.5, sRGB curve) from A (DN / 3000): sRGB(0.75 * A); A's clipped pixels stay
        # clipped, so a bright patch (snow) is only approximately B.
        b = np.round(srgb_encode(0.75 * image / 255.0) * 255).astype(np.uint8)
        items.append({**base, "name": f"{name} B", "rendition": "B", "image": b})
    return items


def _bilinear(grid: np.ndarray, row: float, col: float) -> np.ndarray:
    """(3,) value of an (h, w, 3) grid at fractional (row, col), pixel (i, j) covering [i, i+1) x [j, j+1)."""
    r, c = row - 0.5, col - 0.5
    r0, c0 = int(math.floor(r)), int(math.floor(c))
    fr, fc = r - r0, c - c0
    g = grid.astype(np.float64)
    return (g[r0, c0] * (1 - fr) * (1 - fc) + g[r0 + 1, c0] * fr * (1 - fc)
            + g[r0, c0 + 1] * (1 - fr) * fc + g[r0 + 1, c0 + 1] * fr * fc)


def _water(px: np.ndarray) -> np.ndarray:
    """The map's sea and lakes by colour (very low red, dark): (0-7, 3-13, 10-27) oceans; approximate."""
    return (px[:, 0] < 10) & (px[:, 1] < 30) & (px.max(1) < 45)


def map_pixels(item: dict) -> tuple[np.ndarray, np.ndarray]:
    """Map row and column (int) of every pixel of a preview, on a north-up square of ``km`` about its centre."""
    h, w = item["image"].shape[:2]
    km = item["km"] / w
    i, j = np.mgrid[0:h, 0:w]
    lat = item["lat"] + (h / 2 - (i + 0.5)) * km / KM_PER_DEGREE
    lon = item["lon"] + ((j + 0.5) - w / 2) * km / (KM_PER_DEGREE * np.cos(np.radians(item["lat"])))
    return np.floor((90 - lat) * PER_DEGREE).astype(int), np.floor((lon + 180) * PER_DEGREE).astype(int)


def measure_one(item: dict, bm: np.ndarray, hidden: np.ndarray) -> dict:
    """One image against the month's map (``bm`` (2700, 5400, 3) uint8; ``hidden`` True where held out)."""
    from skimage.restoration import estimate_sigma

    flat = item["image"].reshape(-1, 3).astype(np.float64)
    out = {k: item[k] for k in ("name", "kind", "product", "month", "lat", "lon", "note")}
    out.update(rendition=item.get("rendition", ""), real_mean=flat.mean(0),
               dark_blue=float(np.percentile(flat[:, 2], 1)),
               noise=float(estimate_sigma(item["image"].astype(np.float64), channel_axis=-1, average_sigmas=True)),
               real_bright=float((flat.min(1) > BRIGHT).mean()), g=np.full(3, np.nan), a=np.full(3, np.nan),
               contrast=np.nan, stable=False, held_out=False)
    centre_row, centre_col = (90 - item["lat"]) * PER_DEGREE, (item["lon"] + 180) * PER_DEGREE
    if item["km"] < 7.4:        # inside one map pixel: its bilinear value, the land share of the window around it
        r, c = int(centre_row), int(centre_col)
        window = bm[r - WINDOW // 2:r + WINDOW // 2 + 1, c - WINDOW // 2:c + WINDOW // 2 + 1].reshape(-1, 3)
        if hidden[r, c]:
            return {**out, "held_out": True}
        map_mean, land_px, bins = _bilinear(bm, centre_row, centre_col), window, None
    else:
        rows, cols = map_pixels(item)
        key = (rows * bm.shape[1] + cols).ravel()
        keys, inverse, counts = np.unique(key, return_inverse=True, return_counts=True)
        kr, kc = keys // bm.shape[1], keys % bm.shape[1]
        full = (counts >= 0.5 * counts.max()) & ~hidden[kr, kc]             # map pixels at least half covered
        if not full.any():
            return {**out, "held_out": True}
        under = bm[kr[full], kc[full]].astype(np.float64)
        map_mean, land_px, bins = under.mean(0), under, (inverse, full, counts, under)
    map_bright = float((np.atleast_2d(map_mean if bins is None else land_px).min(1) > BRIGHT).mean())
    valid = np.ones(len(flat), bool) if map_bright >= 0.05 else flat.min(1) <= BRIGHT
    fit_mean = flat[valid].mean(0)
    g0 = fit_mean / np.maximum(map_mean, 1e-6)
    out.update(map_mean=map_mean, fit_mean=fit_mean, g0=g0, wb_red=g0[0] / g0[1], exposure=float(LUMA @ fit_mean) /
               float(LUMA @ map_mean), blue_excess=float((fit_mean[2] - fit_mean[1]) - (map_mean[2] - map_mean[1])),
               land=float(1 - _water(land_px.astype(np.float64)).mean()), map_bright=map_bright,
               screened=float(1 - valid.mean()))
    if bins is not None:
        inverse, full, counts, under = bins
        n = np.bincount(inverse, weights=valid.astype(float), minlength=len(full))
        sums = np.zeros((len(full), 3))
        np.add.at(sums, inverse[valid], flat[valid])
        keep = full & (n >= 0.5 * counts.max())
        real_bins = sums[keep] / n[keep, None]                              # the real image at the map's scale
        map_bins = under[keep[full]]
        stable = len(map_bins) >= 16 and map_bins.std(0).min() >= 5
        if stable:
            g = real_bins.std(0) / map_bins.std(0)
            out.update(g=g, a=fit_mean - g * map_bins.mean(0), contrast=float(g[1] / g0[1]), stable=True)
    out["land_dominated"] = (not out["held_out"] and out["land"] >= 0.85 and out["real_bright"] < 0.05
                             and "smoke" not in item["note"].lower())
    return out


def measure(items: list[dict], maps=None) -> list[dict]:
    """Every image against the map of its month (each map read once)."""
    from biomeseason.earth import worldmap
    from biomeseason.earth.worldmap import map_path
    from biomeseason.io.images import read_codes, read_image

    folder = Path(maps or worldmap.MAPS)
    hidden = read_codes(folder / "hidden_mask.png") > 0
    rows = {}
    for month in sorted({it["month"] for it in items}):
        bm = np.asarray(read_image(map_path(month, folder)).image)
        for i, it in enumerate(items):
            if it["month"] == month:
                rows[i] = measure_one(it, bm, hidden)
    return [rows[i] for i in range(len(items))]


def pooled_fit(rows: list[dict]) -> dict:
    """``real_c = g_c * map_c + a_c`` by least squares over the images' screened means, and
    ``log luma_real = log E + gamma log luma_map``."""
    x = np.array([r["map_mean"] for r in rows])
    y = np.array([r["fit_mean"] for r in rows])
    g, a, r2 = [], [], []
    for c in range(3):
        design = np.stack([x[:, c], np.ones(len(rows))], 1)
        (gc, ac), *_ = np.linalg.lstsq(design, y[:, c], rcond=None)
        ss = ((y[:, c] - y[:, c].mean()) ** 2).sum()
        g.append(gc), a.append(ac), r2.append(1 - ((y[:, c] - design @ [gc, ac]) ** 2).sum() / ss if ss else np.nan)
    gamma, log_e = np.polyfit(np.log(x @ LUMA / 255), np.log(y @ LUMA / 255), 1)
    return {"n": len(rows), "g": np.array(g), "a": np.array(a), "r2": np.array(r2), "gamma": float(gamma),
            "E": math.exp(log_e)}


def groups(rows: list[dict]) -> dict[str, list[dict]]:
    """The groups whose ranges bound the simulator's kinds (land-dominated images only, and bright anchors)."""
    used = [r for r in rows if not r["held_out"]]
    land = [r for r in used if r["land_dominated"]]
    s2 = [r for r in land if r["kind"].startswith("Sentinel")]
    alps = [r for r in used if r["name"].startswith("alps")]
    ben_a = [r for r in used if r["rendition"] == "A"]
    return {
        "S2 L1C, land": [r for r in s2 if r["product"] == "L1C"],
        "S2 L2A, land": [r for r in s2 if r["product"] == "L2A"],
        "S2 L2A, land + alps (snow)": [r for r in s2 if r["product"] == "L2A"] + alps,
        "BigEarthNet A (DN/3000)": ben_a,
        "BigEarthNet B (~refl x 2.5, sRGB)": [r for r in used if r["rendition"] == "B"],
        "L2A: S2 land + alps + BigEarthNet A": [r for r in s2 if r["product"] == "L2A"] + alps + ben_a,
    }


# Which measured group speaks for which simulated kind.
KIND_OF_GROUP = {"S2 L1C, land": "l1c", "S2 L2A, land": "l2a", "BigEarthNet A (DN/3000)": "l2a"}


def _three(v, p=0) -> str:
    return "(" + ", ".join("—" if not np.isfinite(x) else f"{x:.{p}f}" for x in v) + ")"


def _one(x, p=2) -> str:
    return "—" if not np.isfinite(x) else f"{x:.{p}f}"


def _span(values, p=2) -> str:
    v = np.array([x for x in values if x is not None and np.isfinite(x)], dtype=float)
    return "—" if v.size == 0 else f"{v.min():.{p}f}" if v.size == 1 else f"{v.min():.{p}f}-{v.max():.{p}f}"


def _inside(values, bounds, scale=1.0) -> str:
    v = np.array([x for x in values if np.isfinite(x)], dtype=float)
    if v.size == 0:
        return "—"
    lo, hi = bounds[0] * scale, bounds[1] * scale
    out = int(((v < lo - 1e-9) | (v > hi + 1e-9)).sum())
    return "inside" if out == 0 else f"{out} of {v.size} outside"


def ranges_table(rows: list[dict], kinds: dict) -> list[str]:
    """Measured values per group beside the simulator's ranges (``KINDS``), with whether each lies inside."""
    g = groups(rows)
    pooled = {name: pooled_fit(members) for name, members in g.items() if len(members) >= 2}
    def fit(name, what):
        return [what(pooled[name])] if name in pooled else []

    params = [   # (simulator field, what is measured, per-group values, scale of the simulator's unit)
        ("gamma", "pooled luma gamma (log-log)", lambda n, m: fit(n, lambda f: f["gamma"]), 1),
        ("exposure", "E1: mean luma real / map, per image", lambda n, m: [r["exposure"] for r in m], 1),
        ("gain_red", "g0 R/G, per image", lambda n, m: [r["wb_red"] for r in m], 1),
        ("gain_blue", "pooled g_B / g_G", lambda n, m: fit(n, lambda f: f["g"][2] / f["g"][1]), 1),
        ("transmission", "contrast g/g0 (green), stable previews, per image",
         lambda n, m: [r["contrast"] for r in m if r["stable"]], 1),
        ("haze_blue", "pooled blue offset a_B (8-bit)", lambda n, m: fit(n, lambda f: f["a"][2]), 255),
        ("haze_blue", "dark-object blue, 1st percentile (8-bit), per image", lambda n, m: [r["dark_blue"] for r in m],
         255),
        ("noise", "estimate_sigma (8-bit), per image", lambda n, m: [r["noise"] for r in m], 255),
    ]
    lines = ["| simulator field | measured | group | n | measured range | simulated kind | its range | check |",
             "|---|---|---|---|---|---|---|---|"]
    for field, what, values, scale in params:
        for name, kind in KIND_OF_GROUP.items():
            members = g[name]
            # Per-image values from the land-dominated images only; pooled fits keep the bright anchors.
            v = values(name, [r for r in members if r["land_dominated"]] if "per image" in what else members)
            bounds = getattr(kinds[kind], field)
            lines.append(f"| `{field}` | {what} | {name} | {len(members)} | {_span(v)} | {kind} | "
                         f"{bounds[0] * scale:.2f}-{bounds[1] * scale:.2f} | {_inside(v, bounds, scale)} |")
    return lines


def report(rows: list[dict], kinds: dict) -> list[str]:
    """The section of bench/cameras.py's report: per image, pooled per group, and the ranges against KINDS."""
    per_image = ["| image | kind | mo | land | real mean RGB | map mean RGB | g0 (R,G,B) | R/G | E1 | B-G excess | "
                 "dark blue | fit g (R,G,B) | fit a (R,G,B) | contrast | noise | used |",
                 "|" + "---|" * 16]
    for r in rows:
        if r["held_out"]:
            per_image.append(f"| {r['name']} | {r['kind']} | {r['month']} | — | {_three(r['real_mean'])} | held out "
                             "(hidden mask): no map | | | | | | | | | " f"{r['noise']:.1f} | no |")
            continue
        per_image.append(
            f"| {r['name']} | {r['kind']} | {r['month']} | {r['land']:.0%} | {_three(r['fit_mean'])} | "
            f"{_three(r['map_mean'])} | {_three(r['g0'], 2)} | {r['wb_red']:.2f} | {r['exposure']:.2f} | "
            f"{r['blue_excess']:+.0f} | {r['dark_blue']:.0f} | {_three(r['g'], 2)} | {_three(r['a'], 0)} | "
            f"{_one(r['contrast'])} | {r['noise']:.1f} | "
            f"{'yes' if r['land_dominated'] else 'no'} |")
    pooled = ["| group | n | g (R,G,B) | a (R,G,B), 8-bit | R² (R,G,B) | g_R/g_G | g_B/g_G | a_R/a_B | a_G/a_B | "
              "gamma | E |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, members in groups(rows).items():
        if len(members) < 2:
            continue
        f = pooled_fit(members)
        pooled.append(f"| {name} | {f['n']} | {_three(f['g'], 2)} | {_three(f['a'], 1)} | {_three(f['r2'], 2)} | "
                      f"{f['g'][0] / f['g'][1]:.2f} | {f['g'][2] / f['g'][1]:.2f} | {f['a'][0] / f['a'][2]:.2f} | "
                      f"{f['a'][1] / f['a'][2]:.2f} | {f['gamma']:.2f} | {f['E']:.2f} |")
    return ["Per image (8-bit; 'real mean' after cloud screening; map = the Blue Marble of the same month under the "
            "image, or at a patch's centre; g0 = real / map per channel; fit g, a only where the map's footprint is "
            "not flat; contrast = g/g0 in green; 'used' = land-dominated, counted in the ranges):", "", *per_image, "",
            "Pooled over each group: `real = g * map + a` per channel, `luma_real = E * luma_map ^ gamma`:", "",
            *pooled, "", "Measured against the simulator's ranges (`biomeseason/model/camera.py` KINDS; haze and "
            "noise on 0..255). No real astronaut photo is on this machine: the `astronaut` kind is not checked here.",
            "", *ranges_table(rows, kinds)]
