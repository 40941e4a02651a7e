# make demo  - synthetic scenes -> preprocessing -> train.ipynb -> predict.ipynb -> hex2name.ipynb
# make test  - the test suite (CPU, tiny data)
# Both create .venv from requirements.txt first if it is missing or stale.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
DEMO_DIR ?= runs/demo

.PHONY: setup demo test bench clean

setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $@

demo: $(STAMP)
	$(PY) -m biomeseason demo --out $(DEMO_DIR)

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q -n 2

# astronaut.py last: it scores the models that real.py (and make demo) train.
bench: $(STAMP)
	for b in $(filter-out bench/astronaut.py,$(wildcard bench/[!_]*.py)) bench/astronaut.py; do $(PY) $$b || exit 1; done

# Deletes only folders that biomeseason wrote (they carry a .biomeseason marker).
clean: $(STAMP)
	$(PY) -m biomeseason clean $(DEMO_DIR) data/processed
	rm -rf .pytest_cache .ruff_cache
