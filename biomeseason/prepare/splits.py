"""Train/val/test splits: by group, stratified, deterministic for a seed.

    table["split"] = assign_splits(table, val_frac=0.15, test_frac=0.15, seed=0)

``table`` needs ``biome``, ``month``, ``sha256`` and optionally ``group`` (rows
sharing one always share a split; missing: each row its own group) and
``given_split`` (from a split folder or the labels CSV; '' where none).

* A group with a given split goes, whole, to the most held-out one among its
  members (test, then val, then train): a test set stays as given and a copy
  leaked into training leaves it.
* Other groups are stratified by biome (the group's most common one) and,
  inside a biome, spread evenly over the months: groups are ordered by their
  first month and a hash of the seed and their content, then dealt to the
  splits in proportion, counting images (a largest-remainder sequence).
  Renaming files does not move them; the same seed gives the same splits.
* When the given splits hold train and test but no val, val is carved out of
  the given train groups the same way (``val_frac`` of them, by images).
"""
from __future__ import annotations

import hashlib

import pandas as pd

SPLITS = ("train", "val", "test")
_HELD_OUT = {"test": 0, "val": 1, "train": 2}


def assign_splits(table: pd.DataFrame, val_frac: float, test_frac: float, seed: int) -> pd.Series:
    """train/val/test per row of ``table`` (same index)."""
    if not len(table):
        return pd.Series([], index=table.index, dtype=object)
    group = table["group"] if "group" in table else pd.Series(range(len(table)), index=table.index)
    given = table["given_split"] if "given_split" in table else pd.Series("", index=table.index)
    groups = pd.DataFrame({
        "group": group.astype(str).to_numpy(dtype=object),
        "rank": given.map(lambda s: _HELD_OUT.get(s, 9)).to_numpy(),
        "biome": table["biome"].fillna("").astype(str).to_numpy(dtype=object),
        "month": pd.to_numeric(table["month"]).fillna(99).astype(int).to_numpy(),
        "sha256": table["sha256"].astype(str).to_numpy(dtype=object),
    }, index=table.index)
    # Text columns as plain objects, reduced by sorting: pandas' string min runs per group in Python.
    per_group = groups.groupby("group", sort=True).agg(rank=("rank", "min"), month=("month", "min"),
                                                       size=("rank", "size"))
    per_group["sha256"] = groups.sort_values("sha256").drop_duplicates("group").set_index("group")["sha256"]
    per_group["biome"] = _most_common_biome(groups)
    per_group["split"] = per_group["rank"].map({v: k for k, v in _HELD_OUT.items()}).fillna("")
    per_group["key"] = [hashlib.sha256(f"{seed}:{digest}".encode()).hexdigest()
                        for digest in per_group["sha256"]]
    free = per_group["split"] == ""
    fractions = {"train": 1.0 - val_frac - test_frac, "val": val_frac, "test": test_frac}
    per_group.loc[free, "split"] = _deal_stratified(per_group[free], fractions)
    given_splits = set(per_group.loc[~free, "split"])
    if {"train", "test"} <= given_splits and "val" not in given_splits and val_frac > 0:
        train = ~free & (per_group["split"] == "train")
        per_group.loc[train, "split"] = _deal_stratified(per_group[train],
                                                         {"train": 1.0 - val_frac, "val": val_frac})
    return pd.Series(per_group.loc[groups["group"], "split"].to_numpy(), index=table.index)


def _most_common_biome(groups: pd.DataFrame) -> pd.Series:
    """The most common biome of each group (ties: the first by name), without a Python call per group."""
    counts = groups.groupby(["group", "biome"]).size().rename("n").reset_index()
    counts = counts.sort_values(["group", "n", "biome"], ascending=[True, False, True], kind="stable")
    return counts.drop_duplicates("group").set_index("group")["biome"]


def _deal_stratified(groups: pd.DataFrame, fractions: dict[str, float]) -> pd.Series:
    out = pd.Series("", index=groups.index, dtype=object)
    for _, rows in groups.groupby("biome", sort=True):
        order = rows.sort_values(["month", "key"])
        out[order.index] = deal(len(order), fractions, order["size"].tolist())
    return out


def deal(n: int, fractions: dict[str, float], sizes: list[int] | None = None) -> list[str]:
    """n labels spread evenly in the given proportions: each step goes to the most owed.

    With ``sizes`` each step hands out that many images at once (a group).
    """
    owed = dict.fromkeys(fractions, 0.0)
    out = []
    for k in range(n):
        size = sizes[k] if sizes else 1
        for name in owed:
            owed[name] += fractions[name] * size
        pick = max(owed, key=owed.get)  # ties go to the first listed
        owed[pick] -= size
        out.append(pick)
    return out
