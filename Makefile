# make demo  - synthetic scenes -> preprocessing -> train.ipynb -> predict.ipynb -> hex2name.ipynb
# make test  - the test suite (CPU, tiny data)
# make lab   - JupyterLab on the repository with the project's kernel
# make earth-model - the shipped model models/earth.pt from every land tile of the Blue Marble maps: its
#                    composite kind, then (earth-camera) its photo kind
# make earth-camera - the photo kind alone, for the models/earth.pt there (README "Per camera")
# Both create .venv from requirements.txt first if it is missing or stale.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
DEMO_DIR ?= runs/demo

.PHONY: setup demo test bench clean earth-model earth-camera lab

setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $@

# JupyterLab on the repository, with the project's kernel (python3 of .venv); Ctrl-C stops it.
lab: $(STAMP)
	$(VENV)/bin/jupyter lab --notebook-dir=.

demo: $(STAMP)
	$(PY) -m biomeseason demo --out $(DEMO_DIR)

# The shipped model: every land tile of the Blue Marble maps, labelled by the world map's rule, the
# shared tiles' regions held out; trained from scratch (about 40 minutes on 2 cores), scored, and written
# to models/earth.pt only if it beats the one there; then its photo kind (earth-camera, about 15 minutes).
# EARTH_OPTS and TRAIN_OPTS add options, e.g. the camera recipe that reads other cameras better and the
# Blue Marble worse (README, "Per camera"):
#   make earth-model EARTH_OPTS="--astronaut-views 3000" TRAIN_OPTS="--epochs 12 --camera 0.7 --min-crop 0.1"
EARTH_DIR ?= runs/earth
EARTH_OPTS ?=
TRAIN_OPTS ?=
earth-model: $(STAMP)
	$(PY) -m biomeseason earth --out $(EARTH_DIR) --hold-out-regions data/bluemarble/labels.csv $(EARTH_OPTS)
	$(PY) dataset_preproc.py --raw $(EARTH_DIR)/raw --labels $(EARTH_DIR)/labels.csv --out $(EARTH_DIR)/processed --size 64
	$(PY) -m biomeseason train --data $(EARTH_DIR)/processed --out $(EARTH_DIR)/model --epochs 20 --image-size 64 --view overhead \
	    $(TRAIN_OPTS)
	$(PY) -m biomeseason ship $(EARTH_DIR)/model/best.pt --earth $(EARTH_DIR)
	$(MAKE) earth-camera EARTH_DIR=$(EARTH_DIR)

# The photo kind (README, "Per camera"; biomeseason/model/kinds.py): models/earth.pt keeps reading the
# composites as it does, and learns its own first layers, batch norms and heads for photos of other cameras
# (6 epochs, about 15 minutes on 2 cores); `ship --base` writes both kinds into models/earth.pt only if the
# photo kind reads the shared tiles through simulated cameras better than the model there.
CAMERA_OPTS ?= --camera 0.5 --lr 1e-3 --distill 4
earth-camera: $(STAMP)
	$(PY) -m biomeseason train --data $(EARTH_DIR)/processed --out $(EARTH_DIR)/camera --epochs 6 --image-size 64 \
	    --view overhead --own-camera --init models/earth.pt --teacher models/earth.pt \
	    --init-camera composite --teacher-camera composite $(CAMERA_OPTS)
	$(PY) -m biomeseason ship $(EARTH_DIR)/camera/best.pt --earth $(EARTH_DIR) --base models/earth.pt

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q -n 2

# astronaut.py last: it scores the models that real.py (and make demo) train.
# bench/preprocess.py has two parts, run one after the other.
bench: $(STAMP)
	for b in $(filter-out bench/astronaut.py bench/preprocess.py,$(wildcard bench/[!_]*.py)) \
	         "bench/preprocess.py photos" "bench/preprocess.py scale" bench/astronaut.py; do $(PY) $$b || exit 1; done

# Deletes only folders that biomeseason wrote (they carry a .biomeseason marker).
clean: $(STAMP)
	$(PY) -m biomeseason clean $(DEMO_DIR) data/processed
	rm -rf .pytest_cache .ruff_cache
