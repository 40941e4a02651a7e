"""Why the model said what it said: Grad-CAM per head, and the prediction figure.

    cams = grad_cams(predictor, "photo.jpg", result)   # {"biome": (S, S), "month": (S, S)} in [0, 1]
    fig = plot_prediction("photo.jpg", result, cams, place=place_alone(predictor, result))
    show_prediction(predictor, "photo.jpg", lat=49.9, lon=21.2)   # all of it, for a notebook cell
    plot_comparison("tile.png", [("model A", result_a, cams_a, ""), ("model B", ...)])   # one image, two models

Grad-CAM (Selvaraju et al., 2017) weighs each channel of the last
convolutional map by the mean gradient of a class score with respect to it;
the positive part of the weighted sum shows where evidence for that class
lies. The maps cover the centre square that the eval transform crops from the
scene (the Earth part of the photo), so they are drawn over that square.

A figure shows the answer in bold only when the image looks like the training
data; for an image flagged unfamiliar the answer is grey, with the warning.

Where the photo's place was given, the figure adds what each piece of evidence
said of the biome: a small world map (the label map the place's answer comes
from, the place marked), then the image alone, the place alone (the geographic
prior's likelihood there, every biome weighing alike without an image) and both
together, side by side in one order and in the map's colours.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..io.images import ImageError, open_rgb
from ..labels import MONTH_ABBR, SEASONS
from ..model import presets
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
    """A heat map over the image, with its colour bar; the map is stretched to the image's extent."""
    ax.imshow(square)
    extent = (0, square.shape[1], square.shape[0], 0)
    heat = ax.imshow(cam, cmap="jet", alpha=alpha, vmin=0, vmax=1, extent=extent, interpolation="bilinear")
    # Each map is scaled to its own strongest evidence: 1 is that, not a probability.
    bar = ax.figure.colorbar(heat, ax=ax, fraction=0.046, pad=0.02, ticks=[0, 0.5, 1])
    bar.set_label("evidence (1: its strongest)", fontsize=8)
    bar.ax.tick_params(labelsize=7)
    ax.set_title(title)
    ax.axis("off")


def place_alone(predictor: Predictor, result: Prediction) -> dict[str, float] | None:
    """What the place alone says of the biome: the geographic prior's likelihood at the place the result
    was given, normalised (without an image every biome weighs alike, as the model was trained). None
    when no place was given, or the map knows no land there (open sea, a latitude of ice)."""
    if predictor.geo is None or result.lat is None:
        return None
    alone = predictor.geo.place_alone([result.lat], None if result.lon is None else [result.lon])[0]
    if np.isnan(alone).any():
        return None
    return dict(zip(predictor.geo.biomes, alone.tolist()))


def place_text(lat: float, lon: float | None = None) -> str:
    """'49.9° N, 21.2° E' (or '49.9° N' for a latitude alone)."""
    text = f"{abs(lat):.1f}° {'N' if lat >= 0 else 'S'}"
    return text if lon is None else f"{text}, {abs(lon):.1f}° {'E' if lon >= 0 else 'W'}"


def plot_place(ax, lat: float, lon: float | None = None) -> None:
    """A small world map, the label map at a pixel a degree, with the place marked (a latitude alone:
    a line across the map)."""
    from ..earth import worldmap

    try:
        ax.imshow(worldmap.small_picture(), extent=(-180, 180, -90, 90), interpolation="nearest")
    except FileNotFoundError:   # an installation without data/earth/: the place is still shown
        ax.set(xlim=(-180, 180), ylim=(-90, 90), facecolor="#eef3f7")
        ax.text(0, -60, "(no label map: data/earth/ is missing)", ha="center", fontsize=7, color="grey")
    if lon is None:
        ax.axhline(lat, color="white", lw=3.5)
        ax.axhline(lat, color="red", lw=1.5)
    else:   # a white ring under the red one: the marker shows on every colour of the map
        ax.plot(lon, lat, "o", ms=11, mfc="none", mec="white", mew=3.5)
        ax.plot(lon, lat, "o", ms=11, mfc="none", mec="red", mew=1.8)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(f"where it was taken\n{place_text(lat, lon)}", fontsize=10)


