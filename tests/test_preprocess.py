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
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from biomeseason import preprocess as pp
from biomeseason.labels import MONTH_ABBR, season_of

ROOT = Path(__file__).resolve().parents[1]
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
         "Tundra_Apr_cmyk.jpg", "Tundra_May_16bit.png"]
EXPECTED_REJECTIONS = {  # source -> start of its reason
    "Lake Victoria_Serengeti_Dec.jpg": "label: no known biome in 'Lake Victoria'",
    "Boreal_Manicouagan Crater.jpg": "label: no month",
    "Boreal_Jan_empty.jpg": "empty file",
    "Boreal_Feb_truncated.jpg": "truncated",
    "Boreal_Mar_text.jpg": "not an image",
    "Boreal_Jun_garbled.png": "corrupt",
    "Boreal_Apr_tiny.png": "too small",
    "Boreal_May_bomb.png": "decompression bomb",
    ".DS_Store": "ignored: system file",
    "Icon\r": "ignored: system file",
    "Thumbs.db": "ignored: system file",
    ".hidden_Jan.jpg": "ignored: system file",
    "sub/.DS_Store": "ignored: system file",
    ".cache/DV_Jan.jpg": "ignored: system file",
    "README.md": "ignored: read-me file",
    "DV_Sept_copy.png": "duplicate of DV_Sept.png (identical bytes)",
    "Desert Mojave_Sep_small.jpg": "duplicate of Desert Mojave_Sep.jpg (near-identical",
    "Tundra_Jun_a.jpg": "duplicates with conflicting labels",
    "Boreal_Jun_b.jpg": "duplicates with conflicting labels",
}


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


def test_kept_images_hold_no_duplicates(study):
    table = read_manifest(study["out"])
    assert table["sha256"].is_unique
    prints = [pp.fingerprint(Image.open(study["out"] / p).convert("RGB")) for p in table["path"]]
    hashes = np.array([h for h, _ in prints], dtype=np.uint64)
    thumbs = np.stack([np.frombuffer(t, np.uint8).reshape(16, 16, 3) for _, t in prints])
    assert pp.near_duplicate_pairs(hashes, thumbs) == []
    # Every "duplicate of X" names an image that was kept.
    for reason in read_rejected(study["out"]).values():
        if reason.startswith("duplicate of "):
            assert reason[len("duplicate of "):].rsplit(" (", 1)[0] in set(table["source"])


def test_summary_counts(study):
    summary = study["second"].summary
    n_kept = len(STUDY) + len(MODES) + 2
    assert f"kept {n_kept} of {n_kept + len(EXPECTED_REJECTIONS)} files" in summary
    assert "decompression bomb" in summary and "duplicate (near-identical)" in summary
    total = [line for line in summary.splitlines() if line.startswith("total")][0]
    assert total.split()[-1] == str(n_kept)
    assert (study["out"] / "summary.txt").read_text() == summary + "\n"


# ---- decoding ------------------------------------------------------------------

def test_jpeg_draft_decodes_big_photos_at_a_fraction_and_looks_the_same():
    data = jpeg_bytes(photo(1, (1200, 900)))
    im, original, _ = pp.decode(data, size=100, min_side=16, max_pixels=pp.MAX_PIXELS)
    assert original == (1200, 900)
    assert im.size == (150, 113)                 # libjpeg's 1/8 scale, still covering 100 px
    fast = np.asarray(pp.resize_short_side(im, 100), dtype=np.float64)
    full = Image.open(io.BytesIO(data)).convert("RGB")
    slow = np.asarray(pp.resize_short_side(full, 100), dtype=np.float64)
    assert fast.shape == slow.shape == (100, 133, 3)
    assert np.abs(fast - slow).mean() < 2.0


@pytest.mark.parametrize("max_pixels", [2000, 1000])   # PIL warns above the limit, fails above twice it
def test_pixel_limit_rejects_bombs_and_is_restored(max_pixels):
    before = Image.MAX_IMAGE_PIXELS
    data = jpeg_bytes(photo(2, (64, 48)))                # 3072 pixels
    with pytest.raises(pp.Rejected, match="decompression bomb"):
        pp.decode(data, size=32, min_side=16, max_pixels=max_pixels)
    assert Image.MAX_IMAGE_PIXELS == before
    assert pp.decode(data, size=32, min_side=16, max_pixels=4000)[1] == (64, 48)


