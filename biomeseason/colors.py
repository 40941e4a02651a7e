"""Colours: the dominant colours of an image, with their share and a name.

    from biomeseason import colors
    palette = colors.dominant_colors("photo.jpg", k=5)
    palette[2]   # e.g. {'rgb': (121, 103, 78), 'hex': '#79674e', 'share': 18.01,
                 #       'name': 'dimgray', 'name_hex': '#696969',
                 #       'basic_name': 'brown', 'delta_e': 12.53}
    colors.analyze_colors("photo.jpg")   # Azure-style fields, see analyze_colors

From the command line (folders are searched recursively):

    python -m biomeseason colors photo.jpg data/raw --k 5 --out colors.csv

How it works
- Pixels: the image is read by ``biomeseason.images`` (EXIF orientation, ICC
  profile, 16-bit and float, a pixel limit), decoded small (JPEG DCT scaling,
  then an integer box ``reduce``) to at most ``MAX_SIDE`` pixels a side, and at most
  ``MAX_SAMPLES`` pixels are drawn with a seeded generator. Transparent pixels
  are never drawn; optionally, near-black pixels connected to the image border
  (space around the Earth's limb, scanner or letterbox frames) are left out and
  counted. White is a real colour (snow, cloud) and always stays.
- Clusters: k-means in CIELAB, so that distances are perceptual; a shade
  shared by many pixels becomes one colour. An image with fewer distinct
  colours than ``k`` gives exactly those colours.
- Names: a 1-nearest-neighbour classifier in CIELAB over a colour-name table,
  CSS4 (148 names, the default) or XKCD (949 names), both shipped by
  matplotlib. CSS4 spells nine colours twice (gray/grey, aqua/cyan,
  fuchsia/magenta, ...); such aliases are one entry named by the
  alphabetically first spelling (``gray``, ``aqua``, ``fuchsia``), so every
  colour of a table is named by its own name, or by that first spelling.
  ``delta_e`` is the CIEDE2000 distance to the named colour.
- Basic names: one of the twelve ``BASIC_NAMES``, of the colour itself (see
  ``basic_names``), so they do not depend on the table.
- The classifier is fitted when first used and kept for the process: fitting
  takes a few milliseconds (CSS4 about 2 ms, XKCD about 6 ms), less than
  loading a stored model would, so nothing is stored and nothing is trusted.

Of the package this module imports only ``images`` (reading) and ``files``
(writing), so the colours command does not pay for importing torch.
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import warnings
from pathlib import Path

import matplotlib.colors as mcolors
import numpy as np
from PIL import Image
from scipy import ndimage
from skimage.color import deltaE_ciede2000, lab2rgb, rgb2lab
from sklearn.cluster import KMeans
from sklearn.neighbors import KNeighborsClassifier
from threadpoolctl import ThreadpoolController
from tqdm.auto import tqdm

from . import files, images

# ---------------------------------------------------------------- defaults ---
K = 5                    # colours per palette
ANALYSIS_K = 8           # analyze_colors clusters finer, so a small vivid patch can be the accent
SEED = 0                 # pixel sample and k-means initialisation
MAX_SIDE = 256           # decode/reduce to at most this many pixels a side (~65k pixels)
MAX_SAMPLES = 10_000     # pixels clustered; clustering all pixels moves the centres by ~0.3 dE
N_INIT = 10              # k-means restarts, on RESTART_SAMPLES pixels
RESTART_SAMPLES = 2_000  # enough to find the basin of the best optimum, cheap to restart on
MIN_ALPHA = 128          # pixels less opaque than this are transparent
FRAME_MAX_RGB = 32       # near-black: every channel <= this (about L* <= 12)
TABLE = "css4"           # colour-name table: "css4" or "xkcd"
MAX_K = 64               # more clusters than this is a typo, not a palette

# Basic colour terms: Berlin & Kay's eleven plus teal, as in Azure's colour analysis.
BASIC_NAMES = ("black", "white", "gray", "red", "orange", "yellow",
               "green", "blue", "purple", "pink", "brown", "teal")
ACHROMATIC_CHROMA = 10.0  # C*ab below this reads as black, gray or white
BLACK_MAX_L = 25.0        # achromatic and L* below this: black
WHITE_MIN_L = 85.0        # achromatic and L* above this: white (snow and cloud in photos: L* 85-95)

# analyze_colors regions, as fractions of width and height: the foreground is
# the middle half in each direction (a quarter of the area), the background the
# ring within BORDER of an edge (44% of the area). Pixels in between count
# for neither, so a subject that fills the centre is not also the background.
CENTRE = 0.5
BORDER = 0.125
SALIENT_SHARE = 2.0       # percent; smaller clusters cannot be the accent colour
BW_MAX_COLOURED = 1.0     # percent of pixels above ACHROMATIC_CHROMA an image may have and be B&W

# ------------------------------------------------------------------ pixels ---

def _read(image, max_pixels: int = images.MAX_PIXELS) -> Image.Image:
    """RGB, or RGBA if the image has transparency, decoded small (see images.read_image)."""
    return images.read_image(image, min_size=MAX_SIDE, max_pixels=max_pixels, keep_alpha=True).image


def _rgba_small(im: Image.Image) -> tuple[np.ndarray, np.ndarray]:
    """(H, W, 3) uint8 colours and (H, W) bool opaque mask, at most MAX_SIDE a side."""
    has_alpha = im.mode == "RGBA"
    # Premultiplied alpha, so a transparent pixel adds no colour to the boxes
    # it is averaged into by reduce.
    im = im.convert("RGBA").convert("RGBa") if has_alpha else im.convert("RGB")
    factor = -(-max(im.size) // MAX_SIDE)
    if factor > 1:
        im = im.reduce(factor)
    if not has_alpha:
        rgb = np.asarray(im)
        return rgb, np.ones(rgb.shape[:2], bool)
    rgba = np.asarray(im.convert("RGBA"))
    return rgba[..., :3], rgba[..., 3] >= MIN_ALPHA


def _frame_mask(rgb: np.ndarray, opaque: np.ndarray) -> np.ndarray:
    """Near-black pixels connected to the border: space or a frame, not a shadow."""
    dark = opaque & (rgb.max(axis=2) <= FRAME_MAX_RGB)
    labels, _ = ndimage.label(dark, structure=np.ones((3, 3)))
    edge = np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])
    touching = np.unique(edge[edge > 0])
    return np.isin(labels, touching)


class _Pixels:
    """The pixel sample of one image: colours, positions, and what was left out."""

    def __init__(self, image, seed: int = SEED, ignore_frame: bool = False,
                 max_pixels: int = images.MAX_PIXELS):
        rgb, keep = _rgba_small(_read(image, max_pixels))
        h, w = keep.shape
        self.ignored_transparent = 100.0 * (keep.size - keep.sum()) / keep.size
        frame = _frame_mask(rgb, keep) if ignore_frame else np.zeros_like(keep)
        self.ignored_frame = 100.0 * frame.sum() / keep.size
        keep &= ~frame
        index = np.flatnonzero(keep)
        if index.size == 0:
            what = "opaque" if not ignore_frame else "opaque, non-frame"
            raise ValueError(f"{_describe(image)}: no {what} pixels to analyse")
        if index.size > MAX_SAMPLES:
            rng = np.random.default_rng(seed)
            index = np.sort(rng.choice(index, MAX_SAMPLES, replace=False))
        self.rgb = rgb.reshape(-1, 3)[index]                   # (N, 3) uint8
        self.lab = _lab(self.rgb)                               # (N, 3)
        y, x = np.divmod(index, w)
        self.xy = np.stack([(x + 0.5) / w, (y + 0.5) / h], 1)   # (N, 2) in (0, 1)


def _describe(image) -> str:
    return str(image) if isinstance(image, (str, os.PathLike)) else type(image).__name__


def _lab(rgb) -> np.ndarray:
    """CIELAB of sRGB colours given as 0..255 numbers, shape (..., 3)."""
    return rgb2lab(np.asarray(rgb, dtype=float) / 255.0)


def _chroma(lab: np.ndarray) -> np.ndarray:
    return np.hypot(lab[..., 1], lab[..., 2])


# ---------------------------------------------------------------- clusters ---

def _cluster(lab: np.ndarray, rgb: np.ndarray, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(centres (m, 3) in Lab, labels (N,)) with m <= k."""
    codes = rgb.astype(np.int32) @ np.array([1 << 16, 1 << 8, 1])
    distinct, first, labels = np.unique(codes, return_index=True, return_inverse=True)
    if distinct.size <= k:
        # k-means would split one colour in several identical clusters.
        return lab[first], labels
    # Restarts on a small subsample are cheap and find the basin; one run on the whole
    # sample then settles the centres. Three restarts on the whole sample cost as much
    # and still end in a poor optimum on about one photo in six (bench/colors.py).
    rng = np.random.default_rng(seed)
    subsample = lab[rng.choice(len(lab), min(len(lab), RESTART_SAMPLES), replace=False)]
    start = KMeans(n_clusters=k, n_init=N_INIT, random_state=seed).fit(subsample).cluster_centers_
    km = KMeans(n_clusters=k, init=start, n_init=1).fit(lab)
    return km.cluster_centers_, km.labels_


