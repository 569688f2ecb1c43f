# bayesim: the README's two commands are `make demo` and `make test`.
# Both create or refresh .venv (only when pyproject.toml or constraints.txt changed, so a second
# run takes seconds), make Fashion-MNIST available, then run the demo or the tests.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.bayesim-installed
FMNIST_DEBIAN := /usr/share/datasets/fashion-mnist
OUT    ?= runs/demo

.PHONY: demo test setup data lint clean

demo: setup data
	$(VENV)/bin/bayesim demo --out $(OUT)

test: setup data
	$(PY) -m pytest -q

lint: setup
	$(VENV)/bin/ruff check .

setup: $(STAMP)

# torch==2.13.0 goes in first and stays pinned (constraints.txt) so that no later step pulls a
# CUDA build; aihwkit and bayesian-torch (test peers) are installed without their declared
# dependencies for the same reason (both declare torchvision; bayesian-torch's layers never
# import it).
$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -c constraints.txt -e ".[dev]"
	$(PIP) install -q --no-deps aihwkit==1.1.0
	$(PIP) install -q --no-deps bayesian-torch==0.5.0
	touch $(STAMP)

# Fashion-MNIST: $$BAYESIM_DATA/fashion-mnist if the user set it, else Debian's
# dataset-fashion-mnist package when apt-get can be used, else a message saying what to do.
data:
	@if [ -n "$${BAYESIM_DATA:-}" ] && [ -d "$${BAYESIM_DATA}/fashion-mnist" ]; then \
	  echo "Fashion-MNIST: $${BAYESIM_DATA}/fashion-mnist"; \
	elif [ -d $(FMNIST_DEBIAN) ]; then \
	  echo "Fashion-MNIST: $(FMNIST_DEBIAN)"; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  echo "Installing Fashion-MNIST (Debian package dataset-fashion-mnist)"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null) \
	    || echo "note: apt-get could not install dataset-fashion-mnist; see 'Data' in README.md"; \
	else \
	  echo "note: Fashion-MNIST not found. Put its four IDX files in \$$BAYESIM_DATA/fashion-mnist"; \
	  echo "      or run '$(VENV)/bin/bayesim data fetch fashion-mnist' (needs internet)."; \
	fi

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache *.egg-info
