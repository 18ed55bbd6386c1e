# The two set-up commands of the README. Each creates .venv if it is missing and installs into it.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test lint install clean k8s

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/pixelplexus demo --out demo-output

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint
	$(BIN)/python -m pytest

k8s: $(STAMP)  # the RayService's serveConfigV2 (k8s/) from serve/config.yaml
	$(BIN)/pixelplexus k8s render --root $(CURDIR)

clean:
	rm -rf demo-output .pytest_cache .ruff_cache
