"""Calibrated probabilities: one temperature per head, fitted on the validation split.

    T = fit_temperature(val_logits, val_labels)      # (N, C) logits, (N,) labels, -1 = missing
    probs = softmax(logits / T)                       # same argmax, honest confidence
    ece(probs, labels)                                # expected calibration error, 15 bins
    reliability(probs, labels)                        # per-bin confidence and accuracy, for the diagram

A network trained on a few thousand images is usually over-confident: it says
0.99 where it is right 70% of the time. Dividing the logits by one scalar T > 1
(Guo et al., 2017, "On Calibration of Modern Neural Networks") fixes most of
that without changing any prediction. T is fitted by minimising the negative
log-likelihood of the validation labels over log T (so T stays positive),
with a weak Gaussian prior on log T (``PRIOR_SD``): on a validation split of a
dozen images the fit alone can swing T to 0.2 or 20, and a T far below 1 would
make a barely trained model sure of itself; with hundreds of images the prior
no longer matters.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

BINS = 15
T_RANGE = (0.05, 20.0)   # beyond these the fit is chasing a handful of images
PRIOR_SD = 1.0           # of log T: T within e^-2..e^2 (0.14..7.4) before the data speak


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


def softmax(logits, temperature: float = 1.0) -> np.ndarray:
    z = torch.as_tensor(np.asarray(logits), dtype=torch.float64)
    return (z / temperature).softmax(dim=1).numpy()


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


def calibrate_head(logits, labels, bins: int = BINS) -> dict:
    """Fit T on one head's logits: {"temperature", "ece_before", "ece_after", "n"} (plain floats)."""
    t = fit_temperature(logits, labels)
    n = int((np.asarray(labels) >= 0).sum())
    return {"temperature": t, "ece_before": ece(softmax(logits), labels, bins),
            "ece_after": ece(softmax(logits, t), labels, bins), "n": n}
