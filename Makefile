# Two commands do everything on a fresh machine: `make demo` and `make test`.
# Needs: make, Python >= 3.11 with the venv module, network access for pip (install only).
PY_BOOT ?= python3
VENV    ?= .venv
PYTHON  := $(VENV)/bin/python
STAMP   := $(VENV)/.install-stamp
# torch comes from PyTorch's CPU wheel index on machines without `nvidia-smi` (no CUDA
# libraries: a far smaller download), from PyPI's default (CUDA) build otherwise. Override with
# `make install TORCH_INDEX=` (PyPI's default build) or another index URL. When the index cannot
# be reached, the install warns and falls back to PyPI's torch.
TORCH_CPU_INDEX := https://download.pytorch.org/whl/cpu
TORCH_INDEX ?= $(if $(shell command -v nvidia-smi 2>/dev/null),,$(TORCH_CPU_INDEX))
TORCH_PIN   := $(shell grep -E '^torch==' requirements.txt)
# The demo's knobs (the tests run the same path with PRESET=smoke). PRESET=auto picks demo
# where bf16 is native and faster than fp32, demo_fp32 elsewhere (examples/run_demo.py).
PRESET  ?= auto
CORPUS  ?= data/demo
RUN     ?= runs/$(if $(filter auto,$(PRESET)),demo,$(PRESET))
OUT     ?=
REDO    ?=
# Training settings for the demo, space separated: make demo SET="run.max_steps=3000"
SET     ?=
DEMO_ARGS = --preset $(PRESET) --corpus $(CORPUS) --run-dir $(RUN) $(if $(OUT),--out-dir $(OUT),) \
            $(if $(REDO),--redo,) $(foreach s,$(SET),--set $(s))

.PHONY: install check-python demo demo-run reference study study-reference downstream \
        downstream-headline test lint bench clean

install: check-python $(STAMP)

# The interpreter that will run everything: the venv's when it exists, else PY_BOOT.
check-python:
	@$(if $(wildcard $(PYTHON)),$(PYTHON),$(PY_BOOT)) -c 'import sys, venv; v = sys.version_info; \
	sys.exit(0 if v >= (3, 11) else "error: zhbert needs Python >= 3.11 (the pinned numpy, scipy, \
	pandas, matplotlib and transformers do); this one is %d.%d: make PY_BOOT=python3.11 ..." % v[:2])'

# Re-install only when a requirements file (or the package metadata) changed.
$(STAMP): requirements.txt requirements-dev.txt requirements-nodeps.txt pyproject.toml
	test -x $(PYTHON) || $(PY_BOOT) -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(if $(TORCH_INDEX),$(PYTHON) -m pip install --quiet --timeout 30 --retries 1 --index-url $(TORCH_INDEX) \
		'$(TORCH_PIN)' || echo "warning: could not install torch from $(TORCH_INDEX); \
		installing PyPI's default build instead" >&2,)
	$(PYTHON) -m pip install --quiet -r requirements-dev.txt
	$(PYTHON) -m pip install --quiet --no-deps -r requirements-nodeps.txt
	$(PYTHON) -m pip install --quiet --no-deps --no-build-isolation -e .
	@$(PYTHON) -c 'import torch; print("installed torch", torch.__version__)'
	touch $(STAMP)

demo: install
	$(MAKE) --no-print-directory demo-run PYTHON=$(PYTHON)

# The main job: corpus -> training -> analysis -> figures -> fill-mask; outputs under $(RUN).
demo-run:
	$(PYTHON) examples/run_demo.py $(DEMO_ARGS)

# The only command that rewrites the committed results/ and README's table (clean tree only).
reference: install
	$(PYTHON) examples/run_demo.py $(DEMO_ARGS) --update-reference

# The recipe study: the original recipe against the modern one at equal tokens (16 min 18 s on
# 2 cores; total_s in results/study/study.json; prepares the demo corpus when missing). Outputs under runs/study/.
study: install
	$(PYTHON) examples/run_study.py --corpus $(CORPUS) --runs runs/study

# Refresh the committed study results (results/study/) and README's study table.
study-reference: install
	$(PYTHON) examples/run_study.py --corpus $(CORPUS) --runs runs/study --out-dir results/study \
		--update-readme

# The downstream study (after make demo): fine-tune the demo run's checkpoints and a random init
# on ner, cws and sentiment, 3 seeds each, with a fixed small budget (studies/downstream_study.py;
# its wall time is in results/downstream/study/study.json). Rewrites results/downstream/study/
# and README's study block (committed code only).
downstream: install
	$(PYTHON) studies/downstream_study.py --run $(RUN) --update-readme

# The headline score of each task: one longer fine-tune of $(RUN)/final on the whole train split
# (studies/downstream_headline.py; results/downstream/headline/, times in headline.json).
downstream-headline: install
	$(PYTHON) studies/downstream_headline.py --run $(RUN) --update-readme

test: install
	$(PYTHON) -m pytest -n 2 tests

# ruff, then the import contracts in pyproject.toml ([tool.importlinter]).
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports --no-cache

bench: install
	$(PYTHON) benchmarks/train_throughput.py --arch paper demo efficient --json results/bench_train_throughput.json
	$(PYTHON) benchmarks/optimizer_step.py --json results/bench_optimizer_step.json

clean:
	rm -rf runs .pytest_cache .ruff_cache .import_linter_cache
