"""The table of kept files, built in steps: each file's labels (``label_files``), identical and
near-duplicate files merged or grouped (``group_duplicates``), then months from EXIF, hemispheres,
groups, splits, seasons and notes (``finish_table``): the rows of manifest.csv.

``preprocess`` runs the steps, with the cleaning of every file between the first two.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..labels import LabelError, Vocabulary, season_of
from . import clean, manifest, scan
from . import store as stores
from .dedupe import connected_groups, near_duplicate_array, same_value_pairs
from .splits import assign_splits

# ---- labels --------------------------------------------------------------------------

LABEL_FIELDS = ("source", "given_split", "biome", "month", "month_source", "note", "group",
                "hemisphere", "extras")


def label_files(sources, vocab: Vocabulary, csv_table) -> tuple[dict[str, list], dict[str, str]]:
    """(columns of the labelled files, {source: reason}) from the CSV or the paths."""
    columns = {name: [] for name in LABEL_FIELDS}
    rejected = {}
    rows = csv_table.to_dict("index") if csv_table is not None else None
    extras = scan.csv_extras(csv_table) if csv_table is not None else []
    for source in sources:
        try:
            split, label, month_source = scan.labels_from_path(source, vocab) if rows is None else \
                (scan.given_split(source)[0], None, "")
            group = hemisphere = ""
            extra = None
            if rows is not None:
                row = rows.get(scan.nfc_key(source))
                if row is None:
                    raise LabelError("not listed in the labels CSV")
                label = scan.labels_from_csv(row, vocab)
                month_source = "csv" if label.month else ""
                split = scan.csv_split(row["split"]) or split
                group, hemisphere = row["group"], scan.csv_hemisphere(row)
                extra = tuple(row[c] for c in extras)
        except LabelError as e:
            rejected[source] = f"label: {e}"
            continue
        for name, value in zip(LABEL_FIELDS, (source, split, label.biome or "", label.month, month_source,
                                              label.note, group, hemisphere, extra)):
            columns[name].append(value)
    columns["extras"] = pd.DataFrame([e for e in columns["extras"]] if extras else None,
                                     columns=extras or None)
    return columns, rejected


# ---- duplicates --------------------------------------------------------------------------

def group_duplicates(table: pd.DataFrame, tmp: Path, drop_near: bool):
    """(table with a 'link' column, {source: reason}): merge identical files, join near duplicates.

    'link' is the smallest row index of the image's duplicate set (identical
    bytes with other labels, or near-identical), used for grouping.
    """
    dropped = {}
    thumbs_file = tmp / ".thumbs"
    n_rows = table["row"].max() + 1 if len(table) else 0
    thumbs = (np.memmap(thumbs_file, np.uint8, "r", shape=(n_rows, clean.THUMB_SIZE, clean.THUMB_SIZE, 3))
              if n_rows else np.zeros((0, clean.THUMB_SIZE, clean.THUMB_SIZE, 3), np.uint8))
    # Ranked on the few columns that decide, not on copies of the whole table (a million rows); ties in
    # source order by the stable sort (sorting on several keys with "source" among them would make pandas
    # turn the names into Arrow strings, which refuse a name that is not UTF-8).
    rank = table[["source", "given_split", "biome", "month", "pixels"]].sort_values(["source"]).assign(
        _split=lambda t: t["given_split"].map({"test": 0, "val": 1, "train": 2}).fillna(3),
        _known=lambda t: -((t["biome"] != "").astype(int) + t["month"].notna().astype(int)),
        _pixels=lambda t: -t["pixels"]).sort_values(["_split", "_known", "_pixels"], kind="stable")
    table = table.loc[rank.index].reset_index(drop=True)          # best keeper first within any set
    del rank
    identical = same_value_pairs(table["sha256"])
    pairs = near_duplicate_array(table["phash"].to_numpy(), _Rows(thumbs, table["row"].to_numpy()))
    del thumbs
    thumbs_file.unlink(missing_ok=True)
    links = connected_groups(len(table), identical, pairs)
    drop = set()
    if drop_near:
        for members in pd.Series(range(len(table))).groupby(links).groups.values():
            members = sorted(members)
            if len(members) < 2:
                continue
            rows = table.iloc[members]
            if rows["biome"].replace("", None).nunique() > 1 or rows["month"].nunique() > 1:
                said = ", ".join(f"{scan.display_name(r.source)} ({r.biome or '?'}, "
                                 f"{'?' if pd.isna(r.month) else int(r.month)})" for r in rows.itertuples())
                for i in members:
                    dropped[table.at[i, "source"]] = f"duplicates with conflicting labels: {said}"
                drop.update(members)
                continue
            keeper = members[0]
            for i in members[1:]:
                how = ("identical bytes" if table.at[i, "sha256"] == table.at[keeper, "sha256"]
                       else "near-identical")
                dropped[table.at[i, "source"]] = f"duplicate of {scan.display_name(table.at[keeper, 'source'])} ({how})"
                drop.add(i)
    else:
        for keeper, i in identical:
            a, b = table.iloc[keeper], table.iloc[i]
            if _compatible(a, b):
                dropped[b["source"]] = f"duplicate of {scan.display_name(a['source'])} (identical bytes)"
                drop.add(i)
            else:
                table.at[i, "clean_note"] = _join(table.at[i, "clean_note"],
                                                  f"identical bytes to {scan.display_name(a['source'])}, "
                                                  "labelled differently; kept in its group")
    for i in drop:
        (tmp / table.at[i, "path"]).unlink(missing_ok=True)
    table["link"] = links
    table = table.drop(index=sorted(drop))
    return table.reset_index(drop=True), dropped


class _Rows:
    """Rows of the thumbnails file in table order, read one at a time (never all in memory)."""

    def __init__(self, array, rows):
        self.array, self.rows = array, rows

    def __getitem__(self, i):
        return self.array[self.rows[i]]

    def release(self) -> None:
        stores.drop_mapped_pages(self.array)


def _compatible(a, b) -> bool:
    """Whether two copies say the same, where both say anything."""
    same_biome = not a["biome"] or not b["biome"] or a["biome"] == b["biome"]
    same_month = pd.isna(a["month"]) or pd.isna(b["month"]) or a["month"] == b["month"]
    return same_biome and same_month


def _join(*notes: str) -> str:
    return "; ".join(n for n in notes if n)


# ---- the manifest table ---------------------------------------------------------------------

def finish_table(table: pd.DataFrame, name_notes: dict, val_frac, test_frac, seed, hemisphere,
                 csv_table) -> pd.DataFrame:
    """Months from EXIF, hemispheres, groups, splits, seasons, notes: the manifest's rows."""
    from_exif = table["month"].isna() & (table["exif_month"] > 0)
    table.loc[from_exif, "month"] = table.loc[from_exif, "exif_month"]
    table.loc[from_exif, "month_source"] = "exif"
    lat = table["exif_lat"]
    exif_hemisphere = np.where(lat.isna(), hemisphere, np.where(lat < 0, "south", "north"))
    table["hemisphere"] = table["hemisphere"].where(table["hemisphere"] != "", exif_hemisphere)
    # Groups: a CSV group, joined with duplicate sets; named by the CSV group or the first source.
    user = table["group"].where(table["group"] != "", None)
    by_user = same_value_pairs(user.fillna(""))
    first = table.groupby("link", sort=False).cumcount() == 0
    leader = pd.Series(np.arange(len(table))[first.to_numpy()], index=table.loc[first, "link"].to_numpy())
    by_link = np.stack([leader.loc[table["link"]].to_numpy(), np.arange(len(table))], axis=1)
    component = connected_groups(len(table), by_user, by_link)
    names = pd.DataFrame({"c": component, "user": user.to_numpy(dtype=object),
                          "source": table["source"].map(scan.display_name).to_numpy(dtype=object)})
    # The first by sorting, not groupby().min(): pandas' string min runs per group in Python.
    by_user_name = names.dropna(subset=["user"]).sort_values("user").drop_duplicates("c").set_index("c")["user"]
    by_source = names.sort_values("source").drop_duplicates("c").set_index("c")["source"]
    name = by_user_name.reindex(by_source.index).fillna(by_source)
    table["group"] = name.loc[component].to_numpy()
    table["split"] = assign_splits(table, val_frac, test_frac, seed)
    table["season"] = [season_of(None if pd.isna(m) else int(m), h)
                       for m, h in zip(table["month"], table["hemisphere"])]
    moved = (table["given_split"] != "") & (table["given_split"] != table["split"])
    table["note"] = [_join(name_notes.get(s, ""), label_note, clean_note,
                           f"moved from {given} to {split} with its group" if m else "")
                     for s, label_note, clean_note, given, split, m in
                     zip(table["source"], table["note"], table["clean_note"], table["given_split"],
                         table["split"], moved)]
    table["source"] = table["source"].map(scan.display_name)
    extras = [c for c in (scan.csv_extras(csv_table) if csv_table is not None else [])]
    renamed = {c: (f"csv_{c}" if c in manifest.COLUMNS else c) for c in extras}
    table = table.rename(columns=renamed)
    columns = manifest.COLUMNS + list(renamed.values())
    if table["exif_lat"].notna().any():
        # EXIF GPS latitudes fill the lat column (training's latitude prior reads it) where the CSV gives none.
        exif_lat = table["exif_lat"].map(lambda v: "" if pd.isna(v) else f"{v:.5f}")
        if "lat" in table:
            table["lat"] = table["lat"].where(table["lat"].astype(str).str.strip() != "", exif_lat)
        else:
            table["lat"] = exif_lat
            columns.append("lat")
    table = table.sort_values("source", kind="stable").reset_index(drop=True)
    return table[columns]
