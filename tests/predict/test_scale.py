"""Prediction at scale: shares of the images under torchrun, one output, --resume across runs of
any number of processes, and Parquet output."""
from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_predict import interrupt_forward

from biomeseason.__main__ import main as cli
from biomeseason.io import distributed, files
from biomeseason.labels import Vocabulary
from biomeseason.model.checkpoint import save_checkpoint
from biomeseason.model.network import BiomeSeasonNet
from biomeseason.model.presets import IMAGENET_MEAN, IMAGENET_STD
from biomeseason.predict import output
from biomeseason.predict import predictor as predict
from biomeseason.predict.rows import COLUMNS

ROOT = Path(__file__).resolve().parents[2]
FLOATS = [c for c in COLUMNS if c.endswith("_p") or c in ("lat", "lon", "familiarity")]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    import torch

    torch.manual_seed(0)
    biomes = Vocabulary.load().biomes
    meta = {"arch": "resnet18", "biomes": biomes, "months": list(range(1, 13)), "hemisphere": "north",
            "image_size": 32, "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD), "config": {}, "metrics": {},
            "epoch": 1}
    return save_checkpoint(tmp_path_factory.mktemp("model") / "best.pt",
                           BiomeSeasonNet("resnet18", num_biomes=len(biomes)).state_dict(), meta)


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("photos")
    for i in range(9):
        pixels = np.random.default_rng(i).integers(0, 256, (50, 60 + i, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"img_{i:02d}.{'jpg' if i % 2 else 'png'}")
    (folder / "bad.jpg").write_text("not an image")
    return folder


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def same_rows(a: list[dict], b: list[dict]) -> None:
    """The same images in the same order with the same answers; probabilities within 1e-4 (a batch
    of other images sums in another order)."""
    assert [r["path"] for r in a] == [r["path"] for r in b]
    for x, y in zip(a, b):
        assert {k: v for k, v in x.items() if k not in FLOATS} == {k: v for k, v in y.items() if k not in FLOATS}
        for k in FLOATS:
            assert (x[k] == "") == (y[k] == "") and (x[k] == "" or abs(float(x[k]) - float(y[k])) <= 1e-4), k


def torchrun(args: list[str], processes: int = 2, **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                           f"--nproc_per_node={processes}", "-m", "biomeseason", "predict", *args],
                          capture_output=True, text=True, timeout=600, env=env, cwd=kwargs.get("cwd"))


# --------------------------------------------------------------------------- shares

@pytest.mark.parametrize("n", [0, 1, 2, 7, 11])
@pytest.mark.parametrize("world", [1, 2, 3])
def test_shares_are_contiguous_and_cover_every_item_once(n, world):
    slices = [distributed.share(n, distributed.Dist(rank, world)) for rank in range(world)]
    items = list(range(n))
    assert [i for s in slices for i in items[s]] == items
    assert max(len(items[s]) for s in slices) - min(len(items[s]) for s in slices) <= 1


def test_items_already_done_weigh_nothing_in_the_shares():
    weights = [0] * 8 + [1] * 4     # the first eight were predicted by an earlier run
    first, second = (distributed.share(12, distributed.Dist(rank, 2), weights) for rank in range(2))
    assert sum(weights[first]) == sum(weights[second]) == 2


# --------------------------------------------------------------------------- torchrun

@pytest.mark.slow
def test_two_processes_write_the_rows_of_one(checkpoint, photos, tmp_path):
    common = [str(photos), "--model", str(checkpoint), "--batch-size", "2", "--workers", "0", "--device", "cpu"]
    one, two = tmp_path / "one.csv", tmp_path / "two.csv"
    assert cli(["predict", *common, "--out", str(one)]) == 0

    run = torchrun([*common, "--out", str(two)])

    assert run.returncode == 0, run.stderr[-3000:]
    same_rows(read_csv(two), read_csv(one))
    assert "predicted 9 of 10 images" in run.stderr and "bad.jpg" in run.stderr
    # no partial file, no lock left; beside each output the list of what it skipped (the folder holds a bad file)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one.csv", "one.skipped.csv", "two.csv", "two.skipped.csv"]


def interrupted_parts(complete: list[dict], out: Path) -> None:
    """What a two-process run stopped midway leaves: the first process's partial file with two rows
    of its share, the second's with one whole row of its share and one cut by the kill."""
    files.write_rows(output.partial_path(out), complete[:2], COLUMNS)
    second = output.part_path(out, 1)
    files.write_rows(second, complete[5:7], COLUMNS)
    second.write_bytes(second.read_bytes()[:-30])


@pytest.mark.slow
def test_resume_across_runs_of_any_number_of_processes(checkpoint, photos, tmp_path):
    common = [str(photos), "--model", str(checkpoint), "--batch-size", "2", "--workers", "0", "--device", "cpu"]
    complete = tmp_path / "complete.csv"
    assert cli(["predict", *common, "--out", str(complete)]) == 0
    rows = read_csv(complete)

    # Two processes stopped; one process resumes them.
    out = tmp_path / "a.csv"
    interrupted_parts(rows, out)
    assert cli(["predict", *common, "--out", str(out), "--resume"]) == 0
    same_rows(read_csv(out), rows[:2] + rows[5:6] + rows[2:5] + rows[6:])   # the rows kept, then the others
    assert not output.other_parts(out) and not output.partial_path(out).exists()

    # One process stopped; two resume it, one of them doing what is left.
    out = tmp_path / "b.csv"
    files.write_rows(output.partial_path(out), rows[:4], COLUMNS)
    run = torchrun([*common, "--out", str(out), "--resume"])
    assert run.returncode == 0, run.stderr[-3000:]
    same_rows(read_csv(out), rows)
    assert "4 rows kept from before" in run.stderr and "predicted 5 of 10" in run.stderr
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".skipped.csv")) == ["a.csv", "b.csv",
                                                                                              "complete.csv"]


