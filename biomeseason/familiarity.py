"""Does an image look like the training data? A score on the backbone's pooled features.

    fam = Familiarity().fit(train_features, train_biomes)   # (N, C) features, (N,) labels (-1 = none)
    fam.set_threshold(fam.score(val_features))              # ~5% of validation images flagged
    fam.flags(fam.score(features))                          # True = unfamiliar: treat the answer with care

The score is the Mahalanobis distance of an image's features to the nearest
biome class, with one covariance shared by all classes (Lee et al., 2018, "A
Simple Unified Framework for Detecting Out-of-Distribution Samples"). With a
few hundred images and 512 features the covariance is shrunk towards a scaled
identity by Ledoit-Wolf, so it stays invertible and well conditioned. Higher
means more unfamiliar. The threshold is a quantile of the validation scores,
so the share of ordinary images flagged is known (about 1 - quantile).

Stored in a checkpoint as JSON metadata plus tensors (``to_checkpoint``), and
read back with ``Familiarity.from_checkpoint(payload)``.
"""
from __future__ import annotations

import numpy as np
import torch
from sklearn.covariance import LedoitWolf

QUANTILE = 0.95
PREFIX = "familiarity."
METHOD = "mahalanobis-nearest-class, shared Ledoit-Wolf covariance"


class Familiarity:
    def __init__(self, means: np.ndarray | None = None, precision: np.ndarray | None = None,
                 threshold: float | None = None, quantile: float = QUANTILE):
        self.means = means            # (K, C) class means
        self.precision = precision    # (C, C) inverse of the shared covariance
        self.threshold = threshold
        self.quantile = quantile

    def fit(self, features, labels) -> Familiarity:
        """Class means and shared covariance from training features; rows labelled -1 pool as one class."""
        x = np.asarray(features, dtype=np.float64)
        y = np.asarray(labels)
        if len(x) < 2:
            raise ValueError("the familiarity score needs at least 2 training images")
        classes = [c for c in np.unique(y) if c >= 0] or [None]
        means, centred = [], []
        for c in classes:
            rows = x if c is None else x[y == c]
            means.append(rows.mean(axis=0))
            centred.append(rows - means[-1])
        self.means = np.stack(means)
        self.precision = LedoitWolf(assume_centered=True).fit(np.concatenate(centred)).precision_
        return self

    def score(self, features) -> np.ndarray:
        """(N,) distance to the nearest class mean in units of the shared spread; higher = less familiar."""
        if self.means is None:
            raise ValueError("the familiarity score is not fitted")
        x = np.asarray(features, dtype=np.float64)
        d = x[:, None, :] - self.means[None, :, :]                     # (N, K, C)
        squared = np.einsum("nkc,cd,nkd->nk", d, self.precision, d)    # (N, K)
        return np.sqrt(np.maximum(squared.min(axis=1), 0.0))

    def set_threshold(self, scores, quantile: float | None = None) -> float:
        """Flag scores above this quantile of ``scores`` (validation images)."""
        self.quantile = self.quantile if quantile is None else quantile
        self.threshold = float(np.quantile(np.asarray(scores, dtype=np.float64), self.quantile))
        return self.threshold

    def flags(self, scores) -> np.ndarray:
        """(N,) bool: True where the image looks unlike the training data."""
        if self.threshold is None:
            raise ValueError("the familiarity threshold is not set")
        return np.asarray(scores) > self.threshold

    def to_checkpoint(self) -> tuple[dict, dict[str, torch.Tensor]]:
        """(JSON metadata, named tensors) for ``save_checkpoint(meta=..., extra=...)``."""
        meta = {"method": METHOD, "threshold": self.threshold, "quantile": self.quantile,
                "classes": int(len(self.means)), "features": int(self.means.shape[1])}
        tensors = {PREFIX + "means": torch.from_numpy(self.means.astype(np.float32)),
                   PREFIX + "precision": torch.from_numpy(self.precision.astype(np.float32))}
        return meta, tensors

    @classmethod
    def from_checkpoint(cls, payload: dict) -> Familiarity | None:
        """The score stored in a loaded checkpoint; None if it has none (older checkpoints)."""
        meta = payload.get("meta", {}).get("familiarity")
        extra = payload.get("extra") or {}
        if not meta or PREFIX + "means" not in extra or PREFIX + "precision" not in extra:
            return None
        return cls(extra[PREFIX + "means"].double().numpy(), extra[PREFIX + "precision"].double().numpy(),
                   meta.get("threshold"), meta.get("quantile", QUANTILE))
