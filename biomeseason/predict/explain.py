"""Why the model said what it said: Grad-CAM per head, and the prediction figure.

    cams = grad_cams(predictor, "photo.jpg", result)   # {"biome": (S, S), "month": (S, S)} in [0, 1]
    fig = plot_prediction("photo.jpg", result, cams)
    show_prediction(predictor, "photo.jpg")            # all of it, for a notebook cell

Grad-CAM (Selvaraju et al., 2017) weighs each channel of the last
convolutional map by the mean gradient of a class score with respect to it;
the positive part of the weighted sum shows where evidence for that class
lies. The maps cover the centre square that the eval transform crops from the
scene (the Earth part of the photo), so they are drawn over that square.

A figure shows the answer in bold only when the image looks like the training
data; for an image flagged unfamiliar the answer is grey, with the warning.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..io.images import ImageError, open_rgb
from ..labels import MONTH_ABBR, SEASONS
from ..model.checkpoint import CheckpointError
from .predictor import UNFAMILIAR_WARNING, Prediction, Predictor, SettingError

DISPLAY_SIZE = 384  # pixels of the centre square drawn under the heat maps


def grad_cams(predictor: Predictor, image, result: Prediction | None = None,
              size: int | None = None) -> dict[str, np.ndarray]:
    """Grad-CAM of each head for its predicted class (or the classes in ``result``).

    Returns {"biome": map, "month": map}, each (size, size) float32 in [0, 1],
    size defaulting to the model's input size. Passing the result of a TTA
    prediction explains that prediction's classes.
    """
    x = predictor.to_tensor(image).unsqueeze(0).to(predictor.device)  # (1, 3, S, S)
    targets = None
    if result is not None:
        targets = {"biome": predictor.biomes.index(result.biome),
                   "month": predictor.months.index(result.month)}
    return class_activation_maps(predictor.model, x, targets, size or predictor.image_size)


def class_activation_maps(model: torch.nn.Module, x: torch.Tensor, targets: dict[str, int] | None,
                          size: int) -> dict[str, np.ndarray]:
    """Grad-CAM for every head of ``model`` on one input x (1, 3, S, S).

    No hooks: the features are computed once with grad enabled, each head is
    applied to them, and the class score is differentiated with respect to
    the feature map directly.
    """
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad():
            features = model.forward_features(x)           # (1, C, h, w)
            logits = model.forward_head(features)          # {task: (1, n)}
            cams = {}
            for task, out in logits.items():
                target = targets[task] if targets else int(out[0].argmax())
                (grad,) = torch.autograd.grad(out[0, target], features, retain_graph=True)
                weights = grad.mean(dim=(2, 3), keepdim=True)           # (1, C, 1, 1)
                cam = F.relu((weights * features).sum(dim=1, keepdim=True))  # (1, 1, h, w)
                cams[task] = _normalise(_upsample(cam.detach(), size))
    finally:
        model.train(was_training)
    return cams


def _upsample(cam: torch.Tensor, size: int) -> torch.Tensor:
    return F.interpolate(cam, size=(size, size), mode="bilinear", align_corners=False)[0, 0]


def _normalise(cam: torch.Tensor) -> np.ndarray:
    """Scale to [0, 1]; an all-zero map (no positive evidence) stays zero."""
    cam = cam.cpu().float()
    top = float(cam.max())
    return (cam / top if top > 0 else torch.zeros_like(cam)).numpy().astype(np.float32)


def centre_square(image, size: int = DISPLAY_SIZE, box=None, image_size=None) -> np.ndarray:
    """The centre square the eval transform keeps, as (size, size, 3) uint8, for drawing.

    ``box`` (l, t, r, b) in an upright image of ``image_size`` (w, h): the scene
    the model was given (``Prediction.scene_box``); None: the whole image.
    """
    img = open_rgb(image, min_size=size, reduce=True)
    if box is not None and image_size is not None:
        img = img.crop(_scaled(box, image_size, img.size))
    w, h = img.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    square = img.crop((left, top, left + side, top + side))
    return np.asarray(square.resize((size, size), Image.Resampling.BILINEAR))


def plot_top_k(ax, labels: list[str], probs: list[float], title: str, color: str = "tab:blue") -> None:
    """Horizontal bars, most probable on top, with the probability written on each."""
    ax.barh(range(len(labels))[::-1], probs, color=color)
    ax.set_yticks(range(len(labels))[::-1], labels)
    ax.set_xlim(0, 1)
    ax.set_xlabel("probability")
    ax.set_title(title)
    for y, p in zip(range(len(labels))[::-1], probs):
        ax.text(min(p + 0.02, 0.85), y, f"{p:.2f}", va="center")


def plot_heads(result: Prediction, axes=None):
    """Top-k bars of the biome head, the month head, and the four seasons."""
    if axes is None:
        _, axes = plt.subplots(1, 3, figsize=(13, 3), layout="constrained")
    biome_labels = [_pretty(b) for b, _ in result.biome_top]
    plot_top_k(axes[0], biome_labels, [p for _, p in result.biome_top], "biome")
    month_labels = [MONTH_ABBR[m - 1].capitalize() for m, _ in result.month_top]
    plot_top_k(axes[1], month_labels, [p for _, p in result.month_top], "month", "tab:orange")
    plot_top_k(axes[2], SEASONS, [result.season_probs[s] for s in SEASONS],
               "season (sum of its months)", "tab:green")
    return axes


def overlay(ax, square: np.ndarray, cam: np.ndarray, title: str, alpha: float = 0.45) -> None:
    """A heat map over the image; the map is stretched to the image's extent."""
    ax.imshow(square)
    extent = (0, square.shape[1], square.shape[0], 0)
    ax.imshow(cam, cmap="jet", alpha=alpha, vmin=0, vmax=1, extent=extent, interpolation="bilinear")
    ax.set_title(title)
    ax.axis("off")


