# The project's DAG. `make test` and `make report` create what they need (.venv, data) on first use.
# Conda users: make test VENV=$CONDA_PREFIX (after `conda env create -f environment.yml`).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
KERNEL := invadv-centers
export INVADV_DATA ?= $(CURDIR)/data
export INVADV_RUNS ?= $(CURDIR)/runs
RAW := $(INVADV_DATA)/MNIST/raw
PROFILE ?= paper
SET ?=
EXTENDED ?=
# RECOMPUTE=1 recomputes committed products (products/PROFILE/) whose code differs, or whose values differ without
# a SET; without it `make report` says what would be recomputed and why, and stops (lib/pipeline/reuse.py).
RECOMPUTE ?=
# EXTENDED=0 leaves out the extension (models C and D, robustness, probe, dimension sweep, extra seeds).
OVERRIDES = $(strip $(SET) $(if $(EXTENDED),extended=$(EXTENDED)))

.PHONY: help env data report carry test test-cluster bench bench-quick nbval-refresh docs lab orphans clean-orphans clean-venv
help:
	@echo "make report  - run the pipeline and render reports/report*.html (PROFILE=paper|quick|smoke, SET=\"epochs=3 ...\", EXTENDED=0, RECOMPUTE=1)"
	@echo "make test    - create .venv and data if missing, run the whole test suite"
	@echo "make test-cluster - the smoke study through Snakemake on a one-node Slurm cluster it starts (root)"
	@echo "make bench   - time our training epoch and inverse PGD against reference-style loops (bench-quick: CPU-sized)"
	@echo "make lab     - JupyterLab on localhost with the project kernel"
	@echo "make carry   - copy the run's finished products into products/PROFILE/ to commit (make report restores them)"
	@echo "make orphans - list product folders in runs/ that no key of this PROFILE and SET names (clean-orphans removes them)"
	@echo "make docs    - rewrite the numbers the README and docs/ quote from reports/results/paper/, and its picture"
	@echo "make data    - fetch and verify MNIST into $(INVADV_DATA)"
	@echo "make env     - create/refresh the virtual environment only"

env: $(VENV)/.installed

# Pins live in pyproject.toml; tools/pins.py reads them so nothing is listed twice.
$(VENV)/.installed: pyproject.toml tools/pins.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -e '.[test,workflow]'
	$(PY) -m pip install -q --disable-pip-version-check --no-deps $$($(PY) tools/pins.py runtime-no-deps)
	$(PY) -m ipykernel install --sys-prefix --name $(KERNEL) --display-name "Python ($(KERNEL))"
	touch $@

data: $(RAW)/.verified
$(RAW)/.verified: | $(VENV)/.installed
	$(PY) -m lib.core.data --root $(INVADV_DATA)
	touch $@

# The DAG of notebooks lives in a generated Makefile whose targets are content-keyed products
# (lib/pipeline.py); `make -j4 report` runs independent trainings and ε runs in parallel.
# `make -n report ...` lists the steps that would run without running them (`+` writes the DAG even then).
# Before running, `makefile` prints the steps to run and their estimated time on this machine (lib/cost.py);
# under -jN (N > 1) the steps keep their output to their notebooks and `watch` shows one progress line.
report: $(VENV)/.installed $(RAW)/.verified
	+@$(PY) -m lib.pipeline --profile $(PROFILE) --set "$(OVERRIDES)" makefile $(if $(filter 1,$(RECOMPUTE)),--recompute) >/dev/null
	@$(PY) -m lib.pipeline --profile $(PROFILE) --set "$(OVERRIDES)" watch & watcher=$$!; \
	$(MAKE) --no-print-directory -f $(INVADV_RUNS)/$(PROFILE)/pipeline.mk PY=$(PY) report; status=$$?; \
	kill $$watcher 2>/dev/null; wait $$watcher 2>/dev/null; exit $$status

# A run longer than a working session: `make carry` copies its finished products (and unfinished trainings'
# last epoch) into products/$(PROFILE)/, which git tracks for the paper profile; `make report` in another clone
# copies back what runs/ lacks and goes on from there (lib/pipeline/carry.py).
carry: $(VENV)/.installed
	@$(PY) -m lib.pipeline --profile $(PROFILE) --set "$(OVERRIDES)" carry

# Products of other parameters or code stay in runs/ (switching back finds them); these list or remove them.
orphans: $(VENV)/.installed
	@$(PY) -m lib.pipeline --profile $(PROFILE) --set "$(OVERRIDES)" orphans

clean-orphans: $(VENV)/.installed
	@$(PY) -m lib.pipeline --profile $(PROFILE) --set "$(OVERRIDES)" orphans --remove

# The suite includes nbval: tests/nbval/ holds smoke-profile notebooks with their outputs, re-executed and
# compared with numbers masked; tests/test_regression.py compares the numbers within stated tolerances.
test: $(VENV)/.installed $(RAW)/.verified
	$(PY) -m pytest

# The smoke study through Snakemake's Slurm executor on a one-node Slurm cluster it brings up on this machine
# (tests/slurm.py: root and Debian's slurm-wlm, slurmdbd, munge and mariadb-server; it skips, saying why, without
# them). Apart from `make test`, which it would push past 15 minutes; .ci/run runs both.
test-cluster: $(VENV)/.installed $(RAW)/.verified
	$(PY) -m pytest -m cluster tests/test_slurm.py

# Same run, same device: ours vs reference-style paths, with a check that both give the same results.
bench: $(VENV)/.installed $(RAW)/.verified
	$(PY) tools/bench.py $(if $(QUICK),--quick)

bench-quick:
	@$(MAKE) --no-print-directory bench QUICK=1

nbval-refresh: $(VENV)/.installed $(RAW)/.verified
	$(PY) tools/refresh_nbval.py

# The numbers the README and docs/ quote, rewritten from reports/results/paper/ (after committing a new paper run;
# tests/test_docs.py fails until they agree), and the README's picture of the committed report's first screen.
docs: $(VENV)/.installed
	$(PY) -m lib.analysis.quoted
	$(PY) -m lib.pipeline.parameters
	$(PY) -m lib.pipeline.browser

# Open the URL it prints (http://127.0.0.1:8888/lab?token=...); LAB_ARGS="--port=9999" etc. pass through.
LAB_ROOT ?= notebooks
lab: $(VENV)/.installed $(RAW)/.verified
	$(PY) -m jupyter lab --no-browser --ip=127.0.0.1 --ServerApp.root_dir=$(LAB_ROOT) \
		$(if $(filter 0,$(shell id -u)),--allow-root) $(LAB_ARGS)

clean-venv:
	rm -rf $(VENV)
