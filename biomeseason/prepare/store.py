"""A memory-mapped uint8 store of the cleaned images: training reads it without decoding.

    from biomeseason import store
    store.write_store("data/processed", short_side=128)     # after preprocessing
    images = store.open_split("data/processed", "train")     # StoreSplit, or None if absent/stale
    images[i]                                                # (3, h, w) uint8 tensor, a view of the file

Layout, in ``processed/store/`` (written atomically, each file through
``files.atomic_path``; ``store.json`` last, so a store without it is incomplete):

    <split>.npy        uint8, shape (total,): the images of that split one after another,
                       each (h, w, 3) in row-major order, in manifest order
    <split>.index.npy  int64, shape (N, 3): offset, h, w of each image
    store.json         {"short_side": S, "manifest_sha256": ..., "splits": {split: {"count": N,
                       "bytes": total}}}

Why a flat array with an index rather than an (N, S, S, 3) block: cleaned
images keep their aspect ratio (short side S), and cropping them square here
would take from training its random crops of the whole scene.

Worker processes open the file themselves (the mapping is not pickled), so
every DataLoader worker and every DistributedDataParallel rank shares the one
page cache. A mapping's pages count in a process's resident memory once
touched; ``StoreSplit`` tells the kernel every ``RELEASE_EVERY`` reads that it
may drop them, so an epoch over 100,000 images does not look like gigabytes
resident (``bench/train.py`` measures it).
"""
from __future__ import annotations

import contextlib
import itertools
import json
import mmap
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ..io import files
from ..io.images import short_side_size
from ..io.workers import bounded_map, process_pool
from . import clean
from .manifest import SPLITS, manifest_sha256, read_manifest

FOLDER = "store"
SHORT_SIDE = 128        # stored short side: covers training at 96 px, and 128 px
RELEASE_EVERY = 512     # reads between hints to the kernel that mapped pages may be dropped
PARALLEL_FROM = 2000    # images: below this, starting worker processes costs more than it saves
CHUNK = 64              # images decoded per job in a worker


def write_store(processed, short_side: int = SHORT_SIDE, progress: bool = True, workers: int = 1) -> dict:
    """Write ``processed/store/`` from the processed images and the manifest; returns store.json.

    With ``workers`` > 1 the images are decoded in that many worker processes.
    """
    processed = Path(processed)
    if short_side < 8:
        raise files.UsageError(f"store short side must be at least 8 px, not {short_side}")
    df = read_manifest(processed, columns=["path", "split", "width", "height"])
    folder = files.claim_dir(processed / FOLDER)
    (folder / "store.json").unlink(missing_ok=True)  # incomplete until written again, last
    info = {"short_side": short_side, "manifest_sha256": manifest_sha256(processed), "splits": {}}
    bar = tqdm(total=len(df), desc="store", unit="img", disable=not progress)
    with contextlib.ExitStack() as stack:
        pool = stack.enter_context(process_pool(workers)) if workers > 1 and len(df) >= PARALLEL_FROM else None
        for split in SPLITS:
            rows = df[df["split"] == split]
            info["splits"][split] = _write_split(processed, folder, split, rows, short_side, pool, bar)
    bar.close()
    files.write_json(folder / "store.json", info)
    return info


def _write_split(processed: Path, folder: Path, split: str, rows, short_side: int, pool, bar) -> dict:
    """One split's flat pixel file and its index; decoding in ``pool``'s workers if there is one."""
    sizes = [short_side_size(int(w), int(h), short_side) for w, h in zip(rows["width"], rows["height"])]
    index = np.zeros((len(rows), 3), np.int64)
    if len(rows):
        nbytes = np.array([w * h * 3 for w, h in sizes], np.int64)
        index[:, 0] = np.concatenate([[0], np.cumsum(nbytes)[:-1]])
        index[:, 1] = [h for _, h in sizes]
        index[:, 2] = [w for w, _ in sizes]
    total = int(index[-1, 0] + index[-1, 1] * index[-1, 2] * 3) if len(rows) else 0
    # Written in order through a plain file, not a writable map: the pages of a map being
    # filled count as this process's resident memory until the kernel writes them out.
    with files.atomic_path(folder / f"{split}.npy") as tmp, open(tmp, "wb") as flat:
        np.lib.format.write_array_header_2_0(flat, {"descr": "|u1", "fortran_order": False, "shape": (total,)})
        jobs = ((str(processed / rel), short_side, (int(w), int(h))) for (_, h, w), rel in zip(index, rows["path"]))
        chunks = iter(lambda: list(itertools.islice(jobs, CHUNK)), [])
        decoded = itertools.chain.from_iterable(
            map(clean.store_pixels, chunks) if pool is None else bounded_map(pool, clean.store_pixels, chunks))
        for pixels, problem in decoded:
            if problem:
                raise files.UsageError(f"processed image {problem}; run the preprocessing again")
            flat.write(pixels)
            bar.update()
    with files.atomic_path(folder / f"{split}.index.npy") as tmp:
        with open(tmp, "wb") as f:
            np.save(f, index)
    return {"count": len(rows), "bytes": total}


