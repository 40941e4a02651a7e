"""Listing raw/ so every file is accounted for, and reading labels from paths and a labels CSV.

    listing = list_raw_files(raw)          # files, unreadable folders, name notes
    split, label = labels_from_path("Image Data/Train/Boreal/x.jpg", vocab)
    table = read_labels_csv("labels.csv")  # path, biome, month, group, split, lat, ... per file

What real folders bring, and how each is handled:

* Names that are not valid UTF-8 (old archives, other systems): listed with
  ``\\x..`` escapes for the bytes that are not text (``display_name``), so
  they can be written to a CSV; the file itself is still read by its real name.
* Folders we may not read: one row of rejected.csv, ``unreadable folder: ...``.
* The same name in two Unicode forms (macOS writes NFD, most others NFC): both
  files are kept; the second is noted, and output paths never collide.
* Symlinked folders are followed, each real folder once, so a loop cannot hang us.

Labels from paths: a split folder (train, val, valid, validation, test, any
case) may sit below any number of wrapper folders; folders naming a biome or
a month give those labels; any other folder (a wrapper, ``batch1``) is
skipped and the file name is read instead.
"""
from __future__ import annotations

import os
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import pandas as pd

from ..io.files import UsageError, is_ours
from ..labels import FileLabel, LabelError, Vocabulary, parse_filename, parse_month

# Folder names that fix a split, compared case-blind.
SPLIT_FOLDERS = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}
SYSTEM_FILES = {".ds_store", "thumbs.db", "ehthumbs.db", "desktop.ini", "icon\r"}
SYSTEM_FOLDERS = {"__macosx"}
READMES = {"readme", "readme.md", "readme.txt"}
# Labels CSV columns we read; any other column is carried into the manifest as text.
CSV_COLUMNS = ("path", "biome", "month", "group", "split", "lat", "lon", "hemisphere")
# `synth` lists its scenes beside them (synthetic.list_scenes): their labels when a user's labels CSV
# does not list them.
SCENES_LIST = "scenes.csv"
SCENES_COLUMNS = ("path", "biome", "month")


# ---- listing ---------------------------------------------------------------------

@dataclass
class Listing:
    files: list[str] = field(default_factory=list)        # relative paths as the OS gives them
    unreadable: dict[str, str] = field(default_factory=dict)  # folder (display) -> reason
    notes: dict[str, str] = field(default_factory=dict)   # file -> note (bad UTF-8, Unicode twin)


def display_name(path: str) -> str:
    """A path fit for a UTF-8 CSV: bytes that are not UTF-8 become ``\\xNN`` escapes."""
    try:
        path.encode("utf-8")
        return path
    except UnicodeEncodeError:  # surrogate-escaped bytes from os.walk
        return os.fsencode(path).decode("utf-8", "backslashreplace")


def nfc_key(path: str) -> str:
    """The key two spellings of one name share: NFC form, case kept."""
    return unicodedata.normalize("NFC", display_name(path))


def list_raw_files(raw: Path) -> Listing:
    """Every file under raw/, as sorted POSIX paths relative to it, plus what could not be listed."""
    listing = Listing()
    seen = set()
    raw_text = os.fspath(raw)

    def unreadable(error: OSError):
        rel = os.path.relpath(error.filename, raw_text) if error.filename else "?"
        reason = "permission denied" if isinstance(error, PermissionError) else (error.strerror or str(error))
        listing.unreadable[display_name(Path(rel).as_posix()) + "/"] = f"unreadable folder: {reason.lower()}"

    for folder, dirs, names in os.walk(raw_text, onerror=unreadable, followlinks=True):
        dirs.sort()  # a fixed walk order decides which of two linked paths is listed
        real = os.path.realpath(folder)
        if real in seen:
            dirs[:] = []
            continue
        seen.add(real)
        rel = os.path.relpath(folder, raw_text)
        for name in names:
            listing.files.append(name if rel == "." else PurePosixPath(Path(rel) / name).as_posix())
    listing.files.sort()
    by_key: dict[str, str] = {}
    for source in listing.files:
        shown = display_name(source)
        notes = []
        if shown != source:
            notes.append("name is not valid UTF-8; shown with \\x escapes")
        first = by_key.setdefault(nfc_key(source), source)
        if first != source:
            notes.append(f"same name as {display_name(first)} in another Unicode form")
        if notes:
            listing.notes[source] = "; ".join(notes)
    return listing


def beside_scenes(source: str, raw: Path) -> bool:
    """Whether a file lies where ``synth`` writes its contact sheet and scene list: at the top of raw/,
    or in a folder of ours below it."""
    folder = PurePosixPath(source).parent
    return folder == PurePosixPath(".") or is_ours(raw / folder)


