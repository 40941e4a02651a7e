"""The helpers of bench/recipe.py (imported by it and by bench/real_data.py; not a benchmark).

- data: the Blue Marble tiles split by region (``region_split``) through our preprocessing
  (``prepare_real``), and the synthetic upright stand-in set (``prepare_synthetic``);
- the two methods: ours (``run_ours``: ``train.fit``) and the plain torchvision recipe (``run_plain``);
- runs remembered in ``--work``/results.json under their settings (``measure``, ``key_of``), so an
  interrupted or extended bench repeats only what is new.
"""
from __future__ import annotations

import datetime
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
import torchvision  # noqa: E402
from torchvision.transforms import v2  # noqa: E402

from biomeseason.io import files  # noqa: E402
from biomeseason.io.files import UsageError  # noqa: E402

PLAIN = {"optimizer": "SGD", "momentum": 0.9, "weight_decay": 5e-4, "max_lr": 0.1, "batch_size": 64}
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


# ---------------------------------------------------------------- data

def region_split(labels: pd.DataFrame) -> pd.DataFrame:
    """labels.csv with a 'split' column: per biome, the largest region trains, the next tests, the third validates."""
    split = {}
    for biome, rows in labels.groupby("biome"):
        counts = rows.groupby("region").size()
        ranked = sorted(counts.index, key=lambda r: (-counts[r], r))
        if len(ranked) < 2:
            raise UsageError(f"biome {biome} has a single region; a split by region needs two or more")
        for i, region in enumerate(ranked):
            split[biome, region] = "test" if i == 1 else "val" if i == 2 else "train"
    return labels.assign(split=[split[b, r] for b, r in zip(labels["biome"], labels["region"])])


def prepare_real(data: Path, tmp: Path, seed: int) -> tuple[Path, pd.DataFrame]:
    """The tiles, split by region, through our preprocessing; checks that every tile and split survived."""
    from biomeseason.prepare.preprocess import preprocess

    labels = region_split(pd.read_csv(data / "labels.csv"))
    table = labels.assign(group=labels["tile_id"])[["path", "biome", "month", "group", "split", "lat"]]
    files.write_csv(tmp / "labels_by_region.csv", table)
    result = preprocess(raw=data, out=tmp / "real", labels_csv=tmp / "labels_by_region.csv", size=32,
                        seed=seed, workers=1, progress=False)
    m = result.manifest.merge(labels[["path", "region", "tile_id", "split"]].rename(
        columns={"path": "source", "split": "given"}), on="source", how="left")
    lost = sorted(set(labels["path"]) - set(m["source"]))
    assert not lost, f"preprocessing dropped {len(lost)} tiles, e.g. {lost[:3]}"
    moved = m[m["split"] != m["given"]]
    assert moved.empty, f"{len(moved)} tiles moved out of their region's split, e.g. {moved['source'].head(3).tolist()}"
    straddle = m.groupby("tile_id")["split"].nunique()
    assert (straddle == 1).all(), f"tiles in two splits: {straddle[straddle > 1].index[:3].tolist()}"
    region_straddle = m.groupby("region")["split"].nunique()
    assert (region_straddle == 1).all(), "a region in two splits"
    print(f"real tiles: kept {len(m)} of {len(labels)}; {m['group'].nunique()} groups "
          f"({m['tile_id'].nunique()} tiles, each in one split)")
    return tmp / "real", m


def prepare_synthetic(tmp: Path, s: dict) -> tuple[Path, pd.DataFrame]:
    from biomeseason.prepare.preprocess import preprocess
    from biomeseason.synthetic import generate as synthetic

    synthetic.write_scenes(tmp / "scenes", per_class=s["per_class"], seed=s["seed"], size=s["scene_size"],
                           look="orbital", workers=1, progress=False)
    result = preprocess(raw=tmp / "scenes", out=tmp / "synthetic", size=s["scene_size"], seed=s["seed"],
                        workers=1, progress=False)
    m = result.manifest
    expected = s["per_class"] * 7 * 12
    assert len(m) == expected, f"synthetic: kept {len(m)} of {expected} scenes"
    print(f"synthetic orbital scenes: kept {len(m)} of {expected}")
    return tmp / "synthetic", m


def counts_table(m: pd.DataFrame) -> str:
    t = pd.crosstab(m["biome"], m["split"], margins=True, margins_name="total")
    return t[[c for c in ("train", "val", "test", "total") if c in t]].to_string()


# ---------------------------------------------------------------- the two methods

def run_ours(processed: Path, out: Path, s: dict, changes: dict, domain: str = "") -> dict:
    """``train.fit`` with the project's defaults but for ``changes``; the test split's biome accuracy and
    month within +-1, of the images of one ``domain`` (a manifest column's value) when given."""
    from biomeseason.training.evaluation import test_metrics_by
    from biomeseason.training.loop import TrainConfig, fit

    cfg = TrainConfig(data=str(processed), out=str(out), epochs=s["epochs"], image_size=s["size"],
                      seed=s["seed"], progress=False, **changes)
    t0 = time.perf_counter()
    result = fit(cfg)
    seconds = time.perf_counter() - t0
    test = result.metrics["test"]
    if domain:
        test = test_metrics_by(out, processed, "domain").loc[domain].to_dict()
    given = result.metrics["test"].get("biome_acc_with_lat")   # over the test images that have a latitude
    return {"biome_acc": test["biome_acc"], "month_within1": test["month_within1"], "seconds": seconds,
            "best_epoch": result.metrics.get("epoch"), "biome_acc_with_lat": given}


