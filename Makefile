# Two entry points for a fresh machine: `make demo` (the main job on the built-in default) and `make test`.
PYTHON ?= python3
FMNIST := /usr/share/datasets/fashion-mnist

.PHONY: install data demo test lint

install:
	$(PYTHON) -m pip install -q -e ".[dev]"

# Fashion-MNIST from Debian's package; elsewhere pass --data-dir (or set AUTOPRUNE_DATA_DIR).
data:
	@if [ ! -d $(FMNIST) ]; then \
	  if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist) >/dev/null; \
	  else echo "Fashion-MNIST missing: run 'sudo apt-get install dataset-fashion-mnist' or pass --data-dir"; fi; \
	fi

demo: install data
	rm -rf runs/demo
	autoprune search --budget 0.25flops --out runs/demo

test: install data
	$(PYTHON) -m pytest -q

lint:
	ruff check autoprune tests experiments
