"""The memory-mapped store: the same pixels as decoding the processed images, shared by workers."""
from __future__ import annotations

import pickle
import shutil

import numpy as np
import torch
from torch.utils.data import DataLoader

from biomeseason.io.images import read_image, resize_short_side
from biomeseason.prepare import store
from biomeseason.prepare.manifest import read_manifest


def _copy(tiny_processed, tmp_path):
    target = tmp_path / "processed"
    shutil.copytree(tiny_processed, target)
    return target


def test_store_holds_exactly_the_decoded_pixels(tiny_processed, tmp_path):
    processed = _copy(tiny_processed, tmp_path)
    info = store.write_store(processed, short_side=48, progress=False)
    df = read_manifest(processed)
    assert sum(s["count"] for s in info["splits"].values()) == len(df)
    for split in ("train", "val", "test"):
        rows = df[df["split"] == split]
        images = store.open_split(processed, split)
        assert len(images) == len(rows)
        for i, rel in enumerate(rows["path"][:5]):
            expected = np.asarray(resize_short_side(read_image(processed / rel, min_size=48).image, 48))
            got = images[i].permute(1, 2, 0).numpy()
            assert got.dtype == np.uint8 and min(got.shape[:2]) == min(48, *expected.shape[:2])
            assert np.array_equal(got, expected)


def test_a_changed_manifest_or_a_too_small_store_is_not_used(tiny_processed, tmp_path):
    processed = _copy(tiny_processed, tmp_path)
    store.write_store(processed, short_side=32, progress=False)
    assert store.open_split(processed, "train", short_side=32) is not None
    assert store.open_split(processed, "train", short_side=64) is None
    manifest = processed / "manifest.csv"
    manifest.write_text(manifest.read_text() + "\n")
    assert store.open_split(processed, "train") is None


def test_incomplete_store_is_not_used(tiny_processed, tmp_path):
    processed = _copy(tiny_processed, tmp_path)
    store.write_store(processed, short_side=32, progress=False)
    (processed / "store" / "store.json").unlink()
    assert store.open_split(processed, "train") is None


def test_split_pickles_without_its_mapping_and_loads_in_worker_processes(tiny_processed, tmp_path):
    processed = _copy(tiny_processed, tmp_path)
    store.write_store(processed, short_side=32, progress=False)
    images = store.open_split(processed, "train")
    first = images[0]
    clone = pickle.loads(pickle.dumps(images))
    assert clone._flat is None and torch.equal(clone[0], first)

    class Square(torch.utils.data.Dataset):
        def __len__(self):
            return len(images)

        def __getitem__(self, i):
            return images[i][:, :32, :32].float().mean()

    means = torch.cat(list(DataLoader(Square(), batch_size=8, num_workers=2)))
    assert torch.allclose(means, torch.stack([Square()[i] for i in range(len(images))]))


def test_training_reads_the_store_when_there_is_one(tiny_processed, tmp_path):
    from biomeseason.training.dataset import ProcessedImages, read_class_lists

    processed = _copy(tiny_processed, tmp_path)
    df = read_manifest(processed)
    rows = df[df["split"] != "test"]           # rows of two splits, as when val is carved out of train
    classes = read_class_lists(processed)
    assert ProcessedImages(processed, rows, classes, 48).stored is not None  # preprocessing wrote one
    shutil.rmtree(processed / "store")
    decoded = ProcessedImages(processed, rows, classes, 48, cache=True)
    assert decoded.stored is None
    store.write_store(processed, short_side=64, progress=False)
    mapped = ProcessedImages(processed, rows, classes, 48, cache=True)
    assert mapped.stored is not None and mapped.images is None
    for i in range(len(rows)):
        a, b = decoded.image(i), mapped.image(i)
        assert a.shape == b.shape
        assert (a.float() - b.float()).abs().mean() < 4  # two resamplers, the same picture
    assert torch.equal(mapped.biome, decoded.biome)


def test_preprocessing_writes_the_store_unless_asked_not_to(tmp_path):
    from PIL import Image

    from biomeseason.prepare.preprocess import preprocess

    raw = tmp_path / "raw"
    raw.mkdir()
    for i, name in enumerate(["Boreal_Jan.png", "DV_Jul.png", "Tundra_Mar.png"]):
        Image.new("RGB", (80, 60), (40 * i, 90, 30)).save(raw / name)
    preprocess(raw, tmp_path / "both", size=48, workers=1, progress=False)
    preprocess(raw, tmp_path / "png", size=48, workers=1, progress=False, store="png")
    found = store.locate(tmp_path / "both", 48)
    assert found is not None and len(found[1]) == 3
    assert store.locate(tmp_path / "png") is None
    assert len(list((tmp_path / "png" / "images").iterdir())) == 3


def test_decoding_in_worker_processes_writes_the_same_store(tiny_processed, tmp_path, monkeypatch):
    one, two = _copy(tiny_processed, tmp_path / "one"), _copy(tiny_processed, tmp_path / "two")
    store.write_store(one, short_side=40, progress=False, workers=1)
    monkeypatch.setattr(store, "PARALLEL_FROM", 0)   # workers even for a tiny data set
    monkeypatch.setattr(store, "CHUNK", 5)            # several jobs per split, and a short last one
    store.write_store(two, short_side=40, progress=False, workers=2)
    for name in ("train.npy", "train.index.npy", "val.npy", "test.npy", "test.index.npy"):
        assert (one / "store" / name).read_bytes() == (two / "store" / name).read_bytes(), name