class TensorFolder(torch.utils.data.Dataset):
    """ImageFolder's contract (classes sorted by name, (image, class index) samples) over decoded tensors."""

    def __init__(self, root: Path, rows: pd.DataFrame, classes: list, transform, target: str = "biome"):
        from biomeseason.io.images import read_image

        self.classes = classes
        self.targets = [classes.index(b) for b in rows[target]]
        # The tiles are tiny: decode them once, as ImageFolder would on every epoch.
        self.images = [v2.functional.pil_to_tensor(read_image(root / p).image) for p in rows["path"]]
        self.transform = transform

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return self.transform(self.images[i]), self.targets[i]

def run_plain(processed: Path, s: dict, target: str = "biome") -> dict:
    """The torchvision classification recipe on one label (``biome``, or ``month``: its own network,
    calendar months as classes); test accuracy (biome) or month within +-1 after the last epoch."""
    m = pd.read_csv(processed / "manifest.csv", dtype=str, keep_default_na=False)
    m = m[m[target] != ""]
    if target == "month":
        m = m.assign(month=m["month"].astype(int))
    classes = sorted(m[target].unique())
    train_tf = v2.Compose([v2.Resize(s["size"], antialias=True), v2.RandomHorizontalFlip(),
                           v2.ToDtype(torch.float32, scale=True), v2.Normalize(MEAN, STD)])
    test_tf = v2.Compose([v2.Resize(s["size"], antialias=True),
                          v2.ToDtype(torch.float32, scale=True), v2.Normalize(MEAN, STD)])
    train = TensorFolder(processed, m[m["split"] == "train"], classes, train_tf, target)
    test = TensorFolder(processed, m[m["split"] == "test"], classes, test_tf, target)
    torch.manual_seed(s["seed"])
    loader = torch.utils.data.DataLoader(train, batch_size=PLAIN["batch_size"], shuffle=True,
                                         generator=torch.Generator().manual_seed(s["seed"]))
    model = torchvision.models.resnet18(weights=None, num_classes=len(classes))
    opt = torch.optim.SGD(model.parameters(), lr=PLAIN["max_lr"], momentum=PLAIN["momentum"],
                          weight_decay=PLAIN["weight_decay"])
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=PLAIN["max_lr"], epochs=s["epochs"],
                                                steps_per_epoch=len(loader))
    t0 = time.perf_counter()
    for epoch in range(s["epochs"]):
        model.train()
        total = 0.0
        for x, y in loader:
            loss = torch.nn.functional.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(y)
        print(f"plain epoch {epoch + 1}/{s['epochs']}: train loss {total / len(train):.3f}", flush=True)
    share, given = _plain_test(model, test, m, classes, target)
    return {"biome_acc": share if target == "biome" else None,
            "month_within1": share if target == "month" else None, "seconds": time.perf_counter() - t0,
            "biome_acc_with_lat": given}


def _plain_test(model, test: TensorFolder, m: pd.DataFrame, classes: list, target: str) -> tuple[float, float | None]:
    """The share right on the test split (month: within +-1, circularly) and, for the biome, the share right
    given each test image's latitude too (else None)."""
    model.eval()
    right, probs = [], []
    with torch.no_grad():
        for x, y in torch.utils.data.DataLoader(test, batch_size=256):
            out = model(x)
            p = out.argmax(1)
            probs.append(out.softmax(1))
            if target == "month":   # circular distance between month indices (classes are 1..12)
                d = (p - y).abs() % len(classes)
                right.append(torch.minimum(d, len(classes) - d) <= 1)
            else:
                right.append(p == y)
    share = torch.cat(right).float().mean().item()
    given = None
    if target == "biome" and "lat" in m:   # the same geographic prior as ours (the label map's), on its softmax
        from biomeseason.earth import geoprior

        te = m[m["split"] == "test"]
        prior, _ = geoprior.for_biomes(list(classes))
        lats = pd.to_numeric(te["lat"], errors="coerce").to_numpy()
        known = ~np.isnan(lats)
        if prior and known.any():
            answer = prior.apply(torch.cat(probs).numpy(), lats).argmax(1)
            given = float((answer == np.array(test.targets))[known].mean())
    return share, given


# ---------------------------------------------------------------- runs, remembered

def remembered(work: Path) -> dict:
    path = work / "results.json"
    try:
        return json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, ValueError):
        return {}


def measure(key: str, work: Path, fresh: set, run, needs: tuple = ()) -> dict:
    """A run's result: remembered from an earlier run with the same settings (and every figure of
    ``needs``), or measured and remembered.

    The file is read again before each run and each write, so two benches may share ``--work``.
    """
    cache = remembered(work)
    if key in cache and key not in fresh and all(k in cache[key] for k in needs):
        print(f"{key}: from an earlier run ({cache[key]['date']})", flush=True)
        return cache[key]
    print(f"{key}: training", flush=True)
    result = {**run(), "date": datetime.datetime.now().isoformat(timespec="seconds")}
    files.claim_dir(work, flag="--work")
    files.write_json(work / "results.json", {**remembered(work), key: result})
    return result


def key_of(data: str, method: str, s: dict, changes: dict | None = None) -> str:
    shown = {k: s[k] for k in ("epochs", "size", "seed")}
    if data == "synthetic":
        shown.update(per_class=s["per_class"], scene_size=s["scene_size"])
    return f"{data} | {method} | {json.dumps({**shown, **(changes or {})}, sort_keys=True)}"