def read_info(processed) -> dict | None:
    """store.json of a complete store that matches the current manifest, else None."""
    path = Path(processed) / FOLDER / "store.json"
    if not path.is_file():
        return None
    info = json.loads(path.read_text(encoding="utf-8"))
    if info.get("manifest_sha256") != manifest_sha256(processed):
        return None  # the manifest changed since: the store describes other data
    return info


class StoreSplit:
    """The images of one split as (3, h, w) uint8 tensors read from the mapped file.

    Picklable: the mapping is opened on first use in each process.
    """

    def __init__(self, processed, split: str):
        folder = Path(processed) / FOLDER
        self.path = folder / f"{split}.npy"
        self.index = np.load(folder / f"{split}.index.npy")
        self.short_side = int(json.loads((folder / "store.json").read_text())["short_side"])
        self._flat = None
        self._reads = 0

    def __len__(self) -> int:
        return len(self.index)

    def __getstate__(self):
        return {**self.__dict__, "_flat": None, "_reads": 0}

    def __getitem__(self, i: int):
        """(3, h, w) uint8 tensor of image ``i``."""
        import torch  # here, not at the top: preprocessing writes stores without loading torch (0.5 GB)

        if self._flat is None:
            self._flat = np.load(self.path, mmap_mode="r")
        offset, h, w = (int(v) for v in self.index[i])
        # A copy: the tensor must outlive the hint below, and transforms may write to it.
        pixels = np.array(self._flat[offset:offset + h * w * 3]).reshape(h, w, 3)
        self._reads += 1
        if self._reads % RELEASE_EVERY == 0:
            self.release()
        return torch.from_numpy(pixels).permute(2, 0, 1)  # (3, h, w)

    def release(self) -> None:
        """Let the kernel drop this process's mapped pages (they stay in the page cache)."""
        drop_mapped_pages(self._flat)


def drop_mapped_pages(array) -> None:
    """Tell the kernel that the pages of a read-only ``np.memmap`` that this process touched
    may leave its resident memory; they stay in the page cache. No-op for other arrays."""
    mm = getattr(array, "_mmap", None)
    if mm is not None and hasattr(mm, "madvise") and hasattr(mmap, "MADV_DONTNEED"):
        mm.madvise(mmap.MADV_DONTNEED)


def open_split(processed, split: str, short_side: int | None = None) -> StoreSplit | None:
    """The store of ``split`` if a complete, current one exists with at least ``short_side``, else None."""
    info = read_info(processed)
    if info is None or split not in info["splits"]:
        return None
    if short_side is not None and info["short_side"] < short_side:
        return None  # stored smaller than training wants: read the processed images instead
    return StoreSplit(processed, split)


def locate(processed, short_side: int | None = None) -> tuple[dict[str, StoreSplit], dict[str, tuple[str, int]]] | None:
    """({split: StoreSplit}, {manifest path: (split, position)}) of a usable store, else None.

    Training may move images between splits (a validation split carved out of
    train), so it finds each image by its path, not by its split.
    """
    info = read_info(processed)
    if info is None or (short_side is not None and info["short_side"] < short_side):
        return None
    df = read_manifest(processed)
    where = {}
    for split in info["splits"]:
        for position, path in enumerate(df.loc[df["split"] == split, "path"]):
            where[path] = (split, position)
    return {split: StoreSplit(processed, split) for split in info["splits"]}, where
