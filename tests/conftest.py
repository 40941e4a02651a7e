"""Shared fixtures: a tiny processed data set made by the real pipeline."""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def tiny_processed(tmp_path_factory) -> Path:
    """Synthetic scenes (1 per biome x month, 64 px) run through preprocessing."""
    from biomeseason.prepare.preprocess import preprocess
    from biomeseason.synthetic.generate import write_scenes

    base = tmp_path_factory.mktemp("tiny")
    write_scenes(base / "raw", per_class=1, seed=0, size=64, progress=False)
    preprocess(base / "raw", base / "processed", size=64, seed=0, workers=1, progress=False)
    return base / "processed"


@pytest.fixture(scope="session")
def python() -> str:
    return sys.executable


def _signals_as_in_a_terminal() -> None:
    """In the child before exec: Ctrl-C and kill act as they do in a terminal, even when
    whatever started the tests ignored SIGINT (a background job) or blocked SIGTERM."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})


@pytest.fixture
def spawn():
    """``spawn(cmd, **popen_kwargs)`` starts a command in a session of its own; whatever is
    still running of it (workers included) is killed when the test ends, pass or fail."""
    started = []

    def start(cmd, **kwargs) -> subprocess.Popen:
        process = subprocess.Popen(cmd, start_new_session=True, preexec_fn=_signals_as_in_a_terminal, **kwargs)
        started.append(process)
        return process

    yield start
    for process in started:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=60)


def assert_clean_notebook(path) -> None:
    """An executed notebook holds no error output and prints no warning (``make test`` fails on either)."""
    import re

    import nbformat

    problems = []
    for i, cell in enumerate(nbformat.read(path, as_version=4).cells):
        for output in cell.get("outputs", []):
            if output.output_type == "error":
                problems.append(f"cell {i}: {output.ename}: {output.evalue}")
            elif output.output_type == "stream" and re.search(r"\w*Warning\b", output.get("text", "")):
                problems.append(f"cell {i}: {output['text'].strip()[:300]}")
    assert not problems, f"{path} has outputs a user should not see: " + " | ".join(problems)
