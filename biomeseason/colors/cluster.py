"""Colour clusters: the distinct colours of an image, clustered in CIELAB into a Palette.

- Pixels: the image is read by ``biomeseason.io.images`` (EXIF orientation, ICC
  profile, 16-bit and float, a pixel limit); a JPEG is decoded at the smallest
  DCT scale whose short side still covers ``MIN_SIDE`` (1/8 for a 12-megapixel
  photo: 500 x 375), and any image is then box-reduced by an integer factor to at
  most ``MAX_SIDE`` pixels a side. Every pixel that is left counts, as the
  distinct colours and how many pixels have each: there is no sample, so
  nothing depends on which pixels a sample drew. (Reducing the 1/8 decode
  further, to 256 a side, averaged away texture the full photo has: k-means on
  its distinct colours then lay 1.0 dE2000 from k-means on all the full
  photo's pixels instead of 0.44, on bench/colors.py's photos.) Transparent
  pixels are never counted; optionally, near-black pixels connected to the
  image border (space around the Earth's limb, scanner or letterbox frames)
  are left out and counted. White is a real colour (snow, cloud) and always
  stays.
- Clusters: k-means in CIELAB, so that distances are perceptual; a shade
  shared by many pixels becomes one colour. Each distinct colour weighs as
  many pixels as have it, which is k-means on all the pixels. An image with
  fewer distinct colours than ``k`` gives exactly those colours.
- Speed: a photo has up to 50,000 distinct colours, too many to restart
  k-means on ``N_INIT`` times (it needs restarts to find its best optimum), so
  the restarts run on fewer points (``_pool``): a colour holding at least
  ``HEAVY_SHARE`` of the pixels is a point of its own; the lighter ones are
  pooled in cubes of CIELAB, small ones first (``POOL_CELLS``), a cube's point
  being the weighted mean of its colours and weighing all their pixels (the
  points keep the total weight and the mean of the pixels). Light colours move
  the centres little wherever they are pooled; heavy ones keep their place, so
  two near shades that hold much of a photo can still be two clusters, as on
  all the pixels (a Blue Marble view of the sea: 49 % and 48 % of the pixels
  in two shades 0.25 dE apart, in one cube of the finest size). Then one
  k-means iteration on the colours themselves settles the centres and gives
  every colour its cluster. On bench/colors.py's photos: about 600 points
  instead of 17,000 colours (medians), and palettes 0.56 dE from all-pixel
  k-means (mean over the photos and five seeds), where k-means on a random
  sample of 10,000 pixels of the image reduced to 256 a side lay 1.5.
  The restarts are scikit-learn's ``KMeans`` run for run, from the same random
  numbers, but side by side as arrays (``_kmeans``): on so few points its
  fixed costs per call and per restart were the largest part of a photo's
  time after the decode (7 of 18.5 ms), the restarts side by side take 2.6.
  With the distinct colours, CIELAB and the last iteration done with fewer
  and smaller arrays, a photo takes 11 ms after its decode (17.7 ms) instead
  of 18.5 (bench/colors.py's photos, each stage's best of seven runs), with
  the same palettes, names and shares.
- Each cluster is named by ``names``.
"""
from __future__ import annotations

import functools
import os

import numpy as np
from PIL import Image
from scipy import ndimage
from skimage.color import lab2rgb

from ..io import images
from ..io.workers import one_thread  # noqa: F401  (colors and analysis take it from here)
from .names import ColorNamer, lab_of

SEED = 0                  # k-means initialisation
MIN_SIDE = 256            # a JPEG is decoded at the smallest DCT scale whose short side covers this...
MAX_SIDE = 512            # ...then reduced to at most this a side: a 12-megapixel photo stays 500 x 375
N_INIT = 10               # k-means restarts on the pooled points; with 5, 6 of 105 palettes (21 photos x 5 seeds)
                          # ended over 1.5 dE from all-pixel k-means, the worst 3.4; with 10, none
TOL = 1e-3                # of the restarts (scikit-learn's default 1e-4 iterates longer): the last
                          # iteration, on all the colours, settles the centres anyway
MAX_ITER = 300            # Lloyd iterations of a restart at most (scikit-learn's default); they stop far sooner
HEAVY_SHARE = 1 / 2000    # a colour (or cube) holding this share of the pixels is a point of its own
POOL_CELLS = (2, 4, 8, 16)  # lighter ones are pooled in CIELAB cubes this wide (about dE), small first
MIN_ALPHA = 128           # pixels less opaque than this are transparent
FRAME_MAX_RGB = 32        # near-black: every channel <= this (about L* <= 12)

# ------------------------------------------------------------------ pixels ---

def _read(image, max_pixels: int = images.MAX_PIXELS) -> Image.Image:
    """RGB, or RGBA if the image has transparency, decoded small (see images.read_image)."""
    return images.read_image(image, min_size=MIN_SIDE, max_pixels=max_pixels, keep_alpha=True).image


