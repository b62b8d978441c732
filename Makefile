# Two commands do everything on a fresh machine: `make demo` and `make test`.
PY_BOOT ?= python3
VENV    ?= .venv
PYTHON  := $(VENV)/bin/python
STAMP   := $(VENV)/.install-stamp
# The demo's knobs (the tests run the same path with PRESET=smoke).
PRESET  ?= demo
CORPUS  ?= data/demo
RUN     ?= runs/$(PRESET)
RESULTS ?= results
REDO    ?=

.PHONY: install demo demo-run test lint bench clean

install: $(STAMP)

# Re-install only when a requirements file (or the package metadata) changed.
$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	test -x $(PYTHON) || $(PY_BOOT) -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -m pip install --quiet -r requirements-dev.txt
	$(PYTHON) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

demo: install
	$(MAKE) --no-print-directory demo-run PYTHON=$(PYTHON)

# The main job: corpus -> training -> analysis -> figures -> export -> fill-mask.
demo-run:
	$(PYTHON) examples/run_demo.py --preset $(PRESET) --corpus $(CORPUS) --run-dir $(RUN) \
		--results $(RESULTS) $(if $(REDO),--redo,)

test: install
	$(PYTHON) -m pytest -n 2 tests

lint: install
	$(VENV)/bin/ruff check .

bench: install
	$(PYTHON) benchmarks/train_throughput.py --json results/bench_train_throughput.json

clean:
	rm -rf runs .pytest_cache .ruff_cache
