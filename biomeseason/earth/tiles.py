"""Tiles of the whole Earth, twelve months each, labelled by the world map's rule.

    python -m biomeseason earth --out runs/earth                 # every land tile, 32 and 64 px
    python -m biomeseason earth --out runs/earth --hold-out-regions data/bluemarble/labels.csv
    python dataset_preproc.py --raw runs/earth/raw --labels runs/earth/labels.csv --out runs/earth/processed

Cuts every land tile of the twelve Blue Marble monthly maps (``data/bluemarble_maps/``)
at each ``--scales`` size and writes, into ``--out`` (a folder of ours):

* ``raw/s<size>/<row>/e<size>-<row>-<col>-<MM>.png``: the tiles (the layout preprocessing reads);
* ``labels.csv``: ``path, biome, month, lat, lon, group, block, split, purity, scale, region``:
  ``group`` is the place (its twelve months share a split), ``block`` the 10 x 10 degree block
  the place lies in, ``split`` the block's split, ``purity`` the share of the tile's land pixels
  whose label is the tile's biome; a tile below ``--purity`` keeps its month and gets no biome;
  ``region`` names the shared region (``--hold-out-regions``) a tile overlaps;
* with ``--astronaut-views N``, ``raw/astronaut/a<i>-<MM>.png``: N views rendered from the maps as an
  astronaut's camera sees them (``earth.astronaut.labelled_views``: lenses 50-300 mm, 40-500 km of
  ground, tilted up to 60 degrees, some behind a window frame), cropped to their ground and labelled by
  the same rule; each shows only training blocks (or open sea), never a held-out region;
* ``label_map.png``: the world coloured by the rule's labels, the blocks' splits outlined;
* ``counts.csv``: tiles per biome and month, and per split.

Which tiles: a tile lies inside one block (a 10-degree block is 150 px; its tiles
are centred in it, leaving a gutter of 11 px, so no tile of one block shares a
pixel with a tile of another); at least ``MIN_LAND`` of its pixels are land
(not water, not permanent ice); none touches the held-out mask
(``hidden_mask.png``: 17 boxes that are black in every map, kept for a test
outside the project).

Splits: whole blocks, so a validation or test place lies at least one gutter, and
mostly a whole block, away from every training place. Blocks are dealt to
train/val/test by their most common biome, so each split sees every biome.
``--hold-out-regions`` sends every tile within 1 degree of one of the shared tiles'
regions to test (as the hidden mask's boxes carry a 1-degree margin), so figures
on those tiles stay comparable with earlier models.
"""
from __future__ import annotations

import argparse
import hashlib
import time
from pathlib import Path

import numpy as np
import pandas as pd

from . import worldmap
from .astronaut import labelled_views
from .worldmap import BIOMES, COLOURS, HEIGHT, ICE, OTHER, PER_DEGREE, PURITY, WATER, WIDTH, majority_biome, map_path

BLOCK = 10 * PER_DEGREE       # 150 px: a 10 x 10 degree block
SCALES = (32, 64)             # tile sides: about 240 and 470 km, the footprints of astronaut photos
MIN_LAND = 0.75               # share of a tile's pixels that must be land
VAL_FRAC, TEST_FRAC = 0.1, 0.1
MARGIN = PER_DEGREE           # a held-out region's tiles: those within 1 degree of its box
MONTHS = range(1, 13)
COLUMNS = ["path", "biome", "month", "lat", "lon", "group", "block", "split", "purity", "scale", "region"]


