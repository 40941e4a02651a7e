"""Does an image look like the training data? A score on features and on plain image statistics.

    fam = Familiarity().fit(train_features, train_biomes, train_images)  # (N, C), (N,) -1 = none, (N, 3, H, W)
    fam.set_threshold(val_features, val_images)           # ~5% of validation images flagged
    fam.flags(fam.score(features, images))                # True = unfamiliar: treat the answer with care

``features`` are the backbone's pooled features (``BiomeSeasonNet.embed``);
``images`` the same batch as the network saw it (normalised (N, 3, H, W)), or
its ``image_statistics`` computed beforehand (N, 13), which is what training
keeps instead of every image.

Two distances, each in units of its own spread on the validation images:

* Mahalanobis distance of the features to the nearest biome class, with one
  covariance shared by all classes (Lee et al., 2018, "A Simple Unified
  Framework for Detecting Out-of-Distribution Samples"). With a few hundred
  images and 512 features the covariance is shrunk by Ledoit-Wolf so it
  stays invertible.
* Mahalanobis distance of a dozen image statistics (colour, contrast,
  smoothness, flat, dark and bright shares, how the colour channels move
  together) to those of the training images. A small network trained for a
  few epochs maps a black frame or a flat indoor wall close to its classes;
  these statistics do not.

The score is the larger of the two; higher means less familiar. The
threshold is a quantile of the validation scores, so the share of ordinary
images flagged is known (about 1 - quantile). Stored in a checkpoint as JSON
metadata plus tensors (``to_checkpoint``), read back with
``Familiarity.from_checkpoint(payload)``.
"""
from __future__ import annotations

import warnings

import numpy as np
import torch
from sklearn.covariance import LedoitWolf

QUANTILE = 0.95
PREFIX = "familiarity."
METHOD = "max of Mahalanobis distances (features: nearest class, shared Ledoit-Wolf covariance; image statistics)"
IMAGE_STATS = ("mean_r", "mean_g", "mean_b", "log_std_r", "log_std_g", "log_std_b", "log_chroma", "smoothness",
               "flat_share", "log_edges", "dark_share", "bright_share", "channel_correlation")
LOG_FLOOR = 1e-3  # logs spread out the small values where a grey page and a dull scene differ
NORMALISATION = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))  # ImageNet, as presets


def image_statistics(images, mean=NORMALISATION[0], std=NORMALISATION[1]) -> np.ndarray:
    """(N, 3, H, W) normalised batch -> (N, len(IMAGE_STATS)) statistics of the pixels in [0, 1].

    Statistics already computed (a 2-D array) pass through unchanged.
    """
    x = torch.as_tensor(np.asarray(images), dtype=torch.float64)
    if x.ndim == 2 and x.shape[1] == len(IMAGE_STATS):
        return x.numpy()
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"images must be a (N, 3, H, W) batch, not of shape {tuple(x.shape)}")
    x = (x * torch.tensor(std, dtype=x.dtype)[:, None, None] + torch.tensor(mean, dtype=x.dtype)[:, None, None])
    x = x.clamp(0, 1)
    grey = x.mean(dim=1)                                            # (N, H, W)
    centred = x - x.mean(dim=(2, 3), keepdim=True)
    spread = centred.pow(2).mean(dim=(2, 3)).sqrt()                 # (N, 3)

    def correlation(a, b, sa, sb):
        # A flat image is perfectly smooth and its channels move together: 1, not 0/0.
        den = sa * sb
        return torch.where(den > 1e-6, (a * b).mean(dim=(-2, -1)) / den.clamp(min=1e-12), torch.ones_like(den))

    right, left = grey[:, :, 1:], grey[:, :, :-1]
    right, left = right - right.mean(dim=(1, 2), keepdim=True), left - left.mean(dim=(1, 2), keepdim=True)
    smooth = correlation(right, left, right.pow(2).mean(dim=(1, 2)).sqrt(), left.pow(2).mean(dim=(1, 2)).sqrt())
    pairs = [(0, 1), (1, 2), (0, 2)]
    channels = sum(correlation(centred[:, i], centred[:, j], spread[:, i], spread[:, j]) for i, j in pairs) / 3
    dx = (grey[:, :, 1:] - grey[:, :, :-1]).abs()[:, :-1, :]
    dy = (grey[:, 1:, :] - grey[:, :-1, :]).abs()[:, :, :-1]
    columns = [x.mean(dim=(2, 3)), (spread + LOG_FLOOR).log(),
               ((x.amax(dim=1) - x.amin(dim=1)).mean(dim=(1, 2)) + LOG_FLOOR).log()[:, None],   # chroma
               smooth[:, None],
               ((dx < 2 / 255) & (dy < 2 / 255)).double().mean(dim=(1, 2))[:, None],
               ((dx + dy).mean(dim=(1, 2)) + LOG_FLOOR).log()[:, None],                        # edges
               (x.amax(dim=1) < 0.06).double().mean(dim=(1, 2))[:, None],      # near black
               (x.amin(dim=1) > 0.94).double().mean(dim=(1, 2))[:, None],      # near white
               channels[:, None]]
    return torch.cat(columns, dim=1).numpy()


