"""Duplicates: byte-identical files are merged; near duplicates are grouped, never rejected.

    pairs = near_duplicate_pairs(phash, thumbs)          # (i, j, distance), i < j
    groups = connected_groups(n, pairs, links)           # one label per image

Near-identical means both tests pass (measured on our synthetic scenes): a
copy re-encoded at quality 50, halved or doubled sits at a pHash distance of
0-2 and a thumbnail difference below 1 level (a 5% brightness edit: up to 10);
distinct scenes are far apart (2,016 scenes in three sets: pairs of one biome
and month 16 or more bits apart, any pair 12 or more). The colour test keeps
apart views of one place in different months, whose structure can match but
whose colours (snow, green-up, autumn) do not; and where they are alike they
only share a split, which is what a place seen twelve times needs anyway.

Search grows slower than quadratic: multi-index hashing. The 64 hash bits
are cut into ``BANDS`` bands; two hashes within ``max_distance`` bits agree
within ``max_distance // BANDS`` bits on at least one band (pigeonhole), so
each image probes, per band, the few band values that close to its own in a
direct-address table, and only those candidates are compared in full. The
result is exactly the all-pairs one (``near_duplicate_pairs_all``, kept as
the reference for the tests).
"""
from __future__ import annotations

import itertools

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

PHASH_MAX_DISTANCE = 8      # of 64 bits
THUMB_MAX_DIFF = 10.0       # mean absolute difference of the RGB thumbnails, 0..255
BANDS = 3                   # 22 + 21 + 21 bits: probes within 2 bits, tables of 4M entries
_CHUNK = 4096               # images probed at once, and
_CANDIDATES = 1 << 22       # candidate pairs compared at once: both bound the arrays in memory
_PAIRS = 1 << 14            # pairs whose thumbnails are compared at once (about 25 MB per array)


def near_duplicate_pairs(phash: np.ndarray, thumbs: np.ndarray,
                         max_distance: int = PHASH_MAX_DISTANCE,
                         max_diff: float = THUMB_MAX_DIFF) -> list[tuple[int, int, int]]:
    """(i, j, hash distance) with i < j for every near-identical pair, sorted.

    phash: (N,) uint64; thumbs: (N, T, T, 3) uint8, may be a memory map (only
    the rows of candidate pairs are read).
    """
    return [tuple(row) for row in near_duplicate_array(phash, thumbs, max_distance, max_diff).tolist()]