def ignore_reason(source: str, labels_csv: Path | None, raw: Path) -> str:
    """Why a file is not data at all (system file, read-me, our labels CSV), else ''."""
    parts = PurePosixPath(source).parts
    name = parts[-1]
    if name.lower() in SYSTEM_FILES or name.startswith("."):
        return "ignored: system file"
    if any(p.startswith(".") or p.lower() in SYSTEM_FOLDERS for p in parts[:-1]):
        return "ignored: system file (in a hidden or system folder)"
    if len(parts) == 1 and name.lower() in READMES:
        return "ignored: read-me file"
    # `synth` writes one beside its scenes: at the top of raw/, or in a folder of ours below it.
    if name.startswith("contact_sheet_") and name.endswith(".png") and beside_scenes(source, raw):
        return "ignored: contact sheet of synthetic scenes"
    if name == SCENES_LIST and beside_scenes(source, raw):
        return "ignored: list of synthetic scenes"
    if labels_csv is not None and os.path.realpath(raw / source) == os.path.realpath(labels_csv):
        return "ignored: the labels CSV"
    return ""


# ---- labels from paths --------------------------------------------------------------

def given_split(source: str) -> tuple[str, list[str]]:
    """(split named by the deepest split folder or '', the path parts below it)."""
    parts = list(PurePosixPath(source).parts)
    for i in range(len(parts) - 2, -1, -1):
        split = SPLIT_FOLDERS.get(parts[i].lower())
        if split:
            return split, parts[i + 1:]
    return "", parts


def class_folder(source: str) -> str | None:
    """The class folder of a file for ``--vocab folders``: right below a split folder, else its parent."""
    split, parts = given_split(source)
    if len(parts) < 2:
        return None
    return parts[0] if split else parts[-2]


def labels_from_path(source: str, vocab: Vocabulary) -> tuple[str, FileLabel, str]:
    """(given split, labels, month source 'folder'/'name'/'') from where a file sits and its name.

    Folders naming a biome or a month give that label; other folders are
    wrappers and are skipped. Without a biome folder the file name must follow
    ``<Biome>[ free text]_<Month>``; inside one, the name may add a month word.
    """
    split, parts = given_split(source)
    *folders, name = parts
    biomes, months, others = [], [], []
    for folder in folders:
        match = vocab.resolve(folder)
        if match is not None:
            biomes.append(match)
        elif parse_month(folder) is not None:
            months.append(parse_month(folder))
        else:
            others.append(folder)
    if len({m.biome for m in biomes}) > 1:
        raise LabelError(f"folders name two biomes: {', '.join(m.text for m in biomes)}")
    if len(set(months)) > 1:
        raise LabelError(f"folders name two months: {sorted(set(months))}")
    if not biomes:
        try:
            label = parse_filename(name, vocab)
        except LabelError as e:
            where = f"folder '{others[-1]}' is not a known biome and " if others else ""
            raise LabelError(f"{where}{e}") from None
        if months and label.month != months[0]:
            raise LabelError(f"folder says month {months[0]} but the file name says {label.month}")
        return split, label, "name"
    match = biomes[-1]
    if months:
        return split, FileLabel(match.biome, months[0], match.note), "folder"
    month = _month_from_name(name, match.biome, vocab)
    return split, FileLabel(match.biome, month, match.note), "name" if month else ""


def _month_from_name(name: str, biome: str, vocab: Vocabulary) -> int | None:
    """The month of a file inside a biome folder, when its name follows the convention.

    Only month words count here: in a class folder a number is a picture index.
    """
    try:
        label = parse_filename(name, vocab, bare_numbers=False)
    except LabelError:
        return None
    if label.biome != biome:
        raise LabelError(f"folder says {biome} but the file name says {label.biome}")
    return label.month


def load_vocabulary(vocab, sources: list[str]) -> Vocabulary:
    """The default vocabulary (None), a vocabulary file, or "folders": the class folder names."""
    if isinstance(vocab, Vocabulary):
        return vocab
    if vocab is None:
        return Vocabulary.load()
    if str(vocab) == "folders":
        names = sorted({c for c in map(class_folder, sources) if c})
        if not names:
            raise UsageError("--vocab folders: no class folders under --raw "
                             "(expected <class>/x.jpg, optionally under train/, val/, test/)")
        return Vocabulary.from_names(names)
    try:
        return Vocabulary.load(vocab)
    except (FileNotFoundError, ValueError) as e:
        raise UsageError(f"--vocab {vocab}: {e}") from None


# ---- the labels CSV --------------------------------------------------------------------

