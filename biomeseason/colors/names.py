"""Colour names: the nearest name of a table, and the basic colour term, in CIELAB.

    from biomeseason.colors import names
    names.name_colors("#79674e")   # [{'name': 'dimgray', 'name_hex': '#696969',
                                   #   'basic_name': 'brown', 'delta_e': 12.53}]

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
"""
from __future__ import annotations

import functools
import warnings

import matplotlib.colors as mcolors
import numpy as np
from skimage.color import deltaE_ciede2000, rgb2lab, rgb2xyz, xyz2lab
from sklearn.neighbors import KNeighborsClassifier

TABLE = "css4"           # colour-name table: "css4" or "xkcd"

# Basic colour terms: Berlin & Kay's eleven plus teal, as in Azure's colour analysis.
BASIC_NAMES = ("black", "white", "gray", "red", "orange", "yellow",
               "green", "blue", "purple", "pink", "brown", "teal")
ACHROMATIC_CHROMA = 10.0  # C*ab below this reads as black, gray or white
BLACK_MAX_L = 25.0        # achromatic and L* below this: black
WHITE_MIN_L = 85.0        # achromatic and L* above this: white (snow and cloud in photos: L* 85-95)


def lab_of(rgb) -> np.ndarray:
    """CIELAB of sRGB colours given as 0..255 numbers, shape (..., 3): scikit-image's ``rgb2lab``.

    For uint8 colours (an image's distinct colours) the linear value of each channel is looked
    up in a table of the 256 that ``rgb2lab`` computes, instead of a power of every channel:
    the same numbers, bit for bit (every one of the 16.7 million colours), in 0.5 ms instead of
    0.8 for a photo's 17,000 colours."""
    rgb = np.asarray(rgb)
    if rgb.dtype == np.uint8:
        linear, to_xyz = _srgb_linear()
        return xyz2lab(linear[rgb] @ to_xyz)
    return rgb2lab(rgb.astype(float) / 255.0)


@functools.cache
def _srgb_linear() -> tuple[np.ndarray, np.ndarray]:
    """(the linear value of each 0..255 level (256,), sRGB linear to XYZ (3, 3)) as ``rgb2xyz``
    computes them: its gamma expansion, and its matrix, which it gives for the primaries."""
    level = np.arange(256) / 255.0
    steep = level > 0.04045
    level[steep] = np.power((level[steep] + 0.055) / 1.055, 2.4)
    level[~steep] /= 12.92
    return level, rgb2xyz(np.eye(3))


def chroma_of(lab: np.ndarray) -> np.ndarray:
    """C*ab of CIELAB colours (..., 3): how far from neutral gray."""
    return np.hypot(lab[..., 1], lab[..., 2])


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
    lab = np.vstack([lab_of(_hex_rgb([h for _, h in named])), neutral])
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
    return [str(term) for term in np.where(chroma_of(lab) < ACHROMATIC_CHROMA, _achromatic(lab[:, 0]), chromatic)]


class ColorNamer:
    """Names colours by their nearest table colour in CIELAB."""

    def __init__(self, table: str, names: list[str], hexes: list[str], knn: KNeighborsClassifier):
        # one sample per name: a 1-NN classifier names every table colour by its own name
        self.table, self.names, self.hexes, self.knn = table, names, hexes, knn
        self.lab = lab_of(_hex_rgb(hexes))

    @classmethod
    def fit(cls, table: str = TABLE) -> ColorNamer:
        colours = color_table(table)
        names, hexes = list(colours), list(colours.values())
        with warnings.catch_warnings():
            # one sample per class is the point here, not a regression in disguise
            warnings.filterwarnings("ignore", "The number of unique classes", UserWarning)
            # brute force: ~1k points need no tree, and a tree is one more type to trust
            knn = KNeighborsClassifier(n_neighbors=1, algorithm="brute").fit(lab_of(_hex_rgb(hexes)), names)
        return cls(table, names, hexes, knn)

    def nearest(self, lab) -> np.ndarray:
        """Index into ``names`` of the nearest table colour of each CIELAB colour (N, 3)."""
        # the classifier's own neighbour (its one sample per name, fitted in ``names`` order), without
        # the vote over neighbours that ``predict`` adds, a third of its time
        return self.knn.kneighbors(np.atleast_2d(lab), return_distance=False)[:, 0]

    def name_lab(self, lab) -> list[dict]:
        """For each CIELAB colour (N, 3): name, name_hex, basic_name, delta_e."""
        lab = np.atleast_2d(np.asarray(lab, dtype=float))
        index = self.nearest(lab)
        delta_e = deltaE_ciede2000(lab, self.lab[index])
        return [{"name": self.names[i], "name_hex": self.hexes[i], "basic_name": basic,
                 "delta_e": round(float(d), 2)} for i, basic, d in zip(index, basic_names(lab), delta_e)]

    def name_rgb(self, rgb) -> list[dict]:
        """Like name_lab, for sRGB colours as 0..255 numbers (N, 3)."""
        return self.name_lab(lab_of(np.atleast_2d(rgb)))


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
