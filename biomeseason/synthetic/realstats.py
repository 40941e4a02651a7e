"""Colour statistics of real Earth imagery, per biome and month, for the synthetic scenes.

    python -m biomeseason.synthetic.realstats data/bluemarble                # re-measure, rewrite the table

The table (``realstats.json`` beside this file) was measured on NASA's Blue
Marble Next Generation monthly composites of 2004 (32 x 32 px tiles, about
7 km per pixel), on the regions in ``CALIBRATION_REGIONS`` only; the other
regions are left for ``bench/real.py`` to score a model on places whose
colours the generator never saw. Per region choice: the region nearest the
reference place of each biome (whose seasons the generator follows), plus a
second region where the biome's looks differ strongly with its seasons in
phase (red Australian and beige Saharan desert; Canadian and Siberian taiga;
Appalachian and north-east Chinese forest).

Months are northern-equivalent (``labels.north_month``): a tile south of the
equator (``lat`` < 0) counts six months on, so a southern July joins the
northern Januaries it looks like, as the synthetic scenes' labels do.

Per (biome, month) the table holds, over the tiles of that biome and month:

- ``lab``: mean of the tiles' mean CIELAB L*, a*, b*
- ``lab_sd``: spread (sd) of the tiles' means between tiles
- ``within_sd``: mean within-tile sd of L*, a*, b* (contrast and colour variation)
- ``within_sd_sd``: its spread between tiles
- ``chroma``: mean chroma (saturation) of the pixels
- ``n``: number of tiles
- ``regions``: the same figures (but chroma) per calibration region, so a
  scene can take its colours from one place rather than from a blend of
  two places whose seasons differ (a Gaussian over two regions puts most
  draws between them, where neither lies)
"""
from __future__ import annotations

import argparse
import functools
import json
from pathlib import Path

import numpy as np

TABLE = Path(__file__).with_name("realstats.json")

# Blue Marble regions the table is measured on; bench/real.py scores the others.
CALIBRATION_REGIONS = (
    "canada-west", "siberia",                # Boreal
    "appalachia", "northeast-china",         # Deciduous
    "sahara", "australia-interior",          # DV
    "congo",                                 # Rainforest
    "miombo",                                # TropGrass
    "arctic-canada",                         # Tundra
    "great-plains",                          # USGrass
)


KEYS = ("lab", "lab_sd", "within_sd", "within_sd_sd")


@functools.lru_cache(maxsize=4)
def load(path: str | None = None) -> dict:
    """{biome prefix: {"lab": (12, 3), "lab_sd": (12, 3), "within_sd": (12, 3), "within_sd_sd": (12, 3),
    "chroma": (12,), "regions": {region: {"lab": (12, 3), ...}}}} as float32 arrays, months Jan..Dec."""
    raw = json.loads(Path(path or TABLE).read_text(encoding="utf-8"))
    out = {}
    for biome, months in raw["biomes"].items():
        rows = [months[str(m)] for m in range(1, 13)]
        out[biome] = {key: np.asarray([r[key] for r in rows], np.float32) for key in (*KEYS, "chroma")}
        out[biome]["regions"] = {
            region: {key: np.asarray([r["regions"][region][key] for r in rows], np.float32) for key in KEYS}
            for region in rows[0].get("regions", {})}
    return out


def tile_stats(rgb: np.ndarray) -> dict:
    """CIELAB statistics of one uint8 RGB image (H, W, 3)."""
    from skimage.color import rgb2lab

    lab = rgb2lab(rgb).reshape(-1, 3)
    return {"lab": lab.mean(0), "within_sd": lab.std(0), "chroma": float(np.hypot(lab[:, 1], lab[:, 2]).mean())}


def measure(folder, regions=CALIBRATION_REGIONS) -> dict:
    """The table from a Blue Marble folder (labels.csv with path, biome, month, region)."""
    import pandas as pd

    from ..io.images import read_image
    from ..labels import north_month

    folder = Path(folder)
    labels = pd.read_csv(folder / "labels.csv")
    labels = labels[labels["region"].isin(regions)].copy()
    labels["month"] = [north_month(m, "south" if lat < 0 else "north")
                       for m, lat in zip(labels["month"], labels["lat"])]
    missing = sorted(set(regions) - set(labels["region"]))
    if missing:
        raise ValueError(f"regions {missing} are not in {folder / 'labels.csv'}")
    stats = [tile_stats(np.asarray(read_image(folder / p).image)) for p in labels["path"]]
    labels = labels.reset_index(drop=True)
    table = {}
    for (biome, month), idx in labels.groupby(["biome", "month"]).groups.items():
        s = [stats[i] for i in idx]
        row = table.setdefault(biome, {})[str(int(month))] = {
            **_summary(s), "chroma": round(float(np.mean([x["chroma"] for x in s])), 2), "regions": {}}
        for region, ridx in labels.loc[idx].groupby("region").groups.items():
            row["regions"][region] = _summary([stats[i] for i in ridx])
    return {"source": "NASA Blue Marble Next Generation 2004 monthly composites, 32 px tiles (about 7 km/px)",
            "regions": list(regions), "biomes": table}


def to_json(table: dict) -> str:
    """One line per biome-month, so the table reads (and diffs) as a table."""
    lines = [f'  "source": {json.dumps(table["source"])},', f'  "regions": {json.dumps(table["regions"])},',
             '  "biomes": {']
    for i, (biome, months) in enumerate(table["biomes"].items()):
        rows = [f'      "{m}": {json.dumps(v)}' for m, v in months.items()]
        end = "," if i < len(table["biomes"]) - 1 else ""
        lines += [f'    "{biome}": {{', ",\n".join(rows), f"    }}{end}"]
    return "{\n" + "\n".join(lines) + "\n  }\n}\n"


def _summary(s: list) -> dict:
    lab = np.array([x["lab"] for x in s])
    within = np.array([x["within_sd"] for x in s])
    return {"n": len(s), "lab": _r(lab.mean(0)), "lab_sd": _r(lab.std(0)),
            "within_sd": _r(within.mean(0)), "within_sd_sd": _r(within.std(0))}


def _r(values) -> list:
    return [round(float(v), 2) for v in values]


def main(argv=None) -> int:
    from ..io import files

    p = argparse.ArgumentParser(description="Measure the colour table of the synthetic scenes.")
    p.add_argument("folder", type=Path, help="Blue Marble folder holding labels.csv")
    p.add_argument("--out", type=Path, default=TABLE, help=f"table to write (default: {TABLE.name} in the package)")
    args = p.parse_args(argv)
    table = measure(args.folder)
    files.write_text(args.out, to_json(table))
    print(f"wrote {args.out}: {sum(len(m) for m in table['biomes'].values())} biome-months "
          f"from {len(table['regions'])} regions")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
