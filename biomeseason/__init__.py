"""biomeseason: classify photos of the Earth by biome and month, and name their colours.

What a notebook needs, imported on first use (``import biomeseason`` stays fast and loads no torch)::

    import biomeseason as bs
    bs.preprocess("data/raw", "data/processed")            # data/raw -> data/processed
    result = bs.fit(bs.TrainConfig(data="data/processed", out="models"))
    predictor = bs.load_model()                            # models/best.pt, else the shipped models/earth.pt
    predictor.predict("photo.jpg", lat=49.9, lon=21.2)
    bs.show_prediction(predictor, "photo.jpg")             # the answer, its top-3 and where the model looked
    bs.browse(predictor, "photos/")                        # pick photo after photo (and a place): it redraws
    bs.dominant_colors("photo.jpg", k=5)                   # the palette, named, with shares

The folders are the architecture (README "How it is built"): ``io`` (reading images, writing files,
worker processes), ``prepare``, ``earth``, ``synthetic``, ``model``, ``training``, ``predict``, ``colors``.
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

# public name -> the module that defines it
_API = {
    "read_image": "biomeseason.io.images",
    "ImageError": "biomeseason.io.images",
    "UsageError": "biomeseason.io.files",
    "Vocabulary": "biomeseason.labels",
    "season_of": "biomeseason.labels",
    "preprocess": "biomeseason.prepare.preprocess",
    "TrainConfig": "biomeseason.training.config",
    "check_inputs": "biomeseason.training.inputs",
    "fit": "biomeseason.training.loop",
    "seed_everything": "biomeseason.training.loop",
    "load_model": "biomeseason.predict.predictor",
    "Predictor": "biomeseason.predict.predictor",
    "show_prediction": "biomeseason.predict.explain",
    "load_or_explain": "biomeseason.predict.explain",
    "browse": "biomeseason.predict.browse",
    "dominant_colors": "biomeseason.colors.palette",
    "analyze_colors": "biomeseason.colors.palette",
    "plot_palette": "biomeseason.colors.palette",
    "colors_of_files": "biomeseason.colors.palette",
}
__all__ = sorted(_API)


def __getattr__(name: str):
    if name not in _API:
        raise AttributeError(f"module 'biomeseason' has no attribute {name!r}")
    value = getattr(importlib.import_module(_API[name]), name)
    globals()[name] = value   # the next lookup skips this function
    return value


def __dir__():
    return sorted(set(globals()) | set(_API))