def plot_prediction(image, result: Prediction, cams: dict[str, np.ndarray] | None = None, truth: str | None = None):
    """The whole story of one prediction in one figure (``truth``: the image's true labels, shown under it).

    Top row: the image with the verdict, the biome and month top-3 bars and
    the season probabilities. Bottom row (when ``cams`` is given): the centre
    square the model sees, then the Grad-CAM of each head over it.
    """
    rows = 2 if cams else 1
    fig = plt.figure(figsize=(16, 4.2 * rows), layout="constrained")
    grid = fig.add_gridspec(rows, 4)
    ax_img = fig.add_subplot(grid[0, 0])
    shown = open_rgb(image, min_size=DISPLAY_SIZE, reduce=True)
    ax_img.imshow(np.asarray(shown))
    answer = f"{_pretty(result.biome)}\n{result.month_name} · {result.season}"
    if result.unfamiliar:
        ax_img.set_title(f"{answer}\n{_wrap(UNFAMILIAR_WARNING)}", color="grey", fontweight="normal",
                         fontsize=9)
    else:
        ax_img.set_title(answer, fontweight="bold")
    box = result.scene_box
    if box and result.image_size and tuple(box) != (0, 0, *result.image_size):
        left, top, right, bottom = _scaled(box, result.image_size, shown.size)
        ax_img.add_patch(plt.Rectangle((left, top), right - left, bottom - top, fill=False,
                                       edgecolor="yellow", linewidth=2, label="scene predicted on"))
    if truth:
        ax_img.set_xlabel(f"true: {_pretty(truth)}", fontsize=11)
        ax_img.set_xticks([])
        ax_img.set_yticks([])
        for spine in ax_img.spines.values():
            spine.set_visible(False)
    else:
        ax_img.axis("off")
    plot_heads(result, [fig.add_subplot(grid[0, i]) for i in (1, 2, 3)])
    if cams:
        square = centre_square(image, box=box, image_size=result.image_size)
        ax_view = fig.add_subplot(grid[1, 0])
        ax_view.imshow(square)
        ax_view.set_title("centre square the model sees")
        ax_view.axis("off")
        names = {"biome": _pretty(result.biome), "month": result.month_name}
        for i, (task, cam) in enumerate(cams.items(), start=1):
            overlay(fig.add_subplot(grid[1, i]), square, cam, f"Grad-CAM {task}: {names.get(task, '')}")
    fig.suptitle(result.path)
    return fig


def _pretty(name: str) -> str:
    return name.replace("_", " ")


def _wrap(text: str, width: int = 40) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width))


def _scaled(box, size, to_size) -> tuple[int, int, int, int]:
    """A box in an image of ``size`` (w, h), in the same image shown at ``to_size``."""
    sx, sy = to_size[0] / size[0], to_size[1] / size[1]
    return (round(box[0] * sx), round(box[1] * sy), round(box[2] * sx), round(box[3] * sy))


def show_prediction(predictor: Predictor | None, image, tta: bool = False,
                    hemisphere: str | None = None, lat: float | None = None,
                    lon: float | None = None) -> Prediction | None:
    """Print the verdict and draw the figure of one image, for a notebook cell.

    ``hemisphere``: where the photo was taken, "north" or "south" (None: its
    EXIF GPS latitude, else the model's); ``lat``, ``lon``: where it was taken, in
    degrees north and east (None: its EXIF GPS position, if any), which the
    model's geographic prior gives the biome too. An image that cannot be used, a bad
    setting, or no model is one printed sentence, not a traceback; returns the
    Prediction, or None then.
    """
    if predictor is None:
        print("no model is loaded: see the message of the cell that loads it")
        return None
    try:
        result = predictor.predict(image, tta=tta, hemisphere=hemisphere, lat=lat, lon=lon)[0]
    except (ImageError, FileNotFoundError) as e:
        print(f"cannot use {image}: {getattr(e, 'reason', e)}; edit IMAGE_PATH and run again")
        return None
    except SettingError as e:   # a hemisphere that is neither north nor south, a latitude beyond 90, ...
        print(f"{e}; edit {e.setting.upper()} and run again")
        return None
    print(result.summary())
    if result.unfamiliar:
        print(UNFAMILIAR_WARNING)
    # Decoded once more, at the figure's size; the heat maps and both pictures are drawn from it.
    shown = open_rgb(image, min_size=DISPLAY_SIZE, reduce=True)
    plot_prediction(shown, result, grad_cams(predictor, shown, result))
    plt.show()
    return result


def load_or_explain(path=None, device="cpu") -> Predictor | None:
    """``predict.load_model``, printing one sentence instead of raising (notebooks)."""
    from .predictor import load_model

    try:
        return load_model(path, device)
    except CheckpointError as e:
        print(f"no model loaded: {e}")
        return None
