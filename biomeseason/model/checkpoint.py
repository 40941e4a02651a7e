"""One checkpoint schema: weights plus JSON metadata, loaded without unpickling code.

A checkpoint is a ``torch.save`` of a plain dict::

    {"format": "biomeseason.checkpoint", "version": 1,
     "meta": "<JSON text>",          # arch, class lists, image size, normalisation,
                                     # config, metrics, manifest hash, epoch
     "model": {name: tensor},        # state dict of BiomeSeasonNet
     "extra": {name: tensor} | absent,  # fitted statistics beside the weights (familiarity)
     "train_state": {...} | absent,  # optimiser/schedule/epoch, only for --resume
     "digest": "<sha256 hex>"}       # over format, version, meta, weights and extra

It is read back with ``torch.load(weights_only=True)``, which only rebuilds
tensors and plain containers and refuses anything that would run code. The
digest catches a file that was edited or truncated after it was written. Writes
go through ``files.atomic_write`` (temporary file in the same folder, fsync,
rename), so a crash never leaves a half-written checkpoint under the real name.

This module knows nothing of training loops: it stores what it is given.
"""
from __future__ import annotations

import hashlib
import json
import pickle
from pathlib import Path

import torch

from ..io import files

FORMAT = "biomeseason.checkpoint"
VERSION = 1


class CheckpointError(RuntimeError):
    """The file is missing, not ours, from another version, or damaged."""


def _digest(meta_json: str, state_dict: dict, extra: dict | None = None) -> str:
    h = hashlib.sha256(f"{FORMAT}:{VERSION}:".encode())
    h.update(meta_json.encode())
    _hash_tensors(h, state_dict)
    if extra:  # absent or empty leaves the digest of checkpoints written before "extra" unchanged
        h.update(b"extra:")
        _hash_tensors(h, extra)
    return h.hexdigest()


def _hash_tensors(h, tensors: dict) -> None:
    for name in sorted(tensors):
        tensor = tensors[name].detach().cpu().contiguous()
        h.update(name.encode())
        h.update(str(tensor.dtype).encode())
        h.update(str(tuple(tensor.shape)).encode())
        h.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())


def save_checkpoint(path: str | Path, state_dict: dict, meta: dict,
                    train_state: dict | None = None, extra: dict | None = None) -> Path:
    """Write atomically and durably; ``meta`` must be JSON-serialisable (it is checked here).

    ``extra``: named tensors stored beside the weights and covered by the digest.
    """
    meta_json = json.dumps(meta, sort_keys=True)
    state_dict = {k: v.detach().cpu() for k, v in state_dict.items()}
    extra = {k: v.detach().cpu() for k, v in (extra or {}).items()}
    payload = {"format": FORMAT, "version": VERSION, "meta": meta_json, "model": state_dict,
               "digest": _digest(meta_json, state_dict, extra)}
    if extra:
        payload["extra"] = extra
    if train_state is not None:
        payload["train_state"] = train_state
    return files.atomic_write(path, lambda f: torch.save(payload, f), text=False, fsync=True)


def load_checkpoint(path: str | Path, map_location="cpu") -> dict:
    """Read and verify a checkpoint; returns the dict with ``meta`` parsed.

    Raises CheckpointError with the reason for anything that is not a sound
    checkpoint of this version. Nothing in the file is executed.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, TypeError,
            AttributeError, KeyError, IndexError, OSError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{path} is not a biomeseason checkpoint or is damaged; "
                              f"refused to load it ({first})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a biomeseason checkpoint")
    if payload.get("version") != VERSION:
        raise CheckpointError(f"{path} is checkpoint version {payload.get('version')}; "
                              f"this biomeseason reads version {VERSION}: retrain or use a matching release")
    meta_json, state_dict, extra = payload.get("meta"), payload.get("model"), payload.get("extra", {})
    if not isinstance(meta_json, str) or not isinstance(state_dict, dict) or not isinstance(extra, dict):
        raise CheckpointError(f"{path} lacks metadata or weights")
    if payload.get("digest") != _digest(meta_json, state_dict, extra):
        raise CheckpointError(f"{path} was modified after it was written (checksum mismatch); refused")
    payload["meta"] = json.loads(meta_json)
    return payload