def near_duplicate_array(phash: np.ndarray, thumbs, max_distance: int = PHASH_MAX_DISTANCE,
                         max_diff: float = THUMB_MAX_DIFF) -> np.ndarray:
    """The same pairs as an (M, 3) int64 array: no Python object per pair, for millions of them."""
    phash = np.ascontiguousarray(phash, dtype=np.uint64)
    n = len(phash)
    if n < 2:
        return np.zeros((0, 3), np.int64)
    widths = _band_widths(64, BANDS)
    radius = max_distance // BANDS
    found = []
    shift = 64
    for width in widths:
        shift -= width
        keys = ((phash >> np.uint64(shift)) & np.uint64((1 << width) - 1)).astype(np.int64)
        order = np.argsort(keys, kind="stable").astype(np.int32)
        starts = np.searchsorted(keys[order], np.arange((1 << width) + 1)).astype(np.int32)  # CSR by band value
        masks = np.array([sum(1 << b for b in bits) for r in range(radius + 1)
                          for bits in itertools.combinations(range(width), r)], dtype=np.int64)
        for lo in range(0, n, _CHUNK):
            rows = np.arange(lo, min(n, lo + _CHUNK))
            probes = (keys[rows, None] ^ masks[None, :]).ravel()                 # (B * P,)
            owner = np.repeat(rows.astype(np.int32), len(masks))
            count = starts[probes + 1] - starts[probes]
            hit = count > 0
            probes, owner, count = probes[hit], owner[hit], count[hit]
            if not len(probes):
                continue
            # Expand each probe to its bucket's members, a bounded number of candidates at a time
            # (a crowded band value must not blow up memory).
            cum = np.cumsum(count, dtype=np.int64)
            edges = np.searchsorted(cum, np.arange(_CANDIDATES, int(cum[-1]), _CANDIDATES), side="right")
            for lo_p, hi_p in zip([0, *edges], [*edges, len(count)]):
                if hi_p <= lo_p:
                    continue
                a, b = _expand(probes[lo_p:hi_p], owner[lo_p:hi_p], count[lo_p:hi_p], starts, order)
                close = np.bitwise_count(phash[a] ^ phash[b]) <= max_distance
                found.append(a[close].astype(np.int64) * n + b[close])
        # A pair close in several bands is found in each: keep one of each after every band,
        # so memory holds the distinct pairs, not one copy per band.
        found = [np.unique(np.concatenate(found))] if found else []
    if not found:
        return np.zeros((0, 3), np.int64)
    codes = found[0]
    return _thumb_test(np.stack([codes // n, codes % n], axis=1), phash, thumbs, max_diff)


def _expand(probes, owner, count, starts, order):
    """(owner, member) for every member of each probed bucket, owner < member."""
    total = int(count.sum())
    offsets = np.repeat(starts[probes] - np.cumsum(count, dtype=np.int64) + count, count) + np.arange(total)
    a = np.repeat(owner, count)
    b = order[offsets]
    keep = b > a
    return a[keep], b[keep]


def near_duplicate_pairs_all(phash: np.ndarray, thumbs: np.ndarray,
                             max_distance: int = PHASH_MAX_DISTANCE,
                             max_diff: float = THUMB_MAX_DIFF) -> list[tuple[int, int, int]]:
    """The same pairs by comparing every pair (quadratic): the reference for the fast search."""
    phash = np.asarray(phash, dtype=np.uint64)
    n, found, block = len(phash), [], 512
    for start in range(0, n, block):
        dist = np.bitwise_count(phash[start:start + block, None] ^ phash[None, :])   # (B, N)
        i, j = np.nonzero(dist <= max_distance)
        i = i + start
        keep = j > i
        found.append(np.stack([i[keep], j[keep]], axis=1))
    pairs = np.concatenate(found) if found else np.zeros((0, 2), np.int64)
    return [tuple(row) for row in _thumb_test(pairs, phash, thumbs, max_diff).tolist()]


def _thumb_test(pairs: np.ndarray, phash, thumbs, max_diff: float) -> np.ndarray:
    """(i, j, distance) rows, sorted, of the pairs whose thumbnails also agree; read a block at a time."""
    out = [np.zeros((0, 3), np.int64)]
    for lo in range(0, len(pairs), _PAIRS):
        a, b = pairs[lo:lo + _PAIRS, 0], pairs[lo:lo + _PAIRS, 1]
        ta = np.asarray(thumbs[a], np.int16).reshape(len(a), -1)
        tb = np.asarray(thumbs[b], np.int16).reshape(len(b), -1)
        diff = ta - tb
        np.abs(diff, out=diff)
        # An integer sum, not .mean(): the mean would first make a float64 copy of the block.
        keep = diff.sum(axis=1, dtype=np.int64) <= max_diff * diff.shape[1]
        distance = np.bitwise_count(phash[a[keep]] ^ phash[b[keep]]).astype(np.int64)
        out.append(np.stack([a[keep], b[keep], distance], axis=1).astype(np.int64))
        if hasattr(thumbs, "release"):   # a memory map: its pages read so far may leave memory
            thumbs.release()
    found = np.concatenate(out)
    return found[np.lexsort((found[:, 1], found[:, 0]))]


def _band_widths(bits: int, bands: int) -> list[int]:
    base, extra = divmod(bits, bands)
    return [base + (1 if k < extra else 0) for k in range(bands)]


def connected_groups(n: int, *links) -> np.ndarray:
    """Component label (the smallest member index) per item, joining every (i, j, ...) link given.

    Each of ``links`` is a list of tuples or an (M, >=2) integer array.
    """
    edges = [np.asarray(pairs, dtype=np.int64).reshape(len(pairs), -1)[:, :2] for pairs in links if len(pairs)]
    both = np.concatenate(edges) if edges else np.zeros((0, 2), np.int64)
    graph = coo_matrix((np.ones(len(both), np.int8), (both[:, 0], both[:, 1])), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    smallest = np.full(labels.max() + 1 if n else 0, n, dtype=np.int64)
    np.minimum.at(smallest, labels, np.arange(n))
    return smallest[labels]


def same_value_pairs(values) -> list[tuple[int, int]]:
    """(first index, index) for every later item equal to an earlier one: identical files, shared groups."""
    first, pairs = {}, []
    for i, value in enumerate(values):
        if value:
            j = first.setdefault(value, i)
            if j != i:
                pairs.append((j, i))
    return pairs