def test_truncated_jpeg_is_caught_even_when_only_the_end_is_missing():
    data = jpeg_bytes(photo(3, (640, 480)))
    with pytest.raises(pp.Rejected, match="truncated"):
        pp.decode(data[:-2], size=32, min_side=16, max_pixels=pp.MAX_PIXELS)


def test_output_paths_never_collide():
    sources = ["x.png", "x.jpg", "X.JPG", "a/b.tif", "a/b.jpeg"]
    paths = pp.output_paths(sources)
    assert paths["a/b.jpeg"] == "images/a/b.jpg" and paths["a/b.tif"] == "images/a/b-2.jpg"
    assert len({p.casefold() for p in paths.values()}) == 5         # unique even case-blind
    assert pp.output_paths(sources[::-1]) == paths


# ---- near-duplicates on the synthetic scenes -------------------------------------

def test_synthetic_scenes_are_not_near_duplicates_but_their_copies_are():
    synthetic = pytest.importorskip("biomeseason.synthetic")
    scenes, labels = [], []
    for b, biome in enumerate(synthetic.FILE_PREFIX):
        for month in range(1, 13):
            for seed in range(2):
                # Seeded per scene as write_scenes does: one seed shared by two biomes
                # gives both the same terrain and cloud layout.
                ss = np.random.SeedSequence([b, month, seed])
                scenes.append(Image.fromarray(synthetic.render_scene(biome, month, ss, 64)))
                labels.append((biome, month))
    copies = [Image.open(io.BytesIO(jpeg_bytes(im.resize((48, 48)), quality=50))).convert("RGB")
              for im in scenes[:12]]
    prints = [pp.fingerprint(pp.resize_short_side(im, 64)) for im in scenes + copies]
    hashes = np.array([h for h, _ in prints], dtype=np.uint64)
    thumbs = np.stack([np.frombuffer(t, np.uint8).reshape(16, 16, 3) for _, t in prints])
    pairs = {(i, j) for i, j, _ in pp.near_duplicate_pairs(hashes, thumbs)}
    n = len(scenes)
    assert pairs == {(i, n + i) for i in range(12)}


# ---- splits --------------------------------------------------------------------

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
    table["split"] = pp.assign_splits(table, 0.15, 0.15, seed=0)
    for biome, rows in table.groupby("biome"):
        counts = rows["split"].value_counts()
        for split, frac in [("val", 0.15), ("test", 0.15)]:
            assert abs(counts.get(split, 0) - frac * len(rows)) <= 1, (biome, split)
    a = table[table["biome"] == "A"]
    per_month = pd.crosstab(a["month"], a["split"])
    assert (per_month[["val", "test"]] >= 1).all().all()      # every month is in every split


def test_splits_are_deterministic_for_a_seed_and_differ_between_seeds():
    table = split_table()
    first = pp.assign_splits(table, 0.15, 0.15, seed=0)
    assert first.equals(pp.assign_splits(table.copy(), 0.15, 0.15, seed=0))
    assert not first.equals(pp.assign_splits(table, 0.15, 0.15, seed=1))
    # Row order does not matter, and another biome's images do not move this one's.
    shuffled = table.sample(frac=1.0, random_state=3)
    assert pp.assign_splits(shuffled, 0.15, 0.15, seed=0).sort_index().equals(first)
    more = pd.concat([table, split_table(n_per_month=0, extra=20).iloc[7:]], ignore_index=True)
    again = pp.assign_splits(more, 0.15, 0.15, seed=0)
    in_a = table.index[table["biome"] == "A"]
    assert again.loc[in_a].equals(first.loc[in_a])


def test_given_splits_are_kept():
    table = split_table(n_per_month=1, extra=0)
    table["given_split"] = ["test"] * 12
    assert (pp.assign_splits(table, 0.15, 0.15, seed=0) == "test").all()


def test_deal_spreads_evenly():
    dealt = pp.deal(20, {"train": 0.7, "val": 0.15, "test": 0.15})
    assert [dealt.count(s) for s in ("train", "val", "test")] == [14, 3, 3]
    assert "test" in dealt[:10] and "test" in dealt[10:]


def test_preprocess_splits_are_deterministic_end_to_end(tmp_path):
    raw = tmp_path / "raw"
    for i in range(40):
        save(photo(100 + i), raw / f"{['Boreal', 'DV'][i % 2]}_{MONTH_ABBR[i % 12]}_{i:04d}.jpg")
    runs = [pp.preprocess(raw, tmp_path / f"out{seed}{k}", seed=seed, **RUN)
            for seed, k in [(0, "a"), (0, "b"), (1, "a")]]
    assert runs[0].manifest["split"].equals(runs[1].manifest["split"])
    assert not runs[0].manifest["split"].equals(runs[2].manifest["split"])
    assert set(runs[0].manifest["split"]) == {"train", "val", "test"}