def _rgba_small(im: Image.Image) -> tuple[np.ndarray, np.ndarray]:
    """(H, W, 3) uint8 colours and (H, W) bool opaque mask, at most MAX_SIDE a side."""
    has_alpha = im.mode == "RGBA"
    # Premultiplied alpha, so a transparent pixel adds no colour to the boxes
    # it is averaged into by reduce.
    im = im.convert("RGBA").convert("RGBa") if has_alpha else im if im.mode == "RGB" else im.convert("RGB")
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


def _codes(rgb: np.ndarray) -> np.ndarray:
    """(N,) int32 0xRRGGBB of (N, 3) uint8 colours."""
    codes = rgb[:, 0].astype(np.int32)          # in place from here: one array of N, not six
    codes <<= 8
    codes |= rgb[:, 1]
    codes <<= 8
    codes |= rgb[:, 2]
    return codes


class Pixels:
    """The pixels of one image that count (opaque, and not frame if asked): their distinct
    colours ``rgb``, ``lab`` and ``counts``; where each of them is (``index``, row by row in
    an image of ``shape``) and which colour it has (``colour_of``); and what was left out."""

    def __init__(self, image, ignore_frame: bool = False, max_pixels: int = images.MAX_PIXELS):
        rgb, keep = _rgba_small(_read(image, max_pixels))
        self.shape = keep.shape
        self.ignored_transparent = 100.0 * (keep.size - keep.sum()) / keep.size
        self.ignored_frame = 0.0
        if ignore_frame:
            frame = _frame_mask(rgb, keep)
            self.ignored_frame = 100.0 * frame.sum() / keep.size
            keep &= ~frame
        self._keep = keep.ravel()
        kept = np.count_nonzero(self._keep)
        if kept == 0:
            what = "opaque" if not ignore_frame else "opaque, non-frame"
            raise ValueError(f"{_describe(image)}: no {what} pixels to analyse")
        flat = rgb.reshape(-1, 3)
        self._codes = _codes(flat if kept == keep.size else flat[self._keep])   # (N,)
        distinct, self.counts = _distinct(self._codes)
        self.rgb = np.stack([distinct >> 16, (distinct >> 8) & 255, distinct & 255], 1).astype(np.uint8)  # (M, 3)
        self.lab = lab_of(self.rgb)                             # (M, 3)

    @functools.cached_property
    def index(self) -> np.ndarray:
        """(N,) where the kept pixels are, row by row."""
        return np.flatnonzero(self._keep)

    @functools.cached_property
    def colour_of(self) -> np.ndarray:
        """(N,) the index in ``rgb`` of each kept pixel's colour."""
        return np.unique(self._codes, return_inverse=True)[1]


