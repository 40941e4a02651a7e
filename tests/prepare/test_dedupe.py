"""Near duplicates and splits: the fast search finds exactly the all-pairs pairs; groups never straddle."""
from __future__ import annotations

import hashlib
import io

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from test_preprocess import jpeg_bytes

from biomeseason.io.images import resize_short_side
from biomeseason.prepare.clean import fingerprint
from biomeseason.prepare.dedupe import (
    connected_groups,
    near_duplicate_pairs,
    near_duplicate_pairs_all,
    same_value_pairs,
)
from biomeseason.prepare.splits import assign_splits, deal

# ---- near duplicates -------------------------------------------------------------------

def _prints(images):
    prints = [fingerprint(im) for im in images]
    hashes = np.array([h for h, _ in prints], dtype=np.uint64)
    thumbs = np.stack([np.frombuffer(t, np.uint8).reshape(16, 16, 3) for _, t in prints])
    return hashes, thumbs


def test_synthetic_scenes_are_not_near_duplicates_but_their_copies_are():
    synthetic = pytest.importorskip("biomeseason.synthetic.generate")
    scenes = []
    for b, biome in enumerate(synthetic.FILE_PREFIX):
        for month in range(1, 13):
            for seed in range(2):
                # Seeded per scene as write_scenes does: one seed shared by two biomes
                # gives both the same terrain and cloud layout.
                ss = np.random.SeedSequence([b, month, seed])
                scenes.append(Image.fromarray(synthetic.render_scene(biome, month, ss, 64)))
    copies = [Image.open(io.BytesIO(jpeg_bytes(im.resize((48, 48)), quality=50))).convert("RGB")
              for im in scenes[:12]]
    hashes, thumbs = _prints([resize_short_side(im, 64) for im in scenes + copies])
    n = len(scenes)
    fast = near_duplicate_pairs(hashes, thumbs)
    assert {(i, j) for i, j, _ in fast} == {(i, n + i) for i in range(12)}
    assert fast == near_duplicate_pairs_all(hashes, thumbs)


