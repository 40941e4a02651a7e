"""Evaluation metrics for the two heads; numpy in, plain floats out.

Month is circular: December and January are one month apart. Rows whose
label is missing (-1) are left out of that head's metrics; a head with no
labelled rows reports None ("n/a").
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import confusion_matrix, f1_score

from ..labels import season_of


def circular_distance(a, b, period: int = 12) -> np.ndarray:
    d = np.abs(np.asarray(a) - np.asarray(b)) % period
    return np.minimum(d, period - d)


def biome_metrics(true: np.ndarray, pred: np.ndarray, num_classes: int) -> dict:
    keep = true >= 0
    if not keep.any():
        return {"biome_acc": None, "biome_f1": None, "biome_n": 0}
    t, p = true[keep], pred[keep]
    return {"biome_acc": float((t == p).mean()),
            "biome_f1": float(f1_score(t, p, labels=list(range(num_classes)), average="macro",
                                       zero_division=0)),
            "biome_n": int(keep.sum())}


def month_metrics(true: np.ndarray, pred: np.ndarray, months: list[int], hemisphere: str = "north") -> dict:
    """``true``/``pred`` are indices into ``months`` (usually 1..12)."""
    keep = true >= 0
    if not keep.any():
        return {"month_acc": None, "month_within1": None, "month_mae": None, "season_acc": None,
                "month_n": 0}
    t, p = true[keep], pred[keep]
    d = circular_distance(t, p, len(months))
    seasons_t = [season_of(months[i], hemisphere) for i in t]
    seasons_p = [season_of(months[i], hemisphere) for i in p]
    return {"month_acc": float((d == 0).mean()),
            "month_within1": float((d <= 1).mean()),
            "month_mae": float(d.mean()),
            "season_acc": float(np.mean([a == b for a, b in zip(seasons_t, seasons_p)])),
            "month_n": int(keep.sum())}


def scores_by(table: pd.DataFrame, column: str, pred: tuple[str, str] = ("pred_biome", "pred_month")) -> pd.DataFrame:
    """Per value of ``column``: images, biome accuracy, month exact and within +-1 (circular).

    ``table`` holds ``true_biome``, ``true_month`` ('' where unknown) and the predicted columns
    ``pred`` (biome, month); months as 1..12. NaN where a group has no such label."""
    rows = []
    for value, g in table.groupby(column, sort=True):
        labelled, dated = g[g["true_biome"] != ""], g[g["true_month"] != ""]
        d = circular_distance(dated[pred[1]].astype(int), dated["true_month"].astype(int))
        rows.append({column: value, "images": len(g),
                     "biome_acc": (labelled[pred[0]] == labelled["true_biome"]).mean() if len(labelled) else np.nan,
                     "month_acc": (d == 0).mean() if len(d) else np.nan,
                     "month_within1": (d <= 1).mean() if len(d) else np.nan})
    return pd.DataFrame(rows).set_index(column)


def score(metrics: dict) -> float | None:
    """One number to pick the best epoch: mean of biome accuracy and month within +-1."""
    parts = [metrics.get(k) for k in ("biome_acc", "month_within1")]
    parts = [v for v in parts if v is not None]
    return float(np.mean(parts)) if parts else None


def labelled_confusion(true: np.ndarray, pred: np.ndarray, num_classes: int) -> np.ndarray:
    keep = true >= 0
    return confusion_matrix(true[keep], pred[keep], labels=list(range(num_classes)))


def most_confused(cm: np.ndarray, names: list, top: int = 10) -> pd.DataFrame:
    """Off-diagonal cells of a confusion matrix, largest first."""
    rows = [(names[i], names[j], int(cm[i, j]), float(cm[i, j] / max(cm[i].sum(), 1)))
            for i in range(len(names)) for j in range(len(names)) if i != j and cm[i, j] > 0]
    rows.sort(key=lambda r: (-r[2], str(r[0]), str(r[1])))
    return pd.DataFrame(rows[:top], columns=["true", "predicted", "count", "share_of_true"])
