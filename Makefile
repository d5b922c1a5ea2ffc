# Two entry points for a fresh machine: `make demo` (the main job on the built-in default) and `make test`.
PYTHON ?= python3
FMNIST := /usr/share/datasets/fashion-mnist

.PHONY: install data demo test lint wheel-check settings-docs

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

# Every core (pytest-xdist; the tests that start Ray one at a time on one worker, tests/conftest.py), then the Ray
# cluster tests alone: their nodes time out starting on a busy machine.
test: install data
	$(PYTHON) -m pytest -q -n auto --dist loadgroup -m "not serial"
	$(PYTHON) -m pytest -q -m serial

# What a user installing the wheel gets: build it, install it with its dependencies into a fresh virtual
# environment outside the checkout, and run the main commands from an empty directory.
wheel-check: data
	@set -e; scratch=$$(mktemp -d); trap 'rm -rf "$$scratch"' EXIT; \
	$(PYTHON) -m pip wheel -q --no-deps -w "$$scratch/dist" . ; \
	$(PYTHON) -m venv "$$scratch/venv"; \
	"$$scratch/venv/bin/python" -m pip install -q "$$scratch"/dist/autoprune-*.whl; \
	mkdir "$$scratch/empty"; cd "$$scratch/empty"; \
	"$$scratch/venv/bin/autoprune" --help >/dev/null; \
	"$$scratch/venv/bin/autoprune" models; \
	"$$scratch/venv/bin/autoprune" search --budget 0.25flops --evals 4 --finalists 2 --finetune-epochs 1; \
	test -f runs/resnet20-0.25flops-anneal-s0/best.json -a -f runs/resnet20-0.25flops-anneal-s0/finetuned.pt; \
	echo "wheel-check: the installed wheel ran autoprune --help, models and search (with finalists and a fine-tune) from an empty directory"

lint:
	ruff check autoprune tests experiments

# agents/*.yaml and docs/settings.md, produced from the settings models' fields (tests/test_settings_docs.py)
settings-docs:
	$(PYTHON) -c "from pathlib import Path; from autoprune.app.settings_docs import write_settings_docs as w; print(*w(Path('docs')), sep='\n')"