def test_a_new_run_without_resume_drops_the_parts_of_a_stopped_one(checkpoint, photos, tmp_path):
    common = [str(photos), "--model", str(checkpoint), "--batch-size", "4", "--workers", "0", "--device", "cpu"]
    complete = tmp_path / "complete.csv"
    assert cli(["predict", *common, "--out", str(complete)]) == 0
    out = tmp_path / "p.csv"
    interrupted_parts([{**r, "biome": "stale"} for r in read_csv(complete)], out)
    mine = tmp_path / "p.csv.partial.notes"      # not a part of ours: left alone
    mine.write_text("my notes")

    assert cli(["predict", *common, "--out", str(out)]) == 0

    assert out.read_bytes() == complete.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".skipped.csv")) == [
        "complete.csv", "p.csv", "p.csv.partial.notes"]


def test_a_part_that_is_not_ours_is_refused(checkpoint, photos, tmp_path, capsys):
    out = tmp_path / "p.csv"
    output.part_path(out, 3).write_text("my,own\n1,2\n")
    assert cli(["predict", str(photos), "--model", str(checkpoint), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "p.csv.partial.3" in err and "--force" in err and len(err.splitlines()) == 1


# --------------------------------------------------------------------------- Parquet

def test_parquet_without_pyarrow_is_one_sentence_before_any_work(checkpoint, photos, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "pyarrow", None)      # as where it is not installed
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    out = tmp_path / "p.parquet"
    assert cli(["predict", str(photos), "--model", str(checkpoint), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "pip install pyarrow" in err and len(err.splitlines()) == 1
    assert not list(tmp_path.iterdir())


def test_parquet_holds_the_rows_of_the_csv_typed_in_row_groups(checkpoint, photos, tmp_path, monkeypatch):
    pq = pytest.importorskip("pyarrow.parquet")
    common = [str(photos), "--model", str(checkpoint), "--batch-size", "3", "--workers", "0", "--device", "cpu"]
    as_csv, as_parquet = tmp_path / "p.csv", tmp_path / "p.parquet"
    assert cli(["predict", *common, "--out", str(as_csv)]) == 0
    write = files.write_parquet
    monkeypatch.setattr(files, "write_parquet", lambda *a, **k: write(*a, **{**k, "row_group_rows": 4}))

    assert cli(["predict", *common, "--out", str(as_parquet)]) == 0

    table = pq.ParquetFile(as_parquet)
    assert table.metadata.num_row_groups == 3 and table.metadata.num_rows == 9     # 4 + 4 + 1
    assert table.schema_arrow.field("biome_p").type == "double" and table.schema_arrow.field("month").type == "int64"
    rows = table.read().to_pylist()
    assert rows[0]["unfamiliar"] is None and rows[0]["lat"] is None and isinstance(rows[0]["month_top2"], int)
    with open(as_csv, newline="") as f:
        expected = list(csv.DictReader(f))
    assert [{k: "" if v is None else str(v) for k, v in r.items()} for r in rows] == expected
    assert not list(tmp_path.glob("*.partial*")) and not list(tmp_path.glob(".*tmp"))


def test_resume_into_parquet_gives_the_same_file(checkpoint, photos, tmp_path, monkeypatch, capsys):
    pq = pytest.importorskip("pyarrow.parquet")
    base = ["predict", str(photos), "--model", str(checkpoint), "--batch-size", "3", "--workers", "0"]
    complete = tmp_path / "complete.parquet"
    assert cli([*base, "--out", str(complete)]) == 0

    out = tmp_path / "p.parquet"
    forward = interrupt_forward(monkeypatch, at_call=2)
    assert cli([*base, "--out", str(out)]) == 130
    assert not out.exists() and len(read_csv(output.partial_path(out))) == 3
    monkeypatch.setattr(predict.Predictor, "_forward", forward)
    assert cli([*base, "--out", str(out), "--resume"]) == 0
    assert pq.read_table(out).equals(pq.read_table(complete))
    assert "3 rows kept" in capsys.readouterr().err

    # A complete Parquet output is resumed from too: nothing to do, nothing changed.
    before = out.read_bytes()
    assert cli([*base, "--out", str(out), "--resume"]) == 0
    assert out.read_bytes() == before and "biomes: " in capsys.readouterr().out


def test_parquet_that_is_not_ours_is_refused(checkpoint, photos, tmp_path, capsys):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    out = tmp_path / "theirs.parquet"
    pq.write_table(pa.table({"x": [1, 2]}), out)
    before = out.read_bytes()
    assert cli(["predict", str(photos), "--model", str(checkpoint), "--out", str(out)]) == 2
    assert "not written by biomeseason" in capsys.readouterr().err and out.read_bytes() == before