class _Gaussian:
    """Class means and one shared, shrunk covariance; distance to the nearest class mean."""

    def __init__(self, means, precision, centre, scale):
        self.means, self.precision, self.centre, self.scale = means, precision, centre, scale

    @classmethod
    def fit(cls, x: np.ndarray, labels: np.ndarray, standardise: bool) -> _Gaussian:
        centre = x.mean(axis=0) if standardise else np.zeros(x.shape[1])
        # The floor keeps a statistic that never varied in training from dividing by zero.
        scale = x.std(axis=0) + 1e-3 if standardise else np.ones(x.shape[1])
        z = (x - centre) / scale
        classes = [c for c in np.unique(labels) if c >= 0] or [None]
        means, residuals = [], []
        for c in classes:
            rows = z if c is None else z[labels == c]
            means.append(rows.mean(axis=0))
            residuals.append(rows - means[-1])
        precision = LedoitWolf(assume_centered=True).fit(np.concatenate(residuals)).precision_
        precision = (precision + precision.T) / 2   # symmetric to the bit, as its stored triangle reads back
        return cls(np.stack(means), precision, centre, scale)

    def distance(self, x: np.ndarray) -> np.ndarray:
        # (z - m)' P (z - m) = z'Pz - 2 z'Pm + m'Pm for every class mean m at once, in matrix
        # products (BLAS): the (N, K, C) differences would take minutes on a test split.
        z = (np.asarray(x, dtype=np.float64) - self.centre) / self.scale               # (N, C)
        zp = z @ self.precision                                                        # (N, C)
        mp = self.means @ self.precision                                               # (K, C)
        squared = ((zp * z).sum(axis=1)[:, None] - 2 * zp @ self.means.T
                   + (mp * self.means).sum(axis=1)[None, :])                           # (N, K)
        return np.sqrt(np.maximum(squared.min(axis=1), 0.0))

    def tensors(self, name: str) -> dict[str, torch.Tensor]:
        # The precision is symmetric: its upper triangle alone is stored, half the bytes (0.5 MB of a
        # shipped model's file for 512 features), and read back to the same matrix.
        upper = np.asarray(self.precision, dtype=np.float64)[np.triu_indices(len(self.precision))]
        return {f"{PREFIX}{name}.{k}": torch.from_numpy(np.asarray(v, dtype=np.float64))
                for k, v in (("means", self.means), ("precision_upper", upper),
                             ("centre", self.centre), ("scale", self.scale))}

    @classmethod
    def from_tensors(cls, extra: dict, name: str) -> _Gaussian | None:
        """The Gaussian stored under ``name``; None if there is none. Checkpoints written before the upper
        triangle was stored hold the whole ``precision``."""
        def get(k):
            value = extra.get(f"{PREFIX}{name}.{k}")
            return None if value is None else value.double().numpy()

        means, centre, scale, precision = get("means"), get("centre"), get("scale"), get("precision")
        if means is None or centre is None or scale is None:
            return None
        if precision is None:
            upper = get("precision_upper")
            if upper is None:
                return None
            c = means.shape[1]
            precision = np.zeros((c, c))
            precision[np.triu_indices(c)] = upper
            precision = precision + np.triu(precision, 1).T
        return cls(means, precision, centre, scale)