_THREADS: list[ThreadpoolController] = []


def _one_thread():
    """Limit OpenMP/BLAS to one thread: on ~10k points (k-means) or a handful
    (naming), starting threads costs more than it saves, and on a busy machine
    it costs tens of milliseconds. The controller scans the loaded libraries,
    so it is made once."""
    if not _THREADS:
        _THREADS.append(ThreadpoolController())
    return _THREADS[0].limit(limits=1)


def _percentages(counts: np.ndarray, decimals: int = 2) -> np.ndarray:
    """Counts as percentages rounded so that they add up to exactly 100."""
    unit = 10 ** decimals
    exact = counts / counts.sum() * 100 * unit
    floor = np.floor(exact)
    short = int(round(100 * unit - floor.sum()))
    # largest remainders get the missing units; ties go to the larger count
    order = np.lexsort((-counts, -(exact - floor)))
    floor[order[:short]] += 1
    return floor / unit


def _to_rgb255(lab: np.ndarray) -> np.ndarray:
    return np.round(np.clip(lab2rgb(lab), 0, 1) * 255).astype(int)


class Palette(list):
    """Colour records, largest share first, plus what the sample left out.

    ``ignored_transparent`` and ``ignored_frame`` are percentages of the
    image's pixels (counted on the reduced image).
    """

    def __init__(self, records, ignored_transparent: float = 0.0, ignored_frame: float = 0.0):
        super().__init__(records)
        self.ignored_transparent = round(float(ignored_transparent), 2)
        self.ignored_frame = round(float(ignored_frame), 2)


