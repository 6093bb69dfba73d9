# deepmetric — the set-up commands: `make demo` (train Triplet vs ArcFace on digits, write a report) and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
DEMO_OUT   := runs/demo
DEMO_ARGS  := --dataset digits --epochs 5 --batch-size 256
# torch first, pinned to the CPU build on this disk: any other spec lets pip fetch a multi-GB CUDA build.
TORCH  := torch==2.13.0

.PHONY: install test lint bench demo clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP): $(PY) pyproject.toml
	$(PY) -m pip install --quiet $(TORCH)
	$(PY) -m pip install --quiet -e ".[test,dev,faiss,tensorboard,umap]"
	touch $(STAMP)

install: $(STAMP)

# umap-learn (the tutorial's visualizer) and matplotlib (plots) come with the `umap` extra above
demo: $(STAMP)
	rm -rf $(DEMO_OUT)
	$(PY) examples/tutorial_triplet_vs_arcface.py --loss triplet $(DEMO_ARGS) --out $(DEMO_OUT)
	$(PY) examples/tutorial_triplet_vs_arcface.py --loss arcface $(DEMO_ARGS) --out $(DEMO_OUT)
	$(PY) -m deepmetric report $(DEMO_OUT) --runs triplet arcface \
		--title "deepmetric demo: Triplet vs ArcFace on digits"

lint: install
	$(VENV)/bin/ruff check src tests benchmarks examples
	$(VENV)/bin/mypy

test: lint
	$(PY) -m pytest -q $(PYTEST_ARGS)

bench: install
	$(PY) -m benchmarks $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache build src/*.egg-info
