"""Shared fixtures: a tiny processed data set made by the real pipeline."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def tiny_processed(tmp_path_factory) -> Path:
    """Synthetic scenes (1 per biome x month, 64 px) run through preprocessing."""
    from biomeseason.preprocess import preprocess
    from biomeseason.synthetic import write_scenes

    base = tmp_path_factory.mktemp("tiny")
    write_scenes(base / "raw", per_class=1, seed=0, size=64, progress=False)
    preprocess(base / "raw", base / "processed", size=64, seed=0, workers=1, progress=False)
    return base / "processed"


@pytest.fixture(scope="session")
def python() -> str:
    return sys.executable