def _planted(n: int, seed: int):
    """Random hashes and thumbnails with copies planted at every bit distance 0..12 (some colour-edited)."""
    rng = np.random.default_rng(seed)
    hashes = rng.integers(0, 2**63, n, dtype=np.int64).astype(np.uint64) * np.uint64(2) + \
        rng.integers(0, 2, n).astype(np.uint64)
    thumbs = rng.integers(0, 256, (n, 16, 16, 3), dtype=np.uint8)
    extra_h, extra_t = [], []
    for k in range(n // 2):
        source = int(rng.integers(n))
        bits = rng.choice(64, size=k % 13, replace=False)
        flip = np.uint64(sum(1 << int(b) for b in bits))
        extra_h.append(hashes[source] ^ flip)
        shift = 4 if k % 3 else 20          # a third of them differ in colour beyond the limit
        extra_t.append(np.clip(thumbs[source].astype(int) + shift, 0, 255).astype(np.uint8))
    return np.concatenate([hashes, extra_h]).astype(np.uint64), np.concatenate([thumbs, extra_t])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fast_search_finds_exactly_the_all_pairs_pairs(seed):
    hashes, thumbs = _planted(600, seed)
    reference = near_duplicate_pairs_all(hashes, thumbs)
    assert len(reference) > 100                       # the planted copies are there to be found
    assert near_duplicate_pairs(hashes, thumbs) == reference


@pytest.mark.parametrize("distance", [0, 1, 3, 5, 8])
def test_fast_search_at_every_distance_limit(distance):
    hashes, thumbs = _planted(300, 7)
    assert near_duplicate_pairs(hashes, thumbs, max_distance=distance) == \
        near_duplicate_pairs_all(hashes, thumbs, max_distance=distance)


def test_groups_are_connected_components():
    labels = connected_groups(6, [(0, 3)], [(3, 5), (1, 2)])
    assert list(labels) == [0, 1, 1, 0, 4, 0]
    assert same_value_pairs(["a", "b", "a", "", "", "b"]) == [(0, 2), (1, 5)]


# ---- splits ------------------------------------------------------------------------------

def split_table(n_per_month=10, extra=7):
    """Biome A: n_per_month images in each month; biome B: `extra` images without month."""
    rows = [("A", m, f"a{m}-{k}") for m in range(1, 13) for k in range(n_per_month)]
    rows += [("B", None, f"b{k}") for k in range(extra)]
    return pd.DataFrame({
        "biome": [b for b, _, _ in rows],
        "month": pd.array([m for _, m, _ in rows], dtype="Int64"),
        "sha256": [hashlib.sha256(s.encode()).hexdigest() for _, _, s in rows],
        "given_split": "",
    })


def test_splits_are_stratified_by_biome_and_month():
    table = split_table()
    table["split"] = assign_splits(table, 0.15, 0.15, seed=0)
    for biome, rows in table.groupby("biome"):
        counts = rows["split"].value_counts()
        for split, frac in [("val", 0.15), ("test", 0.15)]:
            assert abs(counts.get(split, 0) - frac * len(rows)) <= 1, (biome, split)
    a = table[table["biome"] == "A"]
    per_month = pd.crosstab(a["month"], a["split"])
    assert (per_month[["val", "test"]] >= 1).all().all()      # every month is in every split


def test_splits_are_deterministic_for_a_seed_and_differ_between_seeds():
    table = split_table()
    first = assign_splits(table, 0.15, 0.15, seed=0)
    assert first.equals(assign_splits(table.copy(), 0.15, 0.15, seed=0))
    assert not first.equals(assign_splits(table, 0.15, 0.15, seed=1))
    # Row order does not matter, and another biome's images do not move this one's.
    shuffled = table.sample(frac=1.0, random_state=3)
    assert assign_splits(shuffled, 0.15, 0.15, seed=0).sort_index().equals(first)
    more = pd.concat([table, split_table(n_per_month=0, extra=20).iloc[7:]], ignore_index=True)
    again = assign_splits(more, 0.15, 0.15, seed=0)
    in_a = table.index[table["biome"] == "A"]
    assert again.loc[in_a].equals(first.loc[in_a])


def test_groups_never_straddle_splits_and_shares_count_images():
    table = split_table(n_per_month=12, extra=0)
    table["group"] = [f"place{i // 12}" for i in range(len(table))]     # 12 places of 12 images
    table["split"] = assign_splits(table, 0.15, 0.15, seed=0)
    assert (table.groupby("group")["split"].nunique() == 1).all()
    counts = table["split"].value_counts()
    assert counts["val"] >= 12 and counts["test"] >= 12


def test_given_splits_pull_their_group_and_val_is_carved_from_train():
    table = split_table(n_per_month=4, extra=0)
    table["group"] = [f"g{i // 2}" for i in range(len(table))]
    table["given_split"] = ["test" if i % 2 == 0 and i < 8 else "train" for i in range(len(table))]
    table["split"] = assign_splits(table, 0.15, 0.15, seed=0)
    assert (table.groupby("group")["split"].nunique() == 1).all()
    assert set(table.loc[:7, "split"]) == {"test"}                     # one test member pulls its pair
    assert abs((table["split"] == "val").sum() - 0.15 * 40) <= 2       # carved from the 40 given train


def test_deal_spreads_evenly():
    dealt = deal(20, {"train": 0.7, "val": 0.15, "test": 0.15})
    assert [dealt.count(s) for s in ("train", "val", "test")] == [14, 3, 3]
    assert "test" in dealt[:10] and "test" in dealt[10:]


def test_fingerprint_hash_is_imagehash_phash():
    imagehash = pytest.importorskip("imagehash")
    for seed in range(50):
        im = Image.fromarray(np.random.default_rng(seed).integers(0, 256, (6, 8, 3), dtype=np.uint8)).resize((64, 48))
        bits = imagehash.phash(im).hash.flatten()
        assert fingerprint(im)[0] == int("".join("1" if b else "0" for b in bits), 2)