def plot_biome_evidence(axes, result: Prediction, place: dict[str, float] | None) -> None:
    """The biome three ways on three axes, biomes in one order (the combined answer's) and in the label
    map's colours: the image alone, the place alone (``place``; None: the map knows nothing there),
    both together (the result's answer)."""
    from ..earth import worldmap

    both = result.biome_probs
    order = sorted(both, key=both.get, reverse=True)
    colours = [worldmap.COLOURS[worldmap.BIOMES.index(b)] if b in worldmap.BIOMES else "tab:blue" for b in order]
    where = "place" if result.lon is not None else "latitude"
    panels = [("the image alone", result.image_biome_probs or both), (f"the {where} alone", place),
              ("both together", both)]
    y = np.arange(len(order))[::-1]   # the most probable on top
    for i, (ax, (title, probs)) in enumerate(zip(axes, panels)):
        ax.set_xlim(0, 1)
        ax.set_ylim(-0.6, len(order) - 0.4)
        ax.set_yticks(y, [_pretty(b) for b in order])
        ax.tick_params(axis="y", labelleft=i == 0)   # one set of names for the three, on the left
        ax.set_xlabel("probability")
        if probs is None:
            ax.text(0.5, y.mean(), f"the map knows no land\nnear this {where}:\nthe answer is the image's",
                    ha="center", va="center", fontsize=9, color="grey")
            ax.set_title(f"{title}: nothing known", fontsize=10)
            continue
        values = [probs.get(b, 0.0) for b in order]
        ax.barh(y, values, color=colours, edgecolor="0.35", linewidth=0.6)
        for yy, p in zip(y, values):
            ax.text(min(p + 0.02, 0.85), yy, f"{p:.2f}", va="center", fontsize=8)
        best = max(probs, key=probs.get)
        answer = i == len(panels) - 1
        ax.set_title(f"{title}:\n{_pretty(best)} {probs[best]:.2f}", fontsize=10,
                     # the answer in bold, as the verdict above: only for an image like the training data
                     fontweight="bold" if answer and not result.unfamiliar else "normal",
                     color="grey" if answer and result.unfamiliar else "black")


def plot_prediction(image, result: Prediction, cams: dict[str, np.ndarray] | None = None, truth: str | None = None,
                    place: dict[str, float] | None = None):
    """The whole story of one prediction in one figure (``truth``: the image's true labels, shown under it).

    Top row: the image with the verdict, the biome and month top-3 bars and
    the season probabilities. Second row (when ``cams`` is given): the centre
    square the model sees, then the Grad-CAM of each head over it. Last row
    (when the result was given a place): the world map with the place, then the
    biome from the image alone, the place alone (``place``, see ``place_alone``)
    and both together.
    """
    placed = result.lat is not None
    rows = 1 + bool(cams) + placed
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
    if placed:
        plot_place(fig.add_subplot(grid[rows - 1, 0]), result.lat, result.lon)
        plot_biome_evidence([fig.add_subplot(grid[rows - 1, i]) for i in (1, 2, 3)], result, place)
    # A model of two camera kinds (model.kinds) says which read the image: the other may answer otherwise.
    fig.suptitle(_name(result.path) + (f" (read by the model's {result.camera} kind)" if result.camera else ""))
    return fig


def plot_comparison(image, answers: list[tuple[str, Prediction, dict[str, np.ndarray], str]],
                    truth: str | None = None, title: str | None = None):
    """One image, several models' answers, a row each: the centre square the model sees (the true labels
    ``truth`` under it), its biome and month top-3, and its Grad-CAM maps with colour bars. ``answers``:
    (name, Prediction, cams, note) per model; the note (e.g. the answer given the place) follows its verdict."""
    fig = plt.figure(figsize=(18, 3.9 * len(answers)), layout="constrained")
    rows = fig.subfigures(len(answers), 1, squeeze=False)[:, 0]
    for row, (name, result, cams, note) in zip(rows, answers):
        verdict = f"{name}: {_pretty(result.biome)} ({result.biome_p:.2f}), {result.month_name} ({result.month_p:.2f})"
        if result.unfamiliar:
            row.suptitle(f"{verdict}{note}\n{UNFAMILIAR_WARNING}", color="grey", fontsize=11)
        else:
            row.suptitle(verdict + note, fontweight="bold", fontsize=12)
        axes = row.subplots(1, 5)
        square = centre_square(image, box=result.scene_box, image_size=result.image_size)
        axes[0].imshow(square)
        axes[0].set_xticks([])
        axes[0].set_yticks([])
        axes[0].set_xlabel(f"true: {_pretty(truth)}" if truth else "the centre square it sees", fontsize=11)
        plot_top_k(axes[1], [_pretty(b) for b, _ in result.biome_top], [p for _, p in result.biome_top], "biome")
        plot_top_k(axes[2], [MONTH_ABBR[m - 1].capitalize() for m, _ in result.month_top],
                   [p for _, p in result.month_top], "month", "tab:orange")
        names = {"biome": _pretty(result.biome), "month": result.month_name}
        for ax, (task, cam) in zip(axes[3:], cams.items()):   # two lines: five panels a row leave little width
            overlay(ax, square, cam, f"Grad-CAM {task}:\n{names.get(task, '')}")
    if title:
        fig.suptitle(title, fontsize=13)
    return fig


