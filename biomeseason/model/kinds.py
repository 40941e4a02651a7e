"""Camera kinds: one checkpoint that reads monthly composites one way and photos of other cameras another.

    payload = kinds.select(load_checkpoint(path), "photo")   # as a checkpoint of that kind alone would be
    kinds.names(payload)                                     # ["composite", "photo"], or [] for most models

The Earth model learns one camera well: the cloud-free monthly composites it trains on. Taught other
cameras as well, a whole network reads them better and the composites a little worse (README, "Per
camera"). A network that keeps every weight of the composite model but a few, its own for other cameras
(``network.camera_own``: the first convolution and stage, every batch norm, the heads; trained with
``train --own-camera``), reads those cameras as well as the whole network did, and the composites
exactly as before. So one checkpoint holds both kinds:

* ``composite``: the model, as any checkpoint holds one (``model``, ``extra``, ``meta``);
* ``photo``: the weights it owns and its own fitted statistics (familiarity) in ``extra`` under
  ``kind.photo.model.`` and ``kind.photo.extra.``, its metadata (calibration, the image's weight against
  the place, figures) in ``meta["kinds"]["photo"]``. About 0.4 MB of weights besides the shared ones.

A checkpoint without kinds reads every image one way: ``select`` returns it as it is, whatever is asked.
"""
from __future__ import annotations

import torch

COMPOSITE, PHOTO = "composite", "photo"
KINDS = {
    COMPOSITE: "cloud-free monthly composites at about 7 km a pixel, like the Blue Marble maps",
    PHOTO: "one exposure of any other camera: an astronaut photo, a satellite scene, an aerial photo",
}
PREFIX = "kind."


def names(payload: dict) -> list[str]:
    """The kinds a loaded checkpoint reads separately ([] when it reads every image one way, or is one kind
    that ``select`` took out)."""
    others = list(payload["meta"].get("kinds") or {})
    return [COMPOSITE, *others] if others else []


def select(payload: dict, kind: str | None = None) -> dict:
    """The payload of one kind (None: ``photo``, what users' pictures are), with ``meta["kind"]`` and
    ``meta["kind_names"]`` saying which, for people to read; a payload without kinds as it is. Raises ValueError
    for a kind the checkpoint does not have."""
    kinds = names(payload)
    if not kinds:
        return payload
    kind = kind or PHOTO
    if kind not in kinds:
        raise ValueError(f"the camera kind must be one of {', '.join(kinds)}, not {kind!r}")
    meta, extra = payload["meta"], payload.get("extra") or {}
    shared = {k: v for k, v in extra.items() if not k.startswith(PREFIX)}
    if kind == COMPOSITE:
        chosen = {k: v for k, v in meta.items() if k != "kinds"}
        return {**payload, "meta": {**chosen, "kind": kind, "kind_names": kinds}, "extra": shared}
    own = f"{PREFIX}{kind}."
    theirs = {k[len(own):]: v for k, v in extra.items() if k.startswith(own)}
    weights = {k.removeprefix("model."): v for k, v in theirs.items() if k.startswith("model.")}
    fitted = {k.removeprefix("extra."): v for k, v in theirs.items() if k.startswith("extra.")}
    return {**payload, "meta": {**meta["kinds"][kind], "kind": kind, "kind_names": kinds},
            "model": {**payload["model"], **weights}, "extra": {**shared, **fitted}}


def combine(base: dict, other: dict, own: list[str], kind: str = PHOTO) -> tuple[dict, dict, dict]:
    """(state dict, meta, extra) of one checkpoint: ``base`` (a loaded checkpoint, or its composite kind)
    as the composite kind and ``other`` as ``kind``, which may differ from it only in the weights it owns
    (``own``: ``network.camera_own``). Raises ValueError naming the weights that differ otherwise."""
    base = select(base, COMPOSITE)
    meta = {k: v for k, v in base["meta"].items() if k not in ("kind", "kind_names")}
    mine = set(own)
    differ = [k for k, v in base["model"].items()
              if k not in mine and (k not in other["model"] or not _same(v, other["model"][k]))]
    if differ:
        more = f" and {len(differ) - 3} more" if len(differ) > 3 else ""
        raise ValueError(f"it differs from the base model in {len(differ)} shared weights ({', '.join(differ[:3])}"
                         f"{more}): a camera kind is trained with `train --own-camera --init BASE`")
    extra = dict(base.get("extra") or {})
    theirs = {f"{PREFIX}{kind}.model.{k}": other["model"][k] for k in own}
    theirs.update({f"{PREFIX}{kind}.extra.{k}": v for k, v in (other.get("extra") or {}).items()
                   if not (k in extra and _same(extra[k], v))})
    other_meta = {k: v for k, v in other["meta"].items() if k not in ("kinds", "kind", "kind_names")}
    return dict(base["model"]), {**meta, "kinds": {kind: other_meta}}, {**extra, **theirs}


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal once in the same precision: a model trained from a half-precision base holds its shared weights
    in single precision, each the same number."""
    if a.shape != b.shape:
        return False
    if a.is_floating_point() and b.is_floating_point():
        low = a.dtype if torch.finfo(a.dtype).bits <= torch.finfo(b.dtype).bits else b.dtype
        return torch.equal(a.to(low), b.to(low))
    return torch.equal(a, b)
