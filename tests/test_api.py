"""The package's face: ``import biomeseason`` offers what a notebook needs, each name loaded on first use."""
import subprocess
import sys

import pytest

import biomeseason


def test_import_biomeseason_loads_no_torch():
    code = "import sys, biomeseason; print('torch' in sys.modules, 'biomeseason.predict' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False"]


@pytest.mark.parametrize("name", biomeseason.__all__)
def test_every_public_name_is_the_object_its_module_defines(name):
    import importlib

    value = getattr(biomeseason, name)
    assert value is getattr(importlib.import_module(biomeseason._API[name]), name)
    assert name in dir(biomeseason)


def test_the_names_a_notebook_imports():
    from biomeseason import Predictor, dominant_colors, fit, load_model, preprocess

    assert callable(load_model) and callable(dominant_colors) and callable(preprocess) and callable(fit)
    assert Predictor.__name__ == "Predictor"


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'predictt'"):
        biomeseason.predictt  # noqa: B018
