"""Calibrated probabilities: a temperature per head, fitted on the validation split, that
grows for images unlike the training data.

    T = fit_temperature(val_logits, val_labels)      # (N, C) logits, (N,) labels, -1 = missing
    probs = softmax(logits, T)                        # same argmax, honest confidence
    ece(probs, labels)                                # expected calibration error, 15 bins
    reliability(probs, labels)                        # per-bin confidence and accuracy, for the diagram

    head = calibrate_head(logits, labels, distances, levels)   # on validation images, clean and drifted
    probs = softmax(logits, temperature_at(head, distances))   # a temperature per image

A network trained on a few thousand images is usually over-confident: it says
0.99 where it is right 70% of the time. Dividing the logits by one scalar T > 1
(Guo et al., 2017, "On Calibration of Modern Neural Networks") fixes most of
that without changing any prediction. T is fitted by minimising the negative
log-likelihood of the validation labels over log T (so T stays positive),
with a weak Gaussian prior on log T (``PRIOR_SD``): on a validation split of a
dozen images the fit alone can swing T to 0.2 or 20, and a T far below 1 would
make a barely trained model sure of itself; with hundreds of images the prior
no longer matters.

One temperature is right for images like the validation split, and wrong for
images from elsewhere: a model trained on synthetic scenes and calibrated on
them is as sure of itself on a real photo as on its own scenes, and wrong far
more often. So the temperature also depends on how unfamiliar the image is
(``distance``: the familiarity score over its threshold, 1 = the flag's edge):

    T(d) = T0 * max(1, d / d0) ** power

fitted, all three, on the validation images as they are and made unlike the
training data step by step (``drift``: blur, haze, a colour cast and sensor
noise, ``DRIFT_LEVELS`` levels), where the labels are still known (Tomani et
al., 2021, "Post-hoc Uncertainty Calibration for Domain Drift Scenarios").
Images closer than d0 keep T0; farther ones are softened as much as the
drifted validation images showed they should be. No argmax changes.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
import torchvision.transforms.v2.functional as TF

BINS = 15
T_RANGE = (0.05, 20.0)   # beyond these the fit is chasing a handful of images
PRIOR_SD = 1.0           # of log T: T within e^-2..e^2 (0.14..7.4) before the data speak
DRIFT_LEVELS = (1, 2, 3, 4)   # drift steps the validation images are also seen at (0: as they are)
BLUR_CHUNK = 32               # images blurred at a time by ``drift``


def _labelled(values, labels) -> tuple[torch.Tensor, torch.Tensor]:
    values = torch.as_tensor(np.asarray(values), dtype=torch.float64)
    labels = torch.as_tensor(np.asarray(labels), dtype=torch.long)
    keep = labels >= 0
    return values[keep], labels[keep]


def fit_temperature(logits, labels, steps: int = 50) -> float:
    """The T > 0 that minimises the NLL of ``softmax(logits / T)``; 1.0 if no row is labelled."""
    z, y = _labelled(logits, labels)
    if len(y) == 0:
        return 1.0
    log_t = torch.zeros((), dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t], lr=0.5, max_iter=steps, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        # Mean NLL plus the prior's share per image: -log p(log T) / n.
        loss = F.cross_entropy(z / log_t.exp(), y) + log_t.pow(2) / (2 * PRIOR_SD**2 * len(y))
        loss.backward()
        return loss

    optimizer.step(closure)
    t = float(log_t.detach().exp())
    return float(np.clip(t, *T_RANGE)) if np.isfinite(t) else 1.0


def softmax(logits, temperature=1.0) -> np.ndarray:
    """Softmax of (N, C) logits over one temperature, or one per row ((N,) array)."""
    z = torch.as_tensor(np.asarray(logits), dtype=torch.float64)
    t = torch.as_tensor(np.asarray(temperature, dtype=np.float64))
    return (z / (t[:, None] if t.ndim == 1 else t)).softmax(dim=1).numpy()


def drift(images: torch.Tensor, level: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """(N, 3, H, W) images in [0, 1] made less like the training data, more with each ``level``:
    blurred (a coarser sensor), flattened towards their mean (haze), given a random colour cast
    and sensor noise. Level 0 gives the images back unchanged."""
    if level <= 0:
        return images
    # The blur a few images at a time: the same numbers, 3-4 times faster on a CPU than over a batch
    # of 128 (whose copies do not stay in the caches); the random draws below take the whole batch.
    x = torch.cat([TF.gaussian_blur(part, kernel_size=2 * level + 1, sigma=0.6 * level)
                   for part in images.split(BLUR_CHUNK)])
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * (1 - 0.15 * level) + mean
    cast = (torch.rand(x.shape[0], 3, 1, 1, generator=generator, dtype=x.dtype) - 0.5) * 0.08 * level
    noise = torch.randn(x.shape, generator=generator, dtype=x.dtype) * 0.01 * level
    return (x + cast + noise).clamp(0, 1)


def temperature_at(head: dict, distances=None):
    """The temperature of each image (an (N,) array) given its distance, or the plain one
    (a float) without distances or for a head calibrated without drift."""
    t = float(head.get("temperature", 1.0))
    start, power = head.get("drift_start"), head.get("drift_power")
    if distances is None or not start or not power:
        return t
    return t * np.maximum(1.0, np.asarray(distances, dtype=np.float64) / start) ** power


def fit_drift_temperature(logits, labels, distances, steps: int = 100) -> dict:
    """T0, d0 and power of ``T(d) = T0 * max(1, d / d0) ** power`` minimising the NLL, with the
    weak prior of ``fit_temperature`` on each logarithm (d0 and power centred on 1)."""
    z, y = _labelled(logits, labels)
    d = torch.as_tensor(np.asarray(distances, dtype=np.float64))[torch.as_tensor(np.asarray(labels)) >= 0]
    if len(y) == 0:
        return {"temperature": 1.0, "drift_start": None, "drift_power": None}
    logs = torch.zeros(3, dtype=torch.float64, requires_grad=True)   # log T0, log d0, log power
    optimizer = torch.optim.LBFGS([logs], lr=0.5, max_iter=steps, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        t = logs[0].exp() * torch.clamp(d / logs[1].exp(), min=1.0) ** logs[2].exp()
        loss = F.cross_entropy(z / t[:, None], y) + logs.pow(2).sum() / (2 * PRIOR_SD**2 * len(y))
        loss.backward()
        return loss

    optimizer.step(closure)
    t0, start, power = (float(v) for v in logs.detach().exp())
    if not all(np.isfinite([t0, start, power])):
        return {"temperature": fit_temperature(logits, labels), "drift_start": None, "drift_power": None}
    return {"temperature": float(np.clip(t0, *T_RANGE)), "drift_start": start, "drift_power": power}


def reliability(probs, labels, bins: int = BINS) -> dict:
    """Per confidence bin (equal width on [0, 1]): mean confidence, accuracy and count.

    Only labelled rows count; empty bins have NaN confidence and accuracy.
    """
    p, y = _labelled(probs, labels)
    edges = np.linspace(0.0, 1.0, bins + 1)
    confidence, accuracy, count = np.full(bins, np.nan), np.full(bins, np.nan), np.zeros(bins, int)
    if len(y):
        conf, pred = p.max(dim=1)
        conf, correct = conf.numpy(), (pred == y).numpy()
        # Bins are (lo, hi]; a confidence of exactly 1/C or less still lands in the first.
        which = np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, bins - 1)
        for b in range(bins):
            mask = which == b
            count[b] = int(mask.sum())
            if count[b]:
                confidence[b], accuracy[b] = conf[mask].mean(), correct[mask].mean()
    return {"edges": edges, "confidence": confidence, "accuracy": accuracy, "count": count}


def ece(probs, labels, bins: int = BINS) -> float | None:
    """Expected calibration error: the count-weighted mean |accuracy - confidence| over bins."""
    r = reliability(probs, labels, bins)
    n = r["count"].sum()
    if n == 0:
        return None
    used = r["count"] > 0
    gaps = np.abs(r["accuracy"][used] - r["confidence"][used])
    return float((gaps * r["count"][used]).sum() / n)


def calibrate_head(logits, labels, distances=None, levels=None, bins: int = BINS) -> dict:
    """Fit one head: {"temperature", "drift_start", "drift_power", "ece_before", "ece_after",
    "ece_drifted_before", "ece_drifted_after", "n"} (plain floats or None).

    Without ``distances``, one temperature. With them (one per row) and ``levels`` (the drift
    level of each row, 0 = as it is), the temperature that grows with the distance; the ECEs
    are of the rows at level 0 and of the drifted rows."""
    logits, labels = np.asarray(logits), np.asarray(labels)
    if distances is None:
        head = {"temperature": fit_temperature(logits, labels), "drift_start": None, "drift_power": None}
        levels = np.zeros(len(labels), int)
    else:
        head = fit_drift_temperature(logits, labels, distances)
        levels = np.zeros(len(labels), int) if levels is None else np.asarray(levels)
    t = temperature_at(head, distances)
    t = np.broadcast_to(np.asarray(t, dtype=np.float64), (len(labels),))
    clean, drifted = levels == 0, levels > 0
    return {**head, "n": int((labels[clean] >= 0).sum()),
            "ece_before": ece(softmax(logits[clean]), labels[clean], bins),
            "ece_after": ece(softmax(logits[clean], t[clean]), labels[clean], bins),
            "ece_drifted_before": ece(softmax(logits[drifted]), labels[drifted], bins) if drifted.any() else None,
            "ece_drifted_after": ece(softmax(logits[drifted], t[drifted]), labels[drifted], bins)
            if drifted.any() else None}