# ---- folder layouts ----------------------------------------------------------------

@pytest.mark.parametrize("path, biome, month", [
    ("Boreal/Jun/x.jpg", "boreal_forest", 6),
    ("taiga/06/x.jpg", "boreal_forest", 6),
    ("Boreal/x.jpg", "boreal_forest", None),
    ("Boreal/Boreal_Jul_0001.jpg", "boreal_forest", 7),        # the name gives the month
    ("Boreal/img_7.jpg", "boreal_forest", None),               # a number is an index here
    ("batch1/DV_Sept.jpg", "desert", 9),                       # a grouping folder
    ("DV_Sept.jpg", "desert", 9),
])
def test_labels_from_folders(path, biome, month):
    label = pp.labels_from_path(path.split("/"), pp.load_vocabulary(None, []))
    assert (label.biome, label.month) == (biome, month)


@pytest.mark.parametrize("path, reason", [
    ("Boreal/Tundra_Jan.jpg", "folder says boreal_forest but the file name says tundra"),
    ("Nowhere/x.jpg", "folder 'Nowhere' is not a known biome"),
    ("Nowhere/Jun/x.jpg", "folder 'Nowhere' is not a known biome"),
    ("Boreal/Smarch/x.jpg", "folder 'Smarch' is not a month"),
    ("Boreal/Jun/deep/x.jpg", "nested too deep"),
])
def test_unreadable_folders_are_rejected(path, reason):
    with pytest.raises(pp.LabelError, match=reason):
        pp.labels_from_path(path.split("/"), pp.load_vocabulary(None, []))


def test_split_folders_are_kept_and_duplicates_resolved_across_them(tmp_path):
    raw = tmp_path / "raw"
    for i in range(4):
        save(photo(200 + i), raw / "train" / "Boreal" / f"a{i}.jpg")
    save(photo(210), raw / "val" / "Boreal" / "b.jpg")
    save(photo(211), raw / "test" / "Boreal" / "c.jpg")
    shutil.copyfile(raw / "test" / "Boreal" / "c.jpg", raw / "train" / "Boreal" / "leak.jpg")
    save(photo(212, (96, 72)), raw / "train" / "Tundra" / "d.jpg", quality=95)
    save(photo(212, (64, 48)), raw / "val" / "Tundra" / "d_small.jpg", quality=70)
    result = pp.preprocess(raw, tmp_path / "out", **RUN)
    table = result.manifest.set_index("source")
    assert table.loc["val/Boreal/b.jpg", "split"] == "val"
    assert table.loc["test/Boreal/c.jpg", "split"] == "test"
    assert (table.loc[[f"train/Boreal/a{i}.jpg" for i in range(4)], "split"] == "train").all()
    assert table.loc["val/Tundra/d_small.jpg", "split"] == "val"   # the held-out copy wins, though smaller
    assert table.loc["train/Boreal/a0.jpg", "month"] is pd.NA and table.loc["train/Boreal/a0.jpg", "season"] == ""
    rejected = dict(zip(result.rejected["source"], result.rejected["reason"]))
    assert rejected == {
        "train/Boreal/leak.jpg": "duplicate of test/Boreal/c.jpg (identical bytes)",
        "train/Tundra/d.jpg": rejected["train/Tundra/d.jpg"],
    }
    assert rejected["train/Tundra/d.jpg"].startswith("duplicate of val/Tundra/d_small.jpg (near-identical")


def test_vocab_folders_takes_the_classes_from_folder_names(tmp_path):
    raw = tmp_path / "raw"
    for i, path in enumerate(["train/AnnualCrop/AnnualCrop_1.jpg", "train/River/River_2.jpg",
                              "test/River/River_3.jpg", "test/Forest/Forest_12.jpg", "loose_Jan.jpg"]):
        save(photo(300 + i), raw / path)
    result = pp.preprocess(raw, tmp_path / "out", vocab="folders", **RUN)
    labels = json.loads((tmp_path / "out" / "labels.json").read_text())
    assert labels["biomes"] == ["AnnualCrop", "Forest", "River"]
    table = result.manifest.set_index("source")
    assert table.loc["train/River/River_2.jpg", "biome"] == "River"
    assert table["month"].isna().all()                 # picture numbers are not months
    assert list(table["split"]) == ["test", "test", "train", "train"]
    assert list(result.rejected["source"]) == ["loose_Jan.jpg"]


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
    kept = {r.source: (r.biome, r.month if pd.notna(r.month) else None) for r in result.manifest.itertuples()}
    assert kept == {"a.jpg": ("boreal_forest", 6), "b.jpg": ("", 7), "c.jpg": ("tropical_grassland", None),
                    "sub/g.jpg": ("tropical_rainforest", 12)}
    rejected = dict(zip(result.rejected["source"], result.rejected["reason"]))
    assert rejected == {
        "d.jpg": "label: biome 'Jungle' in the labels CSV is not in the vocabulary",
        "e.jpg": "label: month 'Smarch' in the labels CSV is not a month",
        "f.jpg": "label: not listed in the labels CSV",
        "h.jpg": "label: biome and month both blank in the labels CSV",
        "labels.csv": "ignored: the labels CSV",
    }
    assert "1 row(s) of the labels CSV name no file" in result.summary