def _palette(pixels: _Pixels, k: int, seed: int, namer: ColorNamer):
    """(Palette, labels of the sample pixels into it)."""
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    centres, labels = _cluster(pixels.lab, pixels.rgb, k, seed)
    counts = np.bincount(labels, minlength=len(centres))
    # by share, then by cluster number; a cluster k-means left empty is dropped
    order = np.lexsort((np.arange(len(counts)), -counts))[:np.count_nonzero(counts)]
    rank = np.full(len(counts), -1)
    rank[order] = np.arange(len(order))
    rgb = _to_rgb255(centres[order])
    shares = _percentages(counts[order])
    names = namer.name_rgb(rgb)
    records = [{"rgb": tuple(int(c) for c in colour), "hex": _hex(colour), "share": float(share), **name}
               for colour, share, name in zip(rgb, shares, names)]
    return Palette(records, pixels.ignored_transparent, pixels.ignored_frame), rank[labels]


def _hex(rgb) -> str:
    return "#{:02x}{:02x}{:02x}".format(*(int(c) for c in rgb))


def dominant_colors(image, k: int = K, *, seed: int = SEED, ignore_frame: bool = False,
                    table: str = TABLE, max_pixels: int = images.MAX_PIXELS) -> Palette:
    """The ``k`` most frequent colours of ``image``, largest share first.

    image: a path, a PIL image, or an (H, W[, 3|4]) uint8 or [0, 1] float array;
        a file that cannot be used raises ``images.ImageError`` with the reason.
    ignore_frame: leave out near-black pixels connected to the border; the
        returned palette's ``ignored_frame`` says how much of the image that was.
    Each record: ``rgb``, ``hex``, ``share`` (percent; the shares add up to
    100), ``name``, ``name_hex`` (the named colour), ``basic_name`` and
    ``delta_e`` (CIEDE2000 to the named colour). Fewer than ``k`` records come
    back when the image has fewer distinct colours.
    """
    pixels = _Pixels(image, seed=seed, ignore_frame=ignore_frame, max_pixels=max_pixels)
    namer = load_namer(table)
    with _one_thread():
        return _palette(pixels, k, seed, namer)[0]


