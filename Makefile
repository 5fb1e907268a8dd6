# duda: the commands the README promises. Everything runs inside .venv in the repo root.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
export NO_ALBUMENTATIONS_UPDATE := 1
export PYTHONUNBUFFERED := 1

.PHONY: install demo test test-all lint format constraints clean bench-speed bench-accuracy model-table notebooks

install: $(VENV)/.installed  ## create .venv and install duda with its dev extras

$(VENV)/.installed: pyproject.toml constraints.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e ".[dev]"
	touch $@

demo: install  ## DUDA (MiT-B2 pair -> MiT-B0 student) on the embedded synthetic benchmark (data generated on first use)
	HF_HUB_OFFLINE=1 $(PY) -m duda.train +experiment=synth_duda

bench-speed: install  ## step time/memory ratios, EMA, data and inference figures -> bench/speed.{json,md}
	HF_HUB_OFFLINE=1 $(PY) -m duda.bench speed --out bench $(BENCH_ARGS)

bench-accuracy: install  ## every method x 3 seeds on the embedded benchmark -> bench/accuracy.{json,md,png}
	HF_HUB_OFFLINE=1 WANDB_MODE=offline $(PY) -m duda.bench accuracy --style day --data-seed 0 --seeds 0,1,2 --jobs 2 --out bench $(BENCH_ARGS)

model-table: install  ## README "Models" backbone table: params and FLOPs at 512x512 of conf/model/backbone/*
	HF_HUB_OFFLINE=1 $(PY) -m duda.models.table --size 512x512 --readme README.md

RUNS ?= outputs
notebooks: install  ## both notebooks, headless -> outputs/notebooks/ (RUNS=folder of runs, CHECKPOINT=model_final.pt)
	mkdir -p outputs/notebooks
	$(PY) -m papermill --no-progress-bar notebooks/compare_runs.ipynb outputs/notebooks/compare_runs.ipynb \
		-p runs_dir $(RUNS) -p out_dir outputs/notebooks/compare_runs
	$(PY) -m papermill --no-progress-bar notebooks/predictions.ipynb outputs/notebooks/predictions.ipynb \
		$(if $(CHECKPOINT),-p checkpoint $(CHECKPOINT)) -p out_dir outputs/notebooks/predictions

test: install  ## the fast suite (what CI runs)
	HF_HUB_OFFLINE=1 WANDB_MODE=offline $(PY) -m pytest -m "not slow" -q

test-all: install  ## everything, slow tests included
	HF_HUB_OFFLINE=1 WANDB_MODE=offline $(PY) -m pytest -q

lint: install
	$(VENV)/bin/ruff check duda hydra_plugins tests
	$(VENV)/bin/ruff format --check duda hydra_plugins tests

format: install
	$(VENV)/bin/ruff check --fix duda hydra_plugins tests
	$(VENV)/bin/ruff format duda hydra_plugins tests

constraints:  ## re-pin constraints.txt from the current environment
	$(PY) -m pip freeze --exclude-editable | grep -v '^-e' > constraints.txt

clean:
	rm -rf outputs multirun .pytest_cache .ruff_cache