def _distinct(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(the distinct codes, ascending; how many times each occurs): ``np.unique(codes, return_counts=True)``
    by hashing instead of sorting every pixel, in half the time (187,500 pixels, 17,000 colours)."""
    import pandas as pd

    # A table sized for 65,536 colours (it grows if need be), not for every pixel: a fresh 3 MB
    # table cost a thousand page faults a photo, a third of the hashing's time.
    index, distinct = pd.factorize(codes, sort=False, size_hint=1 << 16)   # (N,), (M,) in order of first sight
    # Sorted by their low 16 bits, then (stable) by their high 8: numpy sorts 16-bit and 8-bit keys
    # by radix, in a fifth of the time a quicksort of the 24-bit codes takes.
    low = np.argsort(distinct.astype(np.uint16), kind="stable")
    order = low[np.argsort((distinct[low] >> 16).astype(np.uint8), kind="stable")]
    return distinct[order], np.bincount(index, minlength=len(distinct))[order]


def _describe(image) -> str:
    return str(image) if isinstance(image, (str, os.PathLike)) else type(image).__name__


# ---------------------------------------------------------------- clusters ---

def _cube_means(lab: np.ndarray, weights: np.ndarray, cell: float) -> tuple[np.ndarray, np.ndarray]:
    """The weighted mean and the total weight of the points in each occupied CIELAB cube ``cell`` wide."""
    import pandas as pd

    cube = np.floor(lab / cell).astype(np.int64) + 512          # L*, a*, b* / cell lie within +-512
    # the rank of each cube among the occupied ones, as np.unique(..., return_inverse=True), by hashing
    cube = pd.factorize((cube[:, 0] << 20) | (cube[:, 1] << 10) | cube[:, 2], sort=True, size_hint=1 << 12)[0]
    total = np.bincount(cube, weights)
    means = np.stack([np.bincount(cube, weights * lab[:, i]) for i in range(3)], 1) / total[:, None]
    return means, total


def _pool(lab: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fewer weighted points for the k-means restarts (see the module's docstring): points
    holding at least HEAVY_SHARE of the pixels stay, the others are pooled in cubes of each
    size of POOL_CELLS in turn; what is left is pooled in the largest. Total weight and
    weighted mean are those of the colours."""
    heavy_min = HEAVY_SHARE * counts.sum()
    points, weights = lab, counts.astype(float)
    kept_points, kept_weights = [], []
    for cell in POOL_CELLS:
        heavy = weights >= heavy_min
        kept_points.append(points[heavy])
        kept_weights.append(weights[heavy])
        points, weights = _cube_means(points[~heavy], weights[~heavy], cell)
    return np.concatenate([*kept_points, points]), np.concatenate([*kept_weights, weights])


def _kmeans(points: np.ndarray, weights: np.ndarray, k: int, seed: int,
            n_init: int = N_INIT) -> tuple[np.ndarray, float]:
    """(centres (k, 3), their weighted inertia): the best of ``n_init`` weighted k-means runs on
    ``points`` (n, 3), n >= k: ``KMeans(n_clusters=k, n_init=n_init, tol=TOL, random_state=seed)``
    of scikit-learn, run for run, with the runs side by side as arrays (points, runs, k).

    Why not scikit-learn itself: on a photo's ~600 pooled points its fixed costs per call and per
    run (input checks, thread pools, ten k-means++ seedings made of small array calls) made it
    take 7 ms, where the arithmetic takes a fraction of that; side by side the runs take 2.6 ms.
    What is kept: its greedy k-means++ seeding from the same random numbers, drawn in its order;
    its Lloyd iterations, which stop when the centres move (squared, summed) no more than ``TOL``
    times the mean variance of the coordinates (unweighted, as its tolerance is), or after
    ``MAX_ITER``; an empty cluster takes the point farthest from its centre; and its choice of
    the run. So the centres are scikit-learn's (within 1e-13 on bench/colors.py's 21 photos and
    5 seeds; the palettes are identical). The random numbers matter: a photo's pooled points
    often have near-equal optima (inertia within 0.6 %) whose palettes lie up to 1.5 dE apart,
    and runs seeded from another generator moved palettes as far as another seed does.
    """
    trials = 2 + int(np.log(k))
    # (R, 1 + (k - 1) T): scikit-learn's draws, in its order: one for a run's first centre, T for each next
    draws = np.random.RandomState(seed).random_sample((n_init, 1 + (k - 1) * trials))
    mean = points.mean(0)
    x = points - mean                  # as scikit-learn: |x|^2 - 2 x.c + |c|^2 loses less near 0
    xx = (x ** 2).sum(1)                                                # (n,)
    n, runs = len(x), np.arange(n_init)

    x_t = -2 * x.T

    def to_points(ids):                # (..., n) squared distances of the points ``ids`` (...) to all
        d = (x[ids.ravel()] @ x_t).reshape(*ids.shape, n)              # in scikit-learn's order
        d += xx[ids][..., None]
        d += xx
        return np.maximum(d, 0, out=d)

    # k-means++: the first centre drawn by weight; each next one, of T points drawn by weight times
    # squared distance to the nearest centre so far, the one that leaves the least inertia.
    chosen = np.empty((n_init, k), int)
    chosen[:, 0] = np.searchsorted(np.cumsum(weights), draws[:, 0] * weights.sum(), side="right")
    closest = to_points(chosen[:, 0])                                   # (R, n)
    for c in range(1, k):
        cumulative = np.cumsum(weights * closest, axis=1)               # (R, n)
        drawn = draws[:, 1 + (c - 1) * trials:1 + c * trials] * cumulative[:, -1:]          # (R, T)
        candidates = np.minimum((cumulative[:, None, :] < drawn[..., None]).sum(2), n - 1)  # searchsorted
        near = np.minimum(closest[:, None, :], to_points(candidates))   # (R, T, n)
        best = (near @ weights).argmin(1)                               # (R,)
        chosen[:, c] = candidates[runs, best]
        closest = near[runs, best]
    centres = x[chosen].reshape(-1, 3)                                  # (R k, 3), run by run

    # Lloyd, the runs that have not converged side by side. Unchanged labels give the same centres
    # again, a shift of 0, so the tolerance alone tells when a run has converged.
    tol = TOL * x.var(0).mean()
    weighted = np.stack([weights, *(weights * x.T)])                    # (4, n): weight, weighted x
    repeated = {}                                                       # r: weighted, each point r times
    centres = centres.reshape(n_init, k, 3)
    active = runs
    for _ in range(MAX_ITER):
        r, before = len(active), centres[active].reshape(-1, 3)        # (r k, 3)
        # the squared distance less |x|^2 (the same for every centre), as scikit-learn labels
        scores = x @ (-2 * before.T)
        scores += (before ** 2).sum(1)                                  # (n, r k)
        labels = (scores.reshape(n, r, k).argmin(2) + np.arange(0, r * k, k)).ravel()   # rows of before
        if r not in repeated:
            repeated[r] = np.repeat(weighted, r, axis=1)                # (4, n r), as labels
        mass, *sums = (np.bincount(labels, row, r * k) for row in repeated[r])
        moved = np.stack(sums, 1)                                       # (r k, 3)
        filled = mass > 0
        moved[filled] /= mass[filled, None]
        for j in np.flatnonzero(~filled):
            # scikit-learn's remedy: an empty cluster takes the point farthest from its centre
            run = scores[:, j - j % k:j - j % k + k]
            far = (run.min(1) + xx).argmax()
            moved[j] = x[far]
            run[far] = -xx[far]                                         # not taken twice
        shift = ((moved - before) ** 2).reshape(r, -1).sum(1)
        centres[active] = moved.reshape(r, k, 3)
        active = active[shift > tol]
        if not len(active):
            break
    centres = centres.reshape(-1, 3)
    scores = (x @ (-2 * centres.T) + (centres ** 2).sum(1)).reshape(n, n_init, k)
    labels = scores.argmin(2)                                           # (n, R)
    inertia = weights @ np.maximum(scores.min(2) + xx[:, None], 0)      # (R,)
    # The first run, or a later one with less inertia and other clusters, as scikit-learn picks
    # (runs that end in the same clusters differ in inertia by the tolerance or rounding alone).
    best = 0
    for run in range(1, n_init):
        if inertia[run] < inertia[best] and not _same_clusters(labels[:, run], labels[:, best], k):
            best = run
    return centres[best * k:(best + 1) * k] + mean, float(inertia[best])


def _same_clusters(a: np.ndarray, b: np.ndarray, k: int) -> bool:
    """Whether the labels ``b`` put together every two points that ``a`` does (a label of a, one of b)."""
    pairs = np.unique(a * k + b)
    return len(pairs) == len(np.unique(pairs // k))


def _nearest(lab_t: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """(M,) the index of the centre nearest to each colour of ``lab_t`` (3, M), the first on a tie."""
    scores = (-2 * centres) @ lab_t
    scores += (centres ** 2).sum(1)[:, None]                    # (k, M): squared distance less |lab|^2
    # centre by centre: argmin along an axis of k is slower, one small row at a time
    nearest, best = np.zeros(lab_t.shape[1], np.intp), scores[0]
    for j in range(1, len(centres)):
        nearer = scores[j] < best
        nearest[nearer] = j
        best = np.minimum(best, scores[j])
    return nearest


def _cluster(lab: np.ndarray, counts: np.ndarray, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(centres (m, 3) in Lab, the cluster of each colour (M,)) with m <= k, of the distinct
    colours ``lab`` (M, 3) weighted by their pixel ``counts`` (M,)."""
    if len(lab) <= k:
        # k-means would split one colour in several identical clusters.
        return lab, np.arange(len(lab))
    points, weights = _pool(lab, counts)
    if len(points) < k:     # all in fewer cubes than clusters: the restarts take the colours themselves
        points, weights = lab, counts
    centres = _kmeans(points, weights.astype(float), k, seed)[0]
    # One k-means iteration on the colours themselves (the same as scikit-learn's with
    # max_iter=1, without its checks, which cost twice the iteration): the centres become
    # the weighted means of the colours nearest to them, then each colour goes to its nearest.
    lab_t = np.ascontiguousarray(lab.T)
    labels = _nearest(lab_t, centres)
    total = np.bincount(labels, counts, minlength=k)
    sums = np.stack([np.bincount(labels, counts * lab[:, i], minlength=k) for i in range(3)], 1)
    filled = total > 0
    centres[filled] = sums[filled] / total[filled, None]
    return centres, _nearest(lab_t, centres)


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
    return np.round(np.clip(lab2rgb(lab), 0, 1) * 255).astype(np.uint8)


class Palette(list):
    """Colour records, largest share first, plus what was left out.

    ``ignored_transparent`` and ``ignored_frame`` are percentages of the
    image's pixels (counted on the reduced image).
    """

    def __init__(self, records, ignored_transparent: float = 0.0, ignored_frame: float = 0.0):
        super().__init__(records)
        self.ignored_transparent = round(float(ignored_transparent), 2)
        self.ignored_frame = round(float(ignored_frame), 2)


def palette_of(pixels: Pixels, k: int, seed: int, namer: ColorNamer) -> tuple[Palette, np.ndarray]:
    """(Palette, the palette index of each of the pixels' distinct colours ``pixels.rgb``);
    ``result[1][pixels.colour_of]`` is that of each pixel."""
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    centres, labels = _cluster(pixels.lab, pixels.counts, k, seed)
    counts = np.bincount(labels, weights=pixels.counts, minlength=len(centres))
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