@pytest.mark.parametrize("content, message", [
    ("file,biome\na.jpg,Boreal\n", "needs a 'path' column"),
    ("path,biome\na.jpg,Boreal\n./a.jpg,Tundra\n", "more than once"),
])
def test_malformed_labels_csv_is_an_error(tmp_path, content, message):
    (tmp_path / "raw").mkdir()
    (tmp_path / "labels.csv").write_text(content)
    with pytest.raises(ValueError, match=message):
        pp.preprocess(tmp_path / "raw", tmp_path / "out", labels_csv=tmp_path / "labels.csv", **RUN)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["labels.csv", "raw"]


# ---- safety ----------------------------------------------------------------------

@pytest.fixture
def small_raw(tmp_path):
    raw = tmp_path / "raw"
    for i, name in enumerate(["Boreal_Jan_1.jpg", "DV_Feb_1.jpg", "Tundra_Mar_1.jpg", "USGrass_Apr_1.jpg"]):
        save(photo(500 + i), raw / name)
    return raw


def test_out_inside_raw_or_raw_inside_out_is_refused(small_raw, tmp_path):
    before = tree_hashes(small_raw)
    with pytest.raises(ValueError, match="inside --raw"):
        pp.preprocess(small_raw, small_raw / "processed", **RUN)
    with pytest.raises(ValueError, match="inside --raw"):
        pp.preprocess(small_raw, small_raw, **RUN)
    with pytest.raises(ValueError, match="inside --out"):
        pp.preprocess(small_raw, tmp_path, **RUN)
    assert tree_hashes(small_raw) == before


def test_a_folder_we_did_not_write_is_never_replaced(small_raw, tmp_path):
    out = tmp_path / "precious"
    out.mkdir()
    (out / "thesis.tex").write_text("years of work")
    with pytest.raises(ValueError, match="refusing to replace"):
        pp.preprocess(small_raw, out, **RUN)
    assert [p.name for p in out.iterdir()] == ["thesis.tex"]


def test_an_interrupted_run_leaves_the_previous_output_valid(small_raw, tmp_path, monkeypatch):
    out = tmp_path / "processed"
    pp.preprocess(small_raw, out, **RUN)
    before = tree_hashes(out)
    save(photo(600), small_raw / "Deciduous_May_1.jpg")        # something new to process
    real, calls = pp.process_file, []

    def interrupted(job):
        calls.append(job)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(job)

    monkeypatch.setattr(pp, "process_file", interrupted)
    with pytest.raises(KeyboardInterrupt):
        pp.preprocess(small_raw, out, **RUN)
    assert tree_hashes(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["processed", "raw"]


def test_empty_raw_folder(tmp_path):
    (tmp_path / "raw").mkdir()
    result = pp.preprocess(tmp_path / "raw", tmp_path / "out", **RUN)
    assert result.manifest.empty and result.rejected.empty
    assert (tmp_path / "out" / "manifest.csv").read_text().strip() == ",".join(pp.MANIFEST_COLUMNS)
    assert "kept 0 of 0 files" in result.summary


@pytest.mark.parametrize("kwargs, message", [
    (dict(val_frac=0.5, test_frac=0.5), "sum below 1"),
    (dict(hemisphere="east"), "hemisphere"),
    (dict(min_side=64), "min_side <= size"),
])
def test_bad_settings_are_refused_before_any_work(small_raw, tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
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
    bad = subprocess.run([sys.executable, str(ROOT / "dataset_preproc.py"), "--raw", str(tmp_path / "nope")],
                         capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert bad.returncode == 2 and "raw folder not found" in bad.stderr