def analyze_colors(image, k: int = ANALYSIS_K, *, seed: int = SEED, ignore_frame: bool = False,
                   table: str = TABLE, max_pixels: int = images.MAX_PIXELS) -> dict:
    """An offline colour analysis with the fields of Azure's image analysis.

    - dominant_color_foreground: the basic name with the largest share in the
      centre region (the middle half of the width and of the height);
    - dominant_color_background: the same in the border ring (pixels within
      1/8 of the width or height from an edge);
    - dominant_colors: the basic names of the salient clusters (at least
      SALIENT_SHARE percent of the pixels), largest share first;
    - accent_color: hex of the most chromatic salient cluster;
    - is_bw_img: at most BW_MAX_COLOURED percent of the pixels have a chroma
      above ACHROMATIC_CHROMA (grayscale, black-and-white, faint casts).
    A region with no pixels (transparent, or all frame) gives None.
    """
    pixels = _Pixels(image, seed=seed, ignore_frame=ignore_frame, max_pixels=max_pixels)
    namer = load_namer(table)
    with _one_thread():
        palette, labels = _palette(pixels, k, seed, namer)
    basic = np.array([c["basic_name"] for c in palette])           # per cluster
    centre = np.all(np.abs(pixels.xy - 0.5) < CENTRE / 2, axis=1)
    border = np.any(np.minimum(pixels.xy, 1 - pixels.xy) < BORDER, axis=1)
    salient = [c for c in palette if c["share"] >= SALIENT_SHARE] or palette[:1]
    totals = {}
    for c in salient:
        totals[c["basic_name"]] = totals.get(c["basic_name"], 0.0) + c["share"]
    chroma = _chroma(_lab([c["rgb"] for c in salient]))
    coloured = 100.0 * np.mean(_chroma(pixels.lab) > ACHROMATIC_CHROMA)
    return {
        "dominant_color_foreground": _most_frequent(basic[labels[centre]]),
        "dominant_color_background": _most_frequent(basic[labels[border]]),
        "dominant_colors": sorted(totals, key=lambda name: (-totals[name], name)),
        "accent_color": salient[int(np.argmax(chroma))]["hex"],
        "is_bw_img": bool(coloured <= BW_MAX_COLOURED),
    }


def _most_frequent(names: np.ndarray):
    """The most frequent name (ties alphabetical), or None if there are none."""
    if names.size == 0:
        return None
    values, counts = np.unique(names, return_counts=True)
    return str(values[np.lexsort((values, -counts))[0]])