def tile_origins(size: int) -> list[tuple[int, int]]:
    """(row, col) of the top-left corner of every tile of ``size`` px that fits inside one block."""
    per_block = (BLOCK - 16) // size                 # at least 8 px of gutter each side
    offset = (BLOCK - per_block * size) // 2
    starts = [b * BLOCK + offset + k * size for b in range(WIDTH // BLOCK) for k in range(per_block)]
    rows = [s for s in starts if s + size <= HEIGHT]
    return [(r, c) for r in rows for c in starts]


def label_tiles(codes: np.ndarray, mask: np.ndarray, scales=SCALES, purity: float = PURITY) -> pd.DataFrame:
    """One row per land tile (not yet per month): row, col, scale, biome ('' below ``purity``), purity."""
    rows = []
    for size in scales:
        for r, c in tile_origins(size):
            if mask[r:r + size, c:c + size].any():
                continue
            tile = codes[r:r + size, c:c + size]
            land = (tile != WATER) & (tile != ICE)
            if land.mean() < MIN_LAND:
                continue
            biome, share = majority_biome(tile[land], purity)
            rows.append({"row": r, "col": c, "scale": size, "purity": share, "biome": biome,
                         "lat": round(90 - (r + size / 2) / PER_DEGREE, 3),
                         "lon": round((c + size / 2) / PER_DEGREE - 180, 3),
                         "block": f"b{r // BLOCK:02d}-{c // BLOCK:02d}"})
    places = pd.DataFrame(rows)
    places["group"] = [f"e{s}-{r:04d}-{c:04d}" for s, r, c in zip(places["scale"], places["row"], places["col"])]
    return places


def region_boxes(labels_csv: Path, tile: int = 32) -> dict[str, tuple[int, int, int, int]]:
    """(top, left, bottom, right) pixel box of each region of a Blue Marble tiles CSV (its tiles' extent)."""
    table = pd.read_csv(labels_csv)
    boxes = {}
    for region, rows in table.groupby("region"):
        y = (90 - rows["lat"]) * PER_DEGREE
        x = (rows["lon"] + 180) * PER_DEGREE
        boxes[region] = (int(y.min() - tile / 2), int(x.min() - tile / 2),
                         int(np.ceil(y.max() + tile / 2)), int(np.ceil(x.max() + tile / 2)))
    return boxes


def assign_blocks(places: pd.DataFrame, seed: int, held: dict, val_frac=VAL_FRAC, test_frac=TEST_FRAC) -> pd.DataFrame:
    """places with ``split`` (by block) and ``region`` (the held-out region a tile overlaps, or '')."""
    from ..prepare.splits import deal

    places = places.copy()
    places["region"] = ""
    for region, (top, left, bottom, right) in held.items():
        hit = ((places["row"] < bottom + MARGIN) & (places["row"] + places["scale"] > top - MARGIN)
               & (places["col"] < right + MARGIN) & (places["col"] + places["scale"] > left - MARGIN))
        places.loc[hit, "region"] = region
    labelled = places[places["biome"] != ""]
    dominant = labelled.groupby("block")["biome"].agg(lambda s: s.value_counts().index[0])
    blocks = pd.DataFrame({"block": sorted(places["block"].unique())})
    blocks["biome"] = blocks["block"].map(dominant).fillna("")
    blocks["key"] = [hashlib.sha256(f"{seed}:{b}".encode()).hexdigest() for b in blocks["block"]]
    fractions = {"train": 1 - val_frac - test_frac, "val": val_frac, "test": test_frac}
    blocks["split"] = ""
    for _, rows in blocks.groupby("biome"):
        order = rows.sort_values("key")
        blocks.loc[order.index, "split"] = deal(len(order), fractions)
    places["block_split"] = places["block"].map(blocks.set_index("block")["split"])
    places["split"] = places["block_split"].where(places["region"] == "", "test")
    return places


def write_tiles(places: pd.DataFrame, out: Path, maps: Path = worldmap.MAPS, progress: bool = True) -> pd.DataFrame:
    """The twelve months of every place as PNGs under out/raw; the labels table, one row per tile."""
    from PIL import Image
    from tqdm.auto import tqdm

    from ..io.files import save_image
    from ..io.images import read_image

    rows = []
    bar = tqdm(total=12 * len(places), desc="tiles", unit="tile", disable=not progress)
    for month in MONTHS:
        world = np.asarray(read_image(map_path(month, maps)).image)
        if world.shape[:2] != (HEIGHT, WIDTH):
            raise ValueError(f"{map_path(month, maps)} is {world.shape[1]}x{world.shape[0]}, not {WIDTH}x{HEIGHT}")
        for p in places.itertuples():
            path = f"s{p.scale}/{p.row:04d}/{p.group}-{month:02d}.png"
            tile = world[p.row:p.row + p.scale, p.col:p.col + p.scale]
            save_image(out / "raw" / path, Image.fromarray(tile), format="PNG")
            rows.append((path, p.biome, month, p.lat, p.lon, p.group, p.block, p.split, p.purity, p.scale, p.region))
            bar.update()
    bar.close()
    return pd.DataFrame(rows, columns=COLUMNS)


def train_ground(places: pd.DataFrame, held: dict) -> np.ndarray:
    """(HEIGHT, WIDTH) bool: the map pixels a training view may show: the training blocks and the blocks
    without a tile (open sea, ice), never a validation or test block, nor a held-out region or its margin."""
    grid = np.ones((HEIGHT // BLOCK, WIDTH // BLOCK), bool)
    for block, split in places.drop_duplicates("block").set_index("block")["block_split"].items():
        y, x = (int(v) for v in block[1:].split("-"))
        grid[y, x] = split == "train"
    allowed = np.kron(grid, np.ones((BLOCK, BLOCK), bool))
    for top, left, bottom, right in held.values():
        allowed[max(top - MARGIN, 0):bottom + MARGIN, max(left - MARGIN, 0):right + MARGIN] = False
    return allowed


def write_views(views, out: Path) -> pd.DataFrame:
    """Rendered astronaut views (``astronaut.labelled_views``) as PNGs under out/raw/astronaut; their rows
    of the labels table (split train; the place is the ground under the image centre, or the nadir point)."""
    from PIL import Image

    from ..io.files import save_image

    rows = []
    for i, v in enumerate(views):
        path = f"astronaut/a{i:05d}-{v.view.month:02d}.png"
        save_image(out / "raw" / path, Image.fromarray(v.image), format="PNG")
        lat, lon = v.view.centre or (v.view.lat, v.view.lon)
        row, col = int((90 - v.view.lat) * PER_DEGREE), int((v.view.lon + 180) * PER_DEGREE)
        block = f"b{row // BLOCK:02d}-{col // BLOCK:02d}"                    # of the nadir point
        rows.append((path, v.biome, v.view.month, round(lat, 3), round(lon, 3), f"a{i:05d}", block, "train",
                     v.purity, v.image.shape[0], ""))
    return pd.DataFrame(rows, columns=COLUMNS)


def counts_table(labels: pd.DataFrame) -> pd.DataFrame:
    """Tiles per biome (rows; '(none)' below the purity) and month (columns), with per-split totals."""
    named = labels.assign(biome=labels["biome"].replace("", "(none)"))
    table = pd.crosstab(named["biome"], named["month"])
    for split in ("train", "val", "test"):
        table[split] = named[named["split"] == split].groupby("biome").size().reindex(table.index).fillna(0).astype(int)
    table["all"] = named.groupby("biome").size()
    return table.reset_index()


def plot_label_map(codes: np.ndarray, places: pd.DataFrame, mask: np.ndarray, held: dict, every: int = 4):
    """The world coloured by the rule's labels (1/``every`` scale), hidden boxes black, blocks outlined by
    split (val blue, test red), held-out regions (with their 1-degree margin) dashed."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch, Rectangle

    picture = worldmap.coloured(codes[::every, ::every])
    picture[mask[::every, ::every] > 0] = 0
    fig, ax = plt.subplots(figsize=(14, 7.6))
    ax.imshow(picture, extent=(-180, 180, -90, 90), interpolation="nearest")
    for b in places.drop_duplicates("block").itertuples():
        if b.block_split in ("val", "test"):
            y, x = (int(v) for v in b.block[1:].split("-"))
            ax.add_patch(Rectangle((x * 10 - 180, 80 - y * 10), 10, 10, fill=False, lw=1.2,
                                   ec="tab:blue" if b.block_split == "val" else "tab:red"))
    for top, left, bottom, right in held.values():
        ax.add_patch(Rectangle((left / PER_DEGREE - 181, 91 - bottom / PER_DEGREE), (right - left) / PER_DEGREE + 2,
                               (bottom - top) / PER_DEGREE + 2, fill=False, lw=1.2, ls="--", ec="magenta"))
    handles = [Patch(color=COLOURS[i], label=name) for i, name in enumerate(BIOMES)]
    handles += [Patch(color=COLOURS[OTHER], label="land of none of the seven"),
                Patch(color="black", label="hidden (no data)"),
                Patch(fill=False, ec="tab:blue", label="validation block"),
                Patch(fill=False, ec="tab:red", label="test block"),
                Patch(fill=False, ec="magenta", ls="--", label="held-out region (test)")]
    ax.legend(handles=handles, loc="lower left", fontsize=8, ncol=2, framealpha=0.9)
    ax.set(xlabel="longitude", ylabel="latitude", title="Biome labels of the whole Earth (rule of "
           "biomeseason.earth.worldmap: MODIS land cover + Koppen-Geiger climate + latitude)")
    return fig


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Cut and label every land tile of the Blue Marble maps.",
                                add_help=add_help)
    p.add_argument("--out", default="runs/earth", help="folder to write (default: %(default)s)")
    p.add_argument("--force", action="store_true", help="write into an existing folder biomeseason did not make")
    p.add_argument("--maps", default=str(worldmap.MAPS), help="Blue Marble monthly maps (default: %(default)s)")
    p.add_argument("--scales", type=int, nargs="+", default=list(SCALES),
                   help="tile sides in px (default: %(default)s)")
    p.add_argument("--purity", type=float, default=PURITY,
                   help="least share of a tile's land that must agree for it to get a biome (default: %(default)s)")
    p.add_argument("--hold-out-regions", metavar="CSV", default=None,
                   help="a Blue Marble tiles CSV (path, region, lat, lon): blocks touching its regions go to test")
    p.add_argument("--astronaut-views", type=int, default=0, metavar="N",
                   help="also N astronaut views rendered from the maps (biomeseason.earth.astronaut: lenses "
                        "50-300 mm, tilts 0-60 degrees, some behind a window frame), cropped to their ground, "
                        "labelled by the same rule, all in training blocks (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the blocks' splits and of the views (default: %(default)s)")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    return p


def main(args: argparse.Namespace) -> int:
    from ..io.files import UsageError, claim_dir, save_figure, write_csv
    from ..io.images import read_codes

    maps = Path(args.maps)
    for size in args.scales:
        if not 8 <= size <= BLOCK - 16:
            raise UsageError(f"--scales must lie within 8..{BLOCK - 16} px, not {size}")
    if not 0 <= args.purity <= 1:
        raise UsageError(f"--purity must lie within 0..1, not {args.purity}")
    if args.astronaut_views < 0:
        raise UsageError(f"--astronaut-views must be 0 or more, not {args.astronaut_views}")
    missing = [str(map_path(m, maps)) for m in MONTHS if not map_path(m, maps).is_file()]
    if missing or not (maps / "hidden_mask.png").is_file():
        raise UsageError(f"{maps} lacks {(missing or ['hidden_mask.png'])[0]}: the twelve Blue Marble maps and "
                         "hidden_mask.png are in data/bluemarble_maps/ of the repository")
    start = time.perf_counter()
    out = claim_dir(args.out, force=args.force)
    codes = worldmap.label_map()
    mask = read_codes(maps / "hidden_mask.png")
    held = region_boxes(Path(args.hold_out_regions)) if args.hold_out_regions else {}
    places = assign_blocks(label_tiles(codes, mask, args.scales, args.purity), args.seed, held)
    print(f"{len(places)} land places at {'/'.join(map(str, args.scales))} px in {places['block'].nunique()} blocks; "
          f"{(places['biome'] != '').mean():.0%} with a biome (purity >= {args.purity}); "
          + ", ".join(f"{n} {s}" for s, n in places.groupby("split")["block"].nunique().items()) + " blocks"
          + (f"; {len(held)} regions held out" if held else ""))
    labels = write_tiles(places, out, maps, args.progress)
    if args.astronaut_views:

        views = labelled_views(args.astronaut_views, train_ground(places, held), codes, rng=args.seed,
                               purity=args.purity, maps_folder=maps, progress=args.progress)
        labels = pd.concat([labels, write_views(views, out)], ignore_index=True)
        print(f"{len(views)} astronaut views in training blocks, {np.mean([v.biome != '' for v in views]):.0%} "
              "with a biome")
    write_csv(out / "labels.csv", labels)
    counts = counts_table(labels)
    write_csv(out / "counts.csv", counts)
    save_figure(out / "label_map.png", plot_label_map(codes, places, mask, held), dpi=110)
    print(counts.to_string(index=False))
    print(f"wrote {len(labels)} tiles into {out / 'raw'}, {out / 'labels.csv'}, {out / 'counts.csv'} and "
          f"{out / 'label_map.png'} in {time.perf_counter() - start:.0f} s\nnext: python dataset_preproc.py "
          f"--raw {out / 'raw'} --labels {out / 'labels.csv'} --out {out / 'processed'}")
    return 0
