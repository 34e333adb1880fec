# Two entry points: `make demo` (the canonical quickstart) and `make test`
# (the suite once per Keras backend, each in its own process).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
BACKENDS ?= tensorflow jax torch
PYTEST_ARGS ?=

.PHONY: venv demo test test-fast test-tensorflow test-jax test-torch lint bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml requirements/constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c requirements/constraints.txt -e ".[all]"
	touch $(STAMP)

demo: $(STAMP)
	KERAS_BACKEND=$${KERAS_BACKEND:-tensorflow} $(PY) examples/quickstart.py

# Each backend runs in its own process, all three at once (tests/support/run_backends.sh);
# the target fails if any backend did. `make test-<backend>` runs one.
test: $(STAMP)
	@tests/support/run_backends.sh $(PY) "$(BACKENDS)" --durations=10 $(PYTEST_ARGS)

# The same without the tests marked slow.
test-fast: $(STAMP)
	@tests/support/run_backends.sh $(PY) "$(BACKENDS)" -m "not slow" $(PYTEST_ARGS)

# One backend (explicit targets: make skips pattern rules for .PHONY targets).
test-tensorflow test-jax test-torch: $(STAMP)
	KERAS_BACKEND=$(@:test-%=%) $(PY) -m pytest -q $(PYTEST_ARGS)

# Style and static checks (configuration in pyproject.toml).
lint: $(STAMP)
	$(VENV)/bin/ruff check .

$(VENV)/.bench: $(STAMP)
	$(PY) -m pip install -q -c requirements/constraints.txt -e ".[bench]"
	touch $@

# First what a user gets from Keras's default compile() (KAN vs an equal-size MLP);
# then side-by-side tables (ratios) of KANDense, an equal-size MLP, the matmul floor
# and the PyPI peers; seconds per L-BFGS step; the basis paths before and after
# a grid update; the grid-extension experiment beside pykan.
bench: $(VENV)/.bench
	$(PY) benchmarks/compare.py --defaults --configs 1,2
	$(PY) benchmarks/layer_speed.py
	$(PY) benchmarks/compare.py
	$(PY) benchmarks/lbfgs_speed.py
	$(PY) benchmarks/grid_paths.py
	$(PY) benchmarks/grid_extension_vs_pykan.py

clean:
	rm -rf $(VENV) build *.egg-info