def _pretty(name: str) -> str:
    return name.replace("_", " ")


def _name(path: str) -> str:
    """A figure's title: the file's name, not the folders it lies in ('<bytes>' and the like stay)."""
    return Path(path).name if path and not path.startswith("<") else path


def _wrap(text: str, width: int = 40) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width))


def _scaled(box, size, to_size) -> tuple[int, int, int, int]:
    """A box in an image of ``size`` (w, h), in the same image shown at ``to_size``."""
    sx, sy = to_size[0] / size[0], to_size[1] / size[1]
    return (round(box[0] * sx), round(box[1] * sy), round(box[2] * sx), round(box[3] * sy))


def show_prediction(predictor: Predictor | None, image, tta: bool = False,
                    hemisphere: str | None = None, lat: float | None = None,
                    lon: float | None = None, name: str | None = None,
                    retry: str = "edit IMAGE_PATH and run again", footprint_km=None,
                    altitude_km: float | None = None) -> Prediction | None:
    """Print the verdict and draw the figure of one image, for a notebook cell.

    ``hemisphere``: where the photo was taken, "north" or "south" (None: its
    EXIF GPS latitude, else the model's); ``lat``, ``lon``: where it was taken, in
    degrees north and east (None: its EXIF GPS position, if any), which the
    model's geographic prior gives the biome too; the figure then shows what the
    image and the place each said. ``footprint_km``, ``altitude_km``: the ground
    it covers, or the height it was taken from (with its EXIF focal length), as
    ``Predictor.predict`` takes them; with a footprint in km the heat maps explain
    the image at that scale (otherwise, and for "auto", the image as it is).
    ``name``: what to call an image given as
    bytes or an array (an uploaded file). An image that cannot be used, a bad
    setting, or no model is one printed sentence (ending with ``retry`` for an
    image), not a traceback; returns the Prediction, or None then.
    """
    result, fig, lines = explain_image(predictor, image, tta, hemisphere, lat, lon, name, retry, footprint_km,
                                       altitude_km)
    print("\n".join(lines))
    if fig is not None:
        plt.show()
    return result


def explain_image(predictor: Predictor | None, image, tta: bool = False, hemisphere: str | None = None,
                  lat: float | None = None, lon: float | None = None, name: str | None = None,
                  retry: str = "edit IMAGE_PATH and run again", footprint_km=None, altitude_km: float | None = None
                  ) -> tuple[Prediction | None, plt.Figure | None, list[str]]:
    """``show_prediction``'s work without printing or showing: (the Prediction or None, its figure or None,
    the lines to say: the verdict and any warning, or the one sentence saying why there is no answer)."""
    if predictor is None:
        return None, None, ["no model is loaded: see the message of the cell that loads it"]
    try:
        result = predictor.predict([image], tta=tta, hemisphere=hemisphere, lat=lat, lon=lon,
                                   footprint_km=footprint_km, altitude_km=altitude_km)[0]
    except (ImageError, FileNotFoundError) as e:
        return None, None, [f"cannot use {name or image}: {getattr(e, 'reason', e)}; {retry}"]
    except SettingError as e:   # a hemisphere that is neither north nor south, a latitude beyond 90, ...
        return None, None, [f"{e}; edit {e.setting.upper()} and run again"]
    if name:
        result.path = name
    lines = [result.summary()] + ([UNFAMILIAR_WARNING] if result.unfamiliar else [])
    # Decoded once more, at the figure's size; the heat maps and both pictures are drawn from it.
    shown = open_rgb(image, min_size=DISPLAY_SIZE, reduce=True)
    seen = shown
    if isinstance(footprint_km, (int, float)):   # the heat maps of the view the model answered ("auto": as it is)
        seen = presets.at_footprint(shown, float(footprint_km), predictor.km_per_pixel, predictor.smallest_view)
    fig = plot_prediction(shown, result, grad_cams(predictor, seen, result), place=place_alone(predictor, result))
    return result, fig, lines


def load_or_explain(path=None, device="cpu", camera=None) -> Predictor | None:
    """``predict.load_model``, printing one sentence instead of raising (notebooks)."""
    from .predictor import load_model
    from .rows import SettingError

    try:
        return load_model(path, device, camera=camera)
    except (CheckpointError, SettingError) as e:
        print(f"no model loaded: {e}")
        return None