class Familiarity:
    """``means`` (K, C) and ``precision`` (C, C) set the feature part by hand; ``fit`` learns both parts."""

    def __init__(self, means=None, precision=None, threshold: float | None = None, quantile: float = QUANTILE,
                 *, scales: dict | None = None, mean=NORMALISATION[0], std=NORMALISATION[1]):
        features = None
        if means is not None:
            means = np.atleast_2d(np.asarray(means, dtype=np.float64))
            dims = means.shape[1]
            features = _Gaussian(means, np.asarray(precision, dtype=np.float64), np.zeros(dims), np.ones(dims))
        self.parts: dict[str, _Gaussian | None] = {"features": features, "images": None}
        self.scales = {"features": 1.0, "images": 1.0, **(scales or {})}   # each part's validation quantile
        self.threshold = threshold
        self.quantile = quantile
        self.mean, self.std = tuple(mean), tuple(std)
        self._warned = False

    def fit(self, features, labels, images=None, mean=NORMALISATION[0], std=NORMALISATION[1]) -> Familiarity:
        """Fit on training images: features (N, C), biome labels (N,) with -1 for none, and the
        normalised images (N, 3, H, W) with the ``mean``/``std`` they were normalised with."""
        x = np.asarray(features, dtype=np.float64)
        if len(x) < 2:
            raise ValueError("the familiarity score needs at least 2 training images")
        self.mean, self.std = tuple(mean), tuple(std)
        self.parts["features"] = _Gaussian.fit(x, np.asarray(labels), standardise=False)
        if images is not None:
            stats = image_statistics(images, self.mean, self.std)
            self.parts["images"] = _Gaussian.fit(stats, np.full(len(stats), -1), standardise=True)
        return self

    def _distances(self, features, images) -> dict[str, np.ndarray]:
        if self.parts["features"] is None:
            raise ValueError("the familiarity score is not fitted")
        out = {"features": self.parts["features"].distance(np.asarray(features, dtype=np.float64))}
        if self.parts["images"] is not None:
            if images is None:
                if not self._warned:
                    warnings.warn("familiarity scored without the images: only the features are compared",
                                  stacklevel=3)
                    self._warned = True
            else:
                out["images"] = self.parts["images"].distance(image_statistics(images, self.mean, self.std))
        return out

    def score(self, features, images=None) -> np.ndarray:
        """(N,) the larger of the two distances, each over its validation quantile; higher = less familiar."""
        distances = self._distances(features, images)
        return np.max([d / self.scales[part] for part, d in distances.items()], axis=0)

    def set_threshold(self, features, images=None, quantile: float | None = None) -> float:
        """Set each part's scale and the threshold from validation images: ~(1 - quantile) of them flagged."""
        self.quantile = self.quantile if quantile is None else quantile
        distances = self._distances(features, images)
        self.scales = {part: float(max(np.quantile(d, self.quantile), 1e-9)) for part, d in distances.items()}
        self.scales.setdefault("images", 1.0)
        self.threshold = float(np.quantile(self.score(features, images), self.quantile))
        return self.threshold

    def relative(self, scores) -> np.ndarray:
        """Scores over the threshold: 1 is the flag's edge (the distance calibration uses)."""
        if self.threshold is None:
            raise ValueError("the familiarity threshold is not set")
        return np.asarray(scores) / max(self.threshold, 1e-12)

    def flags(self, scores) -> np.ndarray:
        """(N,) bool: True where the image looks unlike the training data."""
        if self.threshold is None:
            raise ValueError("the familiarity threshold is not set")
        return np.asarray(scores) > self.threshold

    def to_checkpoint(self) -> tuple[dict, dict[str, torch.Tensor]]:
        """(JSON metadata, named tensors) for ``save_checkpoint(meta=..., extra=...)``."""
        features, images = self.parts["features"], self.parts["images"]
        meta = {"method": METHOD, "threshold": self.threshold, "quantile": self.quantile,
                "scales": self.scales, "mean": list(self.mean), "std": list(self.std),
                "classes": int(len(features.means)), "features": int(features.means.shape[1]),
                "image_statistics": list(IMAGE_STATS) if images is not None else []}
        tensors = features.tensors("features")
        if images is not None:
            tensors.update(images.tensors("images"))
        return meta, tensors

    @classmethod
    def from_checkpoint(cls, payload: dict) -> Familiarity | None:
        """The score stored in a loaded checkpoint; None if it has none (older checkpoints)."""
        meta = (payload.get("meta") or {}).get("familiarity")
        extra = payload.get("extra") or {}
        features = _Gaussian.from_tensors(extra, "features")
        if not meta or features is None:
            return None
        fam = cls(threshold=meta.get("threshold"), quantile=meta.get("quantile", QUANTILE),
                  scales=dict(meta.get("scales") or {}), mean=meta.get("mean", NORMALISATION[0]),
                  std=meta.get("std", NORMALISATION[1]))
        fam.parts = {"features": features, "images": _Gaussian.from_tensors(extra, "images")}
        return fam