def plot_palette(palette, ax=None):
    """A horizontal bar split by share, each part labelled with name and percent."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(10, 1.8))
    left = 0.0
    for colour in palette:
        share = colour["share"]
        ax.barh(0, share, left=left, color=colour["hex"], edgecolor="white")
        text = "black" if _lab(colour["rgb"])[0] > 55 else "white"
        label = f"{colour['name']}\n{share:.1f}%"
        ax.text(left + share / 2, 0, label, ha="center", va="center", color=text, fontsize=9)
        left += share
    ax.set_xlim(0, 100)
    ax.set_yticks([])
    ax.set_xlabel("share of pixels (%)")
    return ax


# ------------------------------------------------------------------- names ---

def color_table(table: str = TABLE) -> dict[str, str]:
    """Colour name -> '#rrggbb' of a table, aliases folded into their first spelling."""
    if table == "css4":
        source = mcolors.CSS4_COLORS
    elif table == "xkcd":
        source = {name.removeprefix("xkcd:"): hex_ for name, hex_ in mcolors.XKCD_COLORS.items()}
    else:
        raise ValueError(f"unknown colour table {table!r}; use 'css4' or 'xkcd'")
    first = {}
    for name in sorted(source):
        first.setdefault(source[name].lower(), name)
    return {name: hex_ for hex_, name in sorted(first.items(), key=lambda item: item[1])}


def _hex_rgb(hexes) -> np.ndarray:
    return np.array([[int(h[i:i + 2], 16) for i in (1, 3, 5)] for h in hexes], dtype=float)


def _head_term(name: str):
    """The basic term a name ends with ('dark green' -> 'green'), else None."""
    if "/" in name:                      # 'blue/green' is two answers, not one
        return None
    word = name.split()[-1].replace("grey", "gray")
    return word if word in BASIC_NAMES else None


def _achromatic(lightness: np.ndarray) -> np.ndarray:
    return np.where(lightness < BLACK_MAX_L, "black", np.where(lightness > WHITE_MIN_L, "white", "gray"))


@functools.lru_cache(maxsize=1)
def _anchors() -> tuple[np.ndarray, np.ndarray]:
    """(Lab (n, 3), basic names (n,)) of the colours that define the basic terms:
    - every XKCD colour whose name ends in a basic term: the XKCD names come
      from a survey in which people wrote 'dark green' for what they saw as a
      green, so these are colours people call by that term;
    - the twelve CSS4 colours named exactly by a basic term (CSS 'brown' is
      darker and redder than XKCD's browns, CSS 'teal' bluer than XKCD's);
    - the neutral axis L* = 0..100 as black, gray and white, so that cream and
      beige read as white rather than as the nearest pale pink."""
    named = [(term, h) for n, h in color_table("xkcd").items() if (term := _head_term(n))]
    named += [(term, h) for term, h in color_table("css4").items() if term in BASIC_NAMES]
    lightness = np.arange(101.0)
    neutral = np.stack([lightness, 0 * lightness, 0 * lightness], 1)
    lab = np.vstack([_lab(_hex_rgb([h for _, h in named])), neutral])
    return lab, np.concatenate([[term for term, _ in named], _achromatic(lightness)])


def basic_names(lab) -> list[str]:
    """The basic colour term of each CIELAB colour (N, 3), from the colour itself:

    1. near-neutral (C*ab < ACHROMATIC_CHROMA): black, gray or white by L*;
    2. otherwise the term of the nearest anchor (see ``_anchors``), by CIEDE2000
       with lightness and chroma differences halved (kL = kC = 2): hue is what
       mostly separates the basic terms, while in plain Lab distance a pale tint
       is nearer to a pale tint of another hue than to a deeper colour of its
       own (lemonchiffon would be green, papayawhip pink).
    A palette colour gets the term of its own colour rather than of its fine
    name: CSS4 is sparse, and a muted soil brown's nearest CSS4 name is
    dimgray, 14 dE away.
    """
    lab = np.atleast_2d(np.asarray(lab, dtype=float))
    anchor_lab, anchor_names = _anchors()
    distances = deltaE_ciede2000(lab[:, None, :], anchor_lab[None, :, :], kL=2, kC=2)   # (N, anchors)
    chromatic = anchor_names[np.argmin(distances, axis=1)]
    return [str(term) for term in np.where(_chroma(lab) < ACHROMATIC_CHROMA, _achromatic(lab[:, 0]), chromatic)]


class ColorNamer:
    """Names colours by their nearest table colour in CIELAB."""

    def __init__(self, table: str, names: list[str], hexes: list[str], knn: KNeighborsClassifier):
        # one sample per name: a 1-NN classifier names every table colour by its own name
        self.table, self.names, self.hexes, self.knn = table, names, hexes, knn
        self.lab = _lab(_hex_rgb(hexes))
        self._index = {name: i for i, name in enumerate(names)}

    @classmethod
    def fit(cls, table: str = TABLE) -> ColorNamer:
        colours = color_table(table)
        names, hexes = list(colours), list(colours.values())
        with warnings.catch_warnings():
            # one sample per class is the point here, not a regression in disguise
            warnings.filterwarnings("ignore", "The number of unique classes", UserWarning)
            # brute force: ~1k points need no tree, and a tree is one more type to trust
            knn = KNeighborsClassifier(n_neighbors=1, algorithm="brute").fit(_lab(_hex_rgb(hexes)), names)
        return cls(table, names, hexes, knn)

    def nearest(self, lab) -> np.ndarray:
        """Index into ``names`` of the nearest table colour of each CIELAB colour (N, 3)."""
        return np.array([self._index[n] for n in self.knn.predict(np.atleast_2d(lab))])

    def name_lab(self, lab) -> list[dict]:
        """For each CIELAB colour (N, 3): name, name_hex, basic_name, delta_e."""
        lab = np.atleast_2d(np.asarray(lab, dtype=float))
        index = self.nearest(lab)
        delta_e = deltaE_ciede2000(lab, self.lab[index])
        return [{"name": self.names[i], "name_hex": self.hexes[i], "basic_name": basic,
                 "delta_e": round(float(d), 2)} for i, basic, d in zip(index, basic_names(lab), delta_e)]

    def name_rgb(self, rgb) -> list[dict]:
        """Like name_lab, for sRGB colours as 0..255 numbers (N, 3)."""
        return self.name_lab(_lab(np.atleast_2d(rgb)))


@functools.cache
def load_namer(table: str = TABLE) -> ColorNamer:
    """The colour namer for ``table``, fitted on first use and kept for the process."""
    return ColorNamer.fit(table)


def name_colors(colours, table: str = TABLE) -> list[dict]:
    """Names of colours: one '#rrggbb' string, or a list of such strings or of
    0..255 RGB triples. One dict per colour, as in the palette records."""
    colours = [colours] if isinstance(colours, str) else list(colours)
    rgb = np.array([_hex_rgb([c])[0] if isinstance(c, str) else c for c in colours], dtype=float)
    return load_namer(table).name_rgb(rgb)


# ------------------------------------------------------------------- files ---

def colors_of_files(paths, k: int = K, *, progress: bool = True, **options):
    """Yield (path, Palette) for every image in ``paths``, or (path, the error)
    for a file that cannot be used; such files are also reported on stderr."""
    found, _ = images.find_images(paths)
    for path in tqdm(found, desc="colours", unit="img", disable=not progress, file=sys.stderr):
        try:
            yield path, dominant_colors(path, k, **options)
        except ValueError as exc:   # images.ImageError, or nothing left to analyse
            tqdm.write(f"skipped {exc}", file=sys.stderr)   # the message names the file
            yield path, exc


SHOWN = 20                                   # up to this many images, the palettes are shown on screen
BATCH_OUT = Path("runs/colors/colors.csv")   # where more go without --out
NAME_FIELDS = ["share", "name", "name_hex", "basic_name", "delta_e"]
CSV_FIELDS = ["path", "rank", "hex", "r", "g", "b", *NAME_FIELDS, "ignored_frame", "ignored_transparent"]


def write_results(results, out) -> tuple[int, int]:
    """Write (path, Palette) pairs to CSV, one row per colour, or for a .json
    name to JSON, one object per image; pairs holding an error are skipped.
    Returns (images written, images skipped). With no image to write, nothing
    is written: an empty result never replaces an existing file."""
    results = list(results)
    good = [(path, p) for path, p in results if isinstance(p, Palette)]
    counts = len(good), len(results) - len(good)
    if not good:
        return counts
    if Path(out).suffix.lower() == ".json":
        files.write_json(out, [{"path": str(path), "ignored_frame": p.ignored_frame,
                                "ignored_transparent": p.ignored_transparent, "colors": list(p)}
                               for path, p in good])
    else:
        files.write_rows(out, ({"path": str(path), "rank": rank, "hex": c["hex"], **dict(zip("rgb", c["rgb"])),
                                **{key: c[key] for key in NAME_FIELDS},
                                "ignored_frame": palette.ignored_frame,
                                "ignored_transparent": palette.ignored_transparent}
                               for path, palette in good for rank, c in enumerate(palette, 1)), CSV_FIELDS)
    return counts


def _looks_like_our_json(path: Path) -> bool:
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    return isinstance(data, list) and all(isinstance(d, dict) and {"path", "colors"} <= d.keys() for d in data)


def _looks_ours(path: Path) -> bool:
    if path.suffix.lower() == ".json":
        return _looks_like_our_json(path)
    return files.csv_header_is(CSV_FIELDS)(path)


# --------------------------------------------------------------------- CLI ---

def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Dominant colours of images, named.", add_help=add_help)
    parser.add_argument("paths", nargs="+", metavar="PATH", help="image files or folders (searched recursively)")
    parser.add_argument("--k", type=int, default=K, help=f"colours per image, 1 to {MAX_K} (default {K})")
    parser.add_argument("--out", default=None,
                        help=f"output file, .csv or .json (default: none for up to {SHOWN} images, whose palettes "
                             f"are on screen; {BATCH_OUT} for more)")
    parser.add_argument("--json", action="store_true", help="print JSON lines, one object per image, for scripts")
    parser.add_argument("--table", choices=["css4", "xkcd"], default=TABLE, help=f"colour names (default {TABLE})")
    parser.add_argument("--seed", type=int, default=SEED, help=f"pixel sample and k-means seed (default {SEED})")
    parser.add_argument("--ignore-frame", action="store_true",
                        help="leave out near-black pixels connected to the border (default: keep them)")
    parser.add_argument("--max-pixels", type=int, default=images.MAX_PIXELS,
                        help=f"skip images with more pixels than this (default {images.MAX_PIXELS:,})")
    parser.add_argument("--force", action="store_true",
                        help="replace an existing --out that was not written by biomeseason (default: refuse)")
    return parser


def format_palette(palette: Palette) -> str:
    """A palette as a table for people: share, hex, name, basic name, one line a colour."""
    return "\n".join(f"  {c['share']:5.1f}%  {c['hex']}  {c['name']:<22} {c['basic_name']:<8} "
                     f"(delta E {c['delta_e']:.1f})" for c in palette)


def check_args(args) -> list[Path]:
    """Refuse bad settings before any work (files.UsageError, one sentence); returns the images."""
    if not 1 <= args.k <= MAX_K:
        raise files.UsageError(f"--k {args.k}: the number of colours must be between 1 and {MAX_K}")
    if args.max_pixels < 1:
        raise files.UsageError(f"--max-pixels {args.max_pixels}: must be a positive number of pixels")
    images.check_paths_exist(args.paths)
    found, _ = images.find_images(args.paths)
    if args.out is None and len(found) > SHOWN:
        args.out = str(BATCH_OUT)   # many images: a file of ours, never one in the current folder
    if args.out is not None:
        files.check_output_file(args.out, inputs=[*args.paths, *found], force=args.force,
                                looks_ours=_looks_ours, suffixes=[".csv", ".json"])
    return found


def main(args) -> int:
    """Exit status 0 if at least one image was written, 1 if none could be, 2 for a bad setting."""
    try:
        check_args(args)
    except files.UsageError as e:   # the command line also catches it; a direct call gets the same
        print(f"error: {e}", file=sys.stderr)
        return 2
    options = dict(seed=args.seed, ignore_frame=args.ignore_frame, table=args.table, max_pixels=args.max_pixels)
    load_namer(args.table)          # fit once, before the progress bar starts
    if args.out is None:            # a few images: the palettes on screen, nothing written
        with files.terminate_as_interrupt():
            results = [(path, p) for path, p in colors_of_files(args.paths, args.k, **options)
                       if isinstance(p, Palette)]
        for path, palette in results:
            print(json.dumps({"path": str(path), "colors": list(palette)}) if args.json
                  else f"{path}\n{format_palette(palette)}\n")
        if not results:
            print("error: no image could be analysed", file=sys.stderr)
        return 0 if results else 1
    if args.out == str(BATCH_OUT):
        files.claim_dir(BATCH_OUT.parent)
    with files.terminate_as_interrupt():
        written, skipped = write_results(colors_of_files(args.paths, args.k, **options), args.out)
    if not written:
        kept = f"; {args.out} was left as it was" if Path(args.out).exists() else ""
        print(f"error: no image could be analysed ({skipped} skipped){kept}", file=sys.stderr)
        return 1
    print(f"{written} images -> {args.out}" + (f"; {skipped} skipped" if skipped else ""), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args()))
