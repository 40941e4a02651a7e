"""Preprocessing, raw -> processed: every rule of the data contract, on files made here.

The images are tiny (tens of pixels) and mostly random colour blocks, so two
of them are never alike by chance; the bad files are written by the tests.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import time
import unicodedata
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from biomeseason.io.files import UsageError
from biomeseason.labels import MONTH_ABBR, season_of
from biomeseason.prepare import clean
from biomeseason.prepare import preprocess as pp

ROOT = Path(__file__).resolve().parents[2]
SIZE, MIN_SIDE = 32, 16          # small, so the tests run fast; set explicitly everywhere
RUN = dict(size=SIZE, min_side=MIN_SIDE, workers=1, progress=False)


# ---- making files -----------------------------------------------------------------

def photo(seed: int, size=(64, 48)) -> Image.Image:
    """A smooth random colour field: unlike any other seed's to a perceptual hash."""
    blocks = np.random.default_rng(seed).integers(0, 256, (6, 8, 3), dtype=np.uint8)
    return Image.fromarray(blocks).resize(size, Image.Resampling.BICUBIC)


def save(im: Image.Image, path: Path, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path, **kwargs)
    return path


def jpeg_bytes(im: Image.Image, quality=90) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def png_bytes(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims a huge image: a decompression bomb."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


def tree_hashes(folder: Path) -> dict[str, str]:
    """{relative path: sha256} of every file, and every folder (as 'dir'), under folder."""
    found = {}
    for dirpath, dirs, files in os.walk(folder):
        for d in dirs:
            found[os.path.relpath(os.path.join(dirpath, d), folder)] = "dir"
        for f in files:
            path = os.path.join(dirpath, f)
            found[os.path.relpath(path, folder)] = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    return found


def all_files(folder: Path) -> list[str]:
    return sorted(Path(d, f).relative_to(folder).as_posix()
                  for d, _, files in os.walk(folder) for f in files)


def read_manifest(out: Path) -> pd.DataFrame:
    return pd.read_csv(out / "manifest.csv", dtype=str, keep_default_na=False)


def read_rejected(out: Path) -> dict[str, str]:
    table = pd.read_csv(out / "rejected.csv", dtype=str, keep_default_na=False)
    return dict(zip(table["source"], table["reason"]))


# ---- the main scenario: the study's names, every kind of bad file --------------

STUDY = {  # file name -> (biome, month) it must be kept with
    "Boreal_Manicouagan Crater_June.jpg": ("boreal_forest", 6),
    "Rainforest Congolese_Nov.jpg": ("tropical_rainforest", 11),
    "Desert Mojave_Sep.jpg": ("desert", 9),
    "DV_Sept.png": ("desert", 9),
    "Tundra_Europe__July.jpg": ("tundra", 7),
    "Deciduous_Jan_Snow.png": ("temperate_deciduous_forest", 1),
    "Boreal_Manicouagan Crater_Feb2.png": ("boreal_forest", 2),
    "Ranforest_Feb.png": ("tropical_rainforest", 2),
}
MODES = ["Tundra_Jan_grey.png", "Tundra_Feb_palette.png", "Tundra_Mar_rgba.png",
         "Tundra_Apr_cmyk.jpg", "Tundra_May_16bit.png", "Tundra_Aug_float.tif", "Tundra_Sep_animated.gif"]
EXPECTED_REJECTIONS = {  # source -> start of its reason
    "Lake Victoria_Serengeti_Dec.jpg": "label: no known biome in 'Lake Victoria'",
    "Boreal_Manicouagan Crater.jpg": "label: no month",
    "Boreal_Jan_empty.jpg": "empty file",
    "Boreal_Feb_truncated.jpg": "truncated",
    "Boreal_Mar_text.jpg": "not an image",
    "Boreal_Jun_garbled.png": "corrupt",
    "Boreal_Apr_tiny.png": "too small",
    "Boreal_May_bomb.png": "too large",
    ".DS_Store": "ignored: system file",
    "Icon\r": "ignored: system file",
    "Thumbs.db": "ignored: system file",
    ".hidden_Jan.jpg": "ignored: system file",
    "sub/.DS_Store": "ignored: system file",
    ".cache/DV_Jan.jpg": "ignored: system file",
    "README.md": "ignored: read-me file",
    "DV_Sept_copy.png": "duplicate of DV_Sept.png (identical bytes)",
}
# Kept, each sharing a group with another: near duplicates, and identical bytes labelled differently.
GROUPED = {"Desert Mojave_Sep_small.jpg": "Desert Mojave_Sep.jpg", "Tundra_Jun_a.jpg": "Boreal_Jun_b.jpg"}


def make_study_raw(raw: Path) -> None:
    for seed, name in enumerate(STUDY):
        save(photo(seed), raw / name)
    save(photo(20, (96, 72)), raw / "Desert Mojave_Sep.jpg", quality=95)   # replaces the one above
    save(photo(20, (64, 48)), raw / "Desert Mojave_Sep_small.jpg", quality=70)
    shutil.copyfile(raw / "DV_Sept.png", raw / "DV_Sept_copy.png")
    twin = jpeg_bytes(photo(21))
    (raw / "Tundra_Jun_a.jpg").write_bytes(twin)
    (raw / "Boreal_Jun_b.jpg").write_bytes(twin)
    save(photo(22), raw / "Lake Victoria_Serengeti_Dec.jpg")
    save(photo(23), raw / "Boreal_Manicouagan Crater.jpg")
    # Bad files, with good names so the content is what fails.
    (raw / "Boreal_Jan_empty.jpg").write_bytes(b"")
    data = jpeg_bytes(photo(24))
    (raw / "Boreal_Feb_truncated.jpg").write_bytes(data[: len(data) // 2])
    (raw / "Boreal_Mar_text.jpg").write_text("this is not an image\n" * 20)
    garbled = bytearray(png_bytes(photo(26)))
    garbled[len(garbled) // 2: len(garbled) // 2 + 40] = bytes(40)     # zeros inside the pixel data
    (raw / "Boreal_Jun_garbled.png").write_bytes(bytes(garbled))
    save(photo(25, (8, 8)), raw / "Boreal_Apr_tiny.png")
    (raw / "Boreal_May_bomb.png").write_bytes(png_claiming(30000, 30000))
    # Colour modes, each from its own seed.
    save(photo(30).convert("L"), raw / MODES[0])
    save(photo(31).convert("P", palette=Image.Palette.ADAPTIVE, colors=32), raw / MODES[1])
    rgba = photo(32).convert("RGBA")
    rgba.putalpha(Image.fromarray(np.where(np.arange(64) < 32, 0, 255).astype(np.uint8)[None].repeat(48, 0)))
    save(rgba, raw / MODES[2])
    save(photo(33).convert("CMYK"), raw / MODES[3], quality=95)
    grey16 = np.asarray(photo(34).convert("L")).astype(np.uint16) * 257
    save(Image.fromarray(grey16), raw / MODES[4])
    save(Image.fromarray(np.asarray(photo(38).convert("L"), np.float32) / 255.0, "F"), raw / MODES[5])
    frames = [photo(39 + k) for k in range(3)]
    save(frames[0], raw / MODES[6], save_all=True, append_images=frames[1:], duration=100)
    # EXIF orientation 6: stored landscape, red on top; shown portrait, red on the right.
    sideways = Image.new("RGB", (64, 48), (0, 0, 255))
    sideways.paste((255, 0, 0), (0, 0, 64, 24))
    exif = Image.Exif()
    exif[0x0112] = 6
    save(sideways, raw / "USGrass_Jun_rotated.jpg", exif=exif.tobytes(), quality=95)
    save(photo(35, (24, 20)), raw / "USGrass_Jul_small.png")      # between min_side and size
    # System files and a read-me.
    for name in [".DS_Store", "Icon\r", "Thumbs.db", "sub/.DS_Store"]:
        (raw / name).parent.mkdir(parents=True, exist_ok=True)
        (raw / name).write_bytes(b"\0\1junk")
    save(photo(36), raw / ".hidden_Jan.jpg")
    save(photo(37), raw / ".cache" / "DV_Jan.jpg")
    (raw / "README.md").write_text("put photos here\n")


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """Run twice (one process, then a pool of two) on the same raw/, recording everything."""
    base = tmp_path_factory.mktemp("study")
    raw, out = base / "raw", base / "processed"
    make_study_raw(raw)
    before = tree_hashes(raw)
    first = pp.preprocess(raw, out, seed=0, **RUN)
    first_files = {name: (out / name).read_bytes() for name in ("manifest.csv", "rejected.csv", "labels.json")}
    first_images = tree_hashes(out / "images")
    second = pp.preprocess(raw, out, seed=0, **{**RUN, "workers": 2})
    return dict(raw=raw, out=out, before=before, after=tree_hashes(raw), first=first, second=second,
                first_files=first_files, first_images=first_images)


def test_raw_is_never_written(study):
    assert study["after"] == study["before"]
    assert not any(p.name.startswith("processed") for p in study["raw"].iterdir())


def test_every_raw_file_is_accounted_for_exactly_once(study):
    kept = list(read_manifest(study["out"])["source"])
    rejected = list(read_rejected(study["out"]))
    assert len(kept) == len(set(kept)) and len(rejected) == len(set(rejected))
    assert not set(kept) & set(rejected)
    assert sorted(kept + rejected) == all_files(study["raw"])


@pytest.mark.parametrize("source, expected", sorted(EXPECTED_REJECTIONS.items()))
def test_rejections_carry_a_specific_reason(study, source, expected):
    assert read_rejected(study["out"])[source].startswith(expected)


def test_nothing_else_is_rejected(study):
    assert set(read_rejected(study["out"])) == set(EXPECTED_REJECTIONS)


@pytest.mark.parametrize("source", sorted(STUDY))
def test_study_names_are_kept_with_their_labels(study, source):
    row = read_manifest(study["out"]).set_index("source").loc[source]
    biome, month = STUDY[source]
    assert (row["biome"], row["month"], row["season"]) == (biome, str(month), season_of(month))


def test_close_misspelling_is_kept_and_reported(study):
    notes = read_manifest(study["out"]).set_index("source")["note"]
    assert notes["Ranforest_Feb.png"] == "'Ranforest' read as tropical_rainforest (close spelling)"


def test_manifest_columns_and_images(study):
    out = study["out"]
    table = read_manifest(out)
    assert list(table.columns) == pp.MANIFEST_COLUMNS
    assert list(table["source"]) == sorted(table["source"])
    assert set(table["split"]) <= {"train", "val", "test"}
    for row in table.itertuples():
        assert row.path.startswith("images/") and row.path.endswith(".jpg")
        assert row.sha256 == hashlib.sha256((study["raw"] / row.source).read_bytes()).hexdigest()
        with Image.open(out / row.path) as im:
            assert (im.format, im.mode) == ("JPEG", "RGB")
            assert im.size == (int(row.width), int(row.height))
            if row.source != "USGrass_Jul_small.png":
                assert min(im.size) == SIZE
    stored = {p.relative_to(out).as_posix() for p in (out / "images").rglob("*") if p.is_file()}
    assert stored == set(table["path"])          # dropped duplicates leave no image behind


def test_small_images_are_kept_at_their_size_not_upscaled(study):
    row = read_manifest(study["out"]).set_index("source").loc["USGrass_Jul_small.png"]
    assert (row["width"], row["height"]) == ("24", "20")
    assert "not upscaled" in row["note"]


def _processed(study, source) -> np.ndarray:
    row = read_manifest(study["out"]).set_index("source").loc[source]
    with Image.open(study["out"] / row["path"]) as im:
        return np.asarray(im.convert("RGB"), dtype=np.float64)


def _reference(source: str, raw: Path) -> Image.Image:
    """What each colour-mode file should look like in RGB, worked out independently."""
    with Image.open(raw / source) as im:
        im.load()
        if source == "Tundra_Mar_rgba.png":
            rgb = np.asarray(im.convert("RGBA"), dtype=np.float64)
            return Image.fromarray((rgb[..., :3] * rgb[..., 3:] / 255).round().astype(np.uint8))
        if source == "Tundra_May_16bit.png":
            return Image.fromarray((np.asarray(im, dtype=np.float64) / 257).round().astype(np.uint8)).convert("RGB")
        if source == "Tundra_Aug_float.tif":
            return Image.fromarray((np.asarray(im, dtype=np.float64) * 255).round().astype(np.uint8)).convert("RGB")
        return im.convert("RGB")


@pytest.mark.parametrize("source", MODES)
def test_colour_modes_become_faithful_rgb(study, source):
    got = _processed(study, source)
    want = np.asarray(_reference(source, study["raw"]).resize(got.shape[1::-1], Image.Resampling.LANCZOS),
                      dtype=np.float64)
    assert np.abs(got - want).mean() < 4.0


def test_exif_orientation_is_applied(study):
    got = _processed(study, "USGrass_Jun_rotated.jpg")
    assert got.shape[0] > got.shape[1]                       # portrait now
    left, right = got[:, : got.shape[1] // 3], got[:, -got.shape[1] // 3:]
    assert right[..., 0].mean() > 200 and right[..., 2].mean() < 50     # red on the right
    assert left[..., 2].mean() > 200 and left[..., 0].mean() < 50       # blue on the left


def test_labels_json(study):
    labels = json.loads((study["out"] / "labels.json").read_text())
    assert labels["biomes"] == study["first"].vocab.biomes
    assert labels["biomes"][0] == "boreal_forest" and len(labels["biomes"]) == 7
    assert labels["months"] == list(range(1, 13))
    assert labels["hemisphere"] == "north"
    assert "dv" in labels["vocabulary"]["desert"]


def test_rerun_is_byte_identical_whatever_the_workers(study):
    for name, data in study["first_files"].items():
        assert (study["out"] / name).read_bytes() == data, name
    assert tree_hashes(study["out"] / "images") == study["first_images"]


def test_no_temporary_folders_are_left(study):
    assert sorted(p.name for p in study["out"].parent.iterdir()) == ["processed", "raw"]


def test_identical_copies_are_merged_and_near_duplicates_grouped(study):
    table = read_manifest(study["out"]).set_index("source")
    rejected = read_rejected(study["out"])
    for source, other in GROUPED.items():
        assert table.loc[source, "group"] == table.loc[other, "group"]
        assert table.loc[source, "split"] == table.loc[other, "split"]
    assert "labelled differently" in table.loc["Tundra_Jun_a.jpg", "note"]
    lone = table.drop(index=[*GROUPED, *GROUPED.values()])
    assert (lone["group"] == lone.index).all()           # everything else is its own group
    # Every "duplicate of X" names an image that was kept, with identical bytes.
    for source, reason in rejected.items():
        if reason.startswith("duplicate of "):
            kept = reason[len("duplicate of "):].rsplit(" (", 1)[0]
            assert table.loc[kept, "sha256"] == hashlib.sha256((study["raw"] / source).read_bytes()).hexdigest()


def test_first_frame_of_an_animation_is_noted(study):
    assert "first of 3 frames" in read_manifest(study["out"]).set_index("source").loc[MODES[6], "note"]


def test_summary_counts(study):
    summary = study["second"].summary
    n_kept = len(STUDY) + len(MODES) + 2 + 3     # and the three grouped: a near copy, a labelled twin pair
    assert f"kept {n_kept} of {n_kept + len(EXPECTED_REJECTIONS)} files" in summary
    assert "too large" in summary and "duplicate (identical bytes)" in summary
    assert "2 groups of near duplicates or shared places hold 4 images" in summary
    total = [line for line in summary.splitlines() if line.startswith("total")][0]
    assert total.split()[-1] == str(n_kept)
    assert (study["out"] / "summary.txt").read_text() == summary + "\n"


# ---- a labels CSV --------------------------------------------------------------------

def test_labels_csv(tmp_path):
    raw = tmp_path / "raw"
    names = ["a.jpg", "b.jpg", "c.jpg", "d.jpg", "e.jpg", "f.jpg", "h.jpg", "sub/g.jpg"]
    for i, name in enumerate(names):
        save(photo(400 + i), raw / name)
    (raw / "labels.csv").write_text(
        "path,biome,month\n"
        "a.jpg,Boreal,Jun\n"
        "b.jpg,,7\n"                 # month only
        "c.jpg,savanna,\n"           # biome only
        "d.jpg,Jungle,3\n"
        "e.jpg,Tundra,Smarch\n"
        "h.jpg,,\n"
        "./sub/g.jpg,Ranforest,12\n"
        "missing.jpg,Boreal,1\n", encoding="utf-8-sig")       # as spreadsheets save it
    result = pp.preprocess(raw, tmp_path / "out", labels_csv=raw / "labels.csv", **RUN)
    kept = {r.source: (r.biome, r.month if pd.notna(r.month) else None, r.month_source)
            for r in result.manifest.itertuples()}
    assert kept == {"a.jpg": ("boreal_forest", 6, "csv"), "b.jpg": ("", 7, "csv"),
                    "c.jpg": ("tropical_grassland", None, ""), "sub/g.jpg": ("tropical_rainforest", 12, "csv")}
    rejected = dict(zip(result.rejected["source"], result.rejected["reason"]))
    assert rejected == {
        "d.jpg": "label: biome 'Jungle' in the labels CSV is not in the vocabulary",
        "e.jpg": "label: month 'Smarch' in the labels CSV is not a month",
        "f.jpg": "label: not listed in the labels CSV",
        "h.jpg": "label: biome and month both blank in the labels CSV",
        "labels.csv": "ignored: the labels CSV",
    }
    assert "1 row(s) of the labels CSV name no file" in result.summary


def test_latin1_labels_csv_with_accented_names(tmp_path):
    raw = tmp_path / "raw"
    save(photo(450), raw / "Forêt_été.jpg")
    save(photo(451), raw / "Tundra_Jan.jpg")
    (tmp_path / "labels.csv").write_bytes("path,biome,month,région\nForêt_été.jpg,Boreal,Juillet?,\n"
                                          .replace("Juillet?", "7").encode("latin-1")
                                          + "Tundra_Jan.jpg,Tundra,1,Sibérie\n".encode("latin-1"))
    result = pp.preprocess(raw, tmp_path / "out", labels_csv=tmp_path / "labels.csv", **RUN)
    table = result.manifest.set_index("source")
    assert table.loc["Forêt_été.jpg", "biome"] == "boreal_forest"
    assert table.loc["Tundra_Jan.jpg", "région"] == "Sibérie"          # other columns are kept
    assert result.rejected.empty


def test_labels_csv_paths_match_nfd_file_names(tmp_path):
    raw = tmp_path / "raw"
    nfd = unicodedata.normalize("NFD", "Forêt.jpg")
    save(photo(452), raw / nfd)
    (tmp_path / "labels.csv").write_text("path,biome,month\nForêt.jpg,Boreal,7\n", encoding="utf-8")
    result = pp.preprocess(raw, tmp_path / "out", labels_csv=tmp_path / "labels.csv", **RUN)
    assert list(result.manifest["source"]) == [nfd] and result.manifest["month"].iloc[0] == 7


@pytest.mark.parametrize("content, message", [
    ("file,biome\na.jpg,Boreal\n", "needs a 'path' column"),
    ("path,biome\na.jpg,Boreal\n./a.jpg,Tundra\n", "more than once"),
])
def test_malformed_labels_csv_is_an_error(tmp_path, content, message):
    (tmp_path / "raw").mkdir()
    (tmp_path / "labels.csv").write_text(content)
    with pytest.raises(UsageError, match=message):
        pp.preprocess(tmp_path / "raw", tmp_path / "out", labels_csv=tmp_path / "labels.csv", **RUN)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["labels.csv", "raw"]


# ---- names and folders the listing must survive -------------------------------------------

def test_a_name_that_is_not_utf8_and_five_others_are_all_accounted_for(tmp_path):
    raw = tmp_path / "raw"
    for i, name in enumerate(["Boreal_Jan.jpg", "DV_Feb.jpg", "Tundra_Mar.jpg", "USGrass_Apr.jpg", "notes.txt"]):
        save(photo(460 + i), raw / name) if name.endswith(".jpg") else (raw / name).write_text("x")
    bad = os.path.join(os.fsencode(raw), b"Boreal_Jun_\xff\xfe.jpg")     # Latin-1 bytes, not UTF-8
    with open(bad, "wb") as f:
        f.write(jpeg_bytes(photo(466)))
    result = pp.preprocess(raw, tmp_path / "out", **RUN)
    table = read_manifest(tmp_path / "out")
    shown = "Boreal_Jun_\\xff\\xfe.jpg"
    assert len(table) + len(read_rejected(tmp_path / "out")) == 6
    row = table.set_index("source").loc[shown]
    assert row["biome"] == "boreal_forest" and "not valid UTF-8" in row["note"]
    assert (tmp_path / "out" / row["path"]).is_file()
    assert "notes.txt" in read_rejected(tmp_path / "out")
    assert len(result.manifest) == 5


def test_an_unreadable_folder_is_reported_and_the_rest_kept(tmp_path, monkeypatch):
    raw = tmp_path / "raw"
    save(photo(470), raw / "Boreal_Jan.jpg")
    save(photo(471), raw / "locked" / "DV_Feb.jpg")
    (raw / "locked").chmod(0)
    if os.geteuid() == 0:   # root reads anything: make the listing fail as it would for a user
        real = os.scandir

        def scandir(path="."):
            if os.fspath(path).endswith("locked"):
                raise PermissionError(13, "Permission denied", os.fspath(path))
            return real(path)
        monkeypatch.setattr(os, "scandir", scandir)
    try:
        result = pp.preprocess(raw, tmp_path / "out", **RUN)
    finally:
        (raw / "locked").chmod(0o755)
    assert list(result.manifest["source"]) == ["Boreal_Jan.jpg"]
    assert dict(zip(result.rejected["source"], result.rejected["reason"])) == {
        "locked/": "unreadable folder: permission denied"}


def test_nfd_and_nfc_twins_are_both_kept_without_a_collision(tmp_path):
    raw = tmp_path / "raw"
    nfc, nfd = "Boreal_Forêt_Jan.jpg", unicodedata.normalize("NFD", "Boreal_Forêt_Jan.jpg")
    save(photo(480), raw / nfc)
    save(photo(481), raw / nfd)
    if len(os.listdir(raw)) < 2:
        pytest.skip("this file system merges Unicode forms")
    result = pp.preprocess(raw, tmp_path / "out", **RUN)
    table = result.manifest.set_index("source")
    assert sorted(table.index) == sorted([nfc, nfd])
    assert len(set(table["path"])) == 2 and all((tmp_path / "out" / p).is_file() for p in table["path"])
    assert sum("another Unicode form" in n for n in table["note"]) == 1


# ---- safety ----------------------------------------------------------------------

@pytest.fixture
def small_raw(tmp_path):
    raw = tmp_path / "raw"
    for i, name in enumerate(["Boreal_Jan_1.jpg", "DV_Feb_1.jpg", "Tundra_Mar_1.jpg", "USGrass_Apr_1.jpg"]):
        save(photo(500 + i), raw / name)
    return raw


def test_out_inside_raw_or_raw_inside_out_is_refused(small_raw, tmp_path):
    before = tree_hashes(small_raw)
    with pytest.raises(UsageError, match="inside --raw"):
        pp.preprocess(small_raw, small_raw / "processed", **RUN)
    with pytest.raises(UsageError, match="inside --raw"):
        pp.preprocess(small_raw, small_raw, **RUN)
    with pytest.raises(UsageError, match="inside --out"):
        pp.preprocess(small_raw, tmp_path, **RUN)
    assert tree_hashes(small_raw) == before


def test_a_users_folder_is_refused_and_with_force_nothing_of_theirs_is_lost(small_raw, tmp_path):
    out = tmp_path / "precious"
    (out / "chapters").mkdir(parents=True)
    (out / "thesis.tex").write_text("years of work")
    (out / "chapters" / "one.tex").write_text("more work")
    before = tree_hashes(out)
    with pytest.raises(UsageError, match="--force"):
        pp.preprocess(small_raw, out, **RUN)
    assert tree_hashes(out) == before
    for _ in range(2):       # a second forced run replaces our outputs, still nothing else
        pp.preprocess(small_raw, out, force=True, **RUN)
        after = tree_hashes(out)
        assert {k: v for k, v in after.items() if k in before} == before
        assert {"manifest.csv", "rejected.csv", "labels.json", "summary.txt", "images"} <= set(after)
        assert ".biomeseason" not in after          # still the user's folder: `clean` must not delete it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["precious", "raw"]


def test_an_old_output_without_our_marker_needs_force(small_raw, tmp_path):
    out = tmp_path / "processed"
    pp.preprocess(small_raw, out, **RUN)
    (out / ".biomeseason").unlink()                 # as an older version left it
    (out / "my_notes.txt").write_text("keep me")
    with pytest.raises(UsageError, match="--force"):
        pp.preprocess(small_raw, out, **RUN)
    pp.preprocess(small_raw, out, force=True, **RUN)
    assert (out / "my_notes.txt").read_text() == "keep me"


def test_force_never_replaces_a_users_own_images_folder(small_raw, tmp_path):
    out = tmp_path / "project"
    save(photo(510), out / "images" / "holiday.jpg")
    before = tree_hashes(out)
    with pytest.raises(UsageError, match="images that biomeseason did not write"):
        pp.preprocess(small_raw, out, force=True, **RUN)
    assert tree_hashes(out) == before


def test_files_added_to_our_folder_survive_a_rerun(small_raw, tmp_path):
    out = tmp_path / "processed"
    pp.preprocess(small_raw, out, **RUN)
    (out / "my_notes.txt").write_text("keep me")
    pp.preprocess(small_raw, out, **RUN)
    assert (out / "my_notes.txt").read_text() == "keep me"


def test_an_interrupted_run_leaves_the_previous_output_valid(small_raw, tmp_path, monkeypatch):
    out = tmp_path / "processed"
    pp.preprocess(small_raw, out, **RUN)
    before = tree_hashes(out)
    save(photo(600), small_raw / "Deciduous_May_1.jpg")        # something new to process
    real, calls = clean.clean_file, []

    def interrupted(*job):
        calls.append(job)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*job)

    monkeypatch.setattr(clean, "clean_file", interrupted)
    with pytest.raises(KeyboardInterrupt):
        pp.preprocess(small_raw, out, **RUN)
    assert tree_hashes(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["processed", "raw"]


def test_a_leftover_of_a_killed_run_is_removed_only_if_ours(small_raw, tmp_path):
    ours = tmp_path / "processed.tmp-999999-abc"           # no such process
    ours.mkdir()
    (ours / ".biomeseason").write_text("x")
    theirs = tmp_path / "processed.old-999999-def"
    theirs.mkdir()
    (theirs / "data.txt").write_text("x")
    result = pp.preprocess(small_raw, tmp_path / "processed", **RUN)
    assert not ours.exists() and (theirs / "data.txt").exists()
    assert "carries no marker" in result.summary


SIGTERM_SCRIPT = """
import sys
from biomeseason.prepare.preprocess import preprocess
preprocess(sys.argv[1], sys.argv[2], size=32, min_side=16, workers=2, progress=False)
"""


def _children(pid: int) -> list[int]:
    psutil = pytest.importorskip("psutil")
    try:
        return [c.pid for c in psutil.Process(pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def test_sigterm_ends_the_workers_and_leaves_the_previous_output(tmp_path, spawn):
    psutil = pytest.importorskip("psutil")
    raw, out = tmp_path / "raw", tmp_path / "processed"
    for i in range(400):
        save(photo(1000 + i, (48, 40)), raw / f"{['Boreal', 'DV'][i % 2]}_{MONTH_ABBR[i % 12]}_{i:04d}.png")
    pp.preprocess(raw, out, **{**RUN, "workers": 2})
    before = tree_hashes(out)
    save(photo(2000), raw / "Tundra_Jan_new.png")
    process = spawn([sys.executable, "-c", SIGTERM_SCRIPT, str(raw), str(out)], cwd=ROOT)
    workers = []
    for _ in range(600):                     # wait until the pool is at work
        workers = _children(process.pid)
        if len(workers) >= 2 and any(p.name.startswith("processed.tmp-") for p in tmp_path.iterdir()):
            break
        time.sleep(0.02)
    assert len(workers) >= 2
    time.sleep(0.3)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) != 0
    gone, alive = psutil.wait_procs([psutil.Process(w) for w in workers if psutil.pid_exists(w)], timeout=10)
    assert not alive
    assert sorted(p.name for p in tmp_path.iterdir()) == ["processed", "raw"]
    assert tree_hashes(out) == before


def test_empty_raw_folder(tmp_path):
    (tmp_path / "raw").mkdir()
    result = pp.preprocess(tmp_path / "raw", tmp_path / "out", **RUN)
    assert result.manifest.empty and result.rejected.empty
    assert (tmp_path / "out" / "manifest.csv").read_text().strip() == ",".join(pp.MANIFEST_COLUMNS)
    assert "kept 0 of 0 files" in result.summary


@pytest.mark.parametrize("kwargs, message", [
    (dict(val_frac=0.5, test_frac=0.5), "sum below 1"),
    (dict(hemisphere="east"), "hemisphere"),
    (dict(min_side=64), "--min-side"),
    (dict(size=0), "--size"),
    (dict(workers=0), "--workers"),
    (dict(labels_csv="nope.csv"), "--labels"),
    (dict(vocab="nope.json"), "--vocab"),
])
def test_bad_settings_are_refused_before_any_work(small_raw, tmp_path, kwargs, message):
    with pytest.raises(UsageError, match=message):
        pp.preprocess(small_raw, tmp_path / "out", **{**RUN, **kwargs})
    assert not (tmp_path / "out").exists()


# ---- command line ------------------------------------------------------------------

def test_every_flag_states_its_default():
    for action in pp.get_args_parser()._actions:
        if action.dest != "help":
            assert "default" in action.help, action.dest


def test_script_and_module_commands_are_the_same(small_raw, tmp_path, capsys):
    from biomeseason.__main__ import main as cli

    flags = ["--raw", str(small_raw), "--size", str(SIZE), "--min-side", str(MIN_SIDE),
             "--workers", "1", "--no-progress", "--seed", "3"]
    assert cli(["preprocess", *flags, "--out", str(tmp_path / "a")]) == 0
    printed = capsys.readouterr().out
    assert "biome" in printed and "train" in printed and "rejected 0" in printed
    done = subprocess.run([sys.executable, str(ROOT / "dataset_preproc.py"), *flags, "--out", str(tmp_path / "b")],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "a" / "manifest.csv").read_bytes() == (tmp_path / "b" / "manifest.csv").read_bytes()


@pytest.mark.parametrize("flags, message", [
    (["--raw", "nope"], "raw folder not found"),
    (["--size", "0"], "--size must be at least 1"),
    (["--bad"], "unrecognized arguments"),
])
def test_command_line_mistakes_exit_2_with_one_line(tmp_path, flags, message):
    done = subprocess.run([sys.executable, str(ROOT / "dataset_preproc.py"), *flags,
                           "--out", str(tmp_path / "out")], capture_output=True, text=True, cwd=tmp_path,
                          timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 2 and message in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "out").exists()