def read_labels_csv(path: Path) -> pd.DataFrame:
    """The labels CSV as text, indexed by the NFC path relative to raw/.

    Encodings: UTF-8 (with or without the byte-order mark spreadsheets write),
    else Latin-1, which can decode any bytes. Values are parsed per file
    later, so one bad row rejects one image instead of the run; a malformed
    file as a whole is refused.
    """
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except UnicodeDecodeError:
        table = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="latin-1")
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        raise UsageError(f"labels CSV {path} cannot be read as CSV: {str(e).strip().splitlines()[0]}") from None
    table.columns = [c.strip() for c in table.columns]
    lower = {c: c.lower() for c in table.columns if c.lower() in CSV_COLUMNS}
    table = table.rename(columns=lower)
    if "path" not in table or not {"biome", "month"} & set(table.columns):
        raise UsageError(f"labels CSV {path} needs a 'path' column and a 'biome' and/or 'month' column; "
                         f"it has {list(table.columns)}")
    table.index = table["path"].map(csv_key)
    repeated = sorted(table.index[table.index.duplicated()].unique())
    if repeated:
        raise UsageError(f"labels CSV {path} lists a path more than once: {repeated[:5]}")
    table.attrs["given"] = list(table.columns)
    for column in ("biome", "month", "group", "split", "lat", "lon", "hemisphere"):
        table[column] = table[column].str.strip() if column in table else ""
    return table


def with_synthetic_scenes(table: pd.DataFrame, raw: Path, sources: list[str]) -> tuple[pd.DataFrame, int]:
    """The labels CSV with rows added for the scenes ``synth`` wrote below raw/ that it does not list
    (from each ``scenes.csv`` in a folder of ours: biome, month, and domain 'synthetic' where the CSV has a
    domain column), and how many were added. A user's file the listing does not name stays unlisted."""
    present = {nfc_key(s) for s in sources}
    added = []
    for source in sources:
        if PurePosixPath(source).name != SCENES_LIST or not beside_scenes(source, raw):
            continue
        folder = PurePosixPath(source).parent
        scenes = pd.read_csv(raw / source, dtype=str, keep_default_na=False)
        if tuple(scenes.columns) != SCENES_COLUMNS:
            continue
        keys = [csv_key((folder / p).as_posix()) for p in scenes["path"]]
        scenes = scenes.assign(path=keys).set_axis(keys)
        added.append(scenes[[k in present and k not in table.index for k in keys]])
    rows = pd.concat(added) if added else pd.DataFrame()
    if rows.empty:
        return table, 0
    rows = rows.reindex(columns=table.columns, fill_value="")
    if "domain" in table.columns:
        rows["domain"] = "synthetic"
    merged = pd.concat([table, rows])
    merged.attrs = table.attrs
    return merged, len(rows)


def csv_key(path: str) -> str:
    """A CSV path as the NFC POSIX path relative to raw/ that files are matched by."""
    key = path.strip().replace("\\", "/")
    while key.startswith("./"):
        key = key[2:]
    return unicodedata.normalize("NFC", key)


def csv_extras(table: pd.DataFrame) -> list[str]:
    """Columns of the labels CSV kept in the manifest as they are: all but those the manifest has."""
    given = table.attrs.get("given", list(table.columns))
    return [c for c in given if c not in CSV_COLUMNS or c in ("lat", "lon")]


def labels_from_csv(row: pd.Series, vocab: Vocabulary) -> FileLabel:
    biome_text, month_text = row["biome"], row["month"]
    if not biome_text and not month_text:
        raise LabelError("biome and month both blank in the labels CSV")
    match = vocab.resolve(biome_text) if biome_text else None
    if biome_text and match is None:
        raise LabelError(f"biome '{biome_text}' in the labels CSV is not in the vocabulary")
    month = parse_month(month_text) if month_text else None
    if month_text and month is None:
        raise LabelError(f"month '{month_text}' in the labels CSV is not a month")
    return FileLabel(match.biome if match else None, month, match.note if match else "")


def csv_split(text: str) -> str:
    split = SPLIT_FOLDERS.get(text.lower(), "") if text else ""
    if text and not split:
        raise LabelError(f"split '{text}' in the labels CSV is not train, val or test")
    return split


def csv_hemisphere(row: pd.Series) -> str:
    """north/south from the CSV's lat (sign) or hemisphere column; '' when neither says."""
    if row["lat"]:
        try:
            lat = float(row["lat"])
        except ValueError:
            raise LabelError(f"lat '{row['lat']}' in the labels CSV is not a number") from None
        if not -90 <= lat <= 90:
            raise LabelError(f"lat {lat} in the labels CSV is outside -90..90")
        return "south" if lat < 0 else "north"
    text = row["hemisphere"].lower()
    if text in ("n", "north", "s", "south"):
        return "south" if text.startswith("s") else "north"
    if text:
        raise LabelError(f"hemisphere '{row['hemisphere']}' in the labels CSV is not north or south")
    return ""
