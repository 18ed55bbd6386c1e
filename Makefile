# The two set-up commands of the README. Each creates .venv if it is missing and installs into it.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test lint install browser clean k8s

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

# The service page's browser test drives Debian's chromium (headless, through the playwright package; the
# browser is never downloaded). Installed when missing if we are root with apt; otherwise that test skips.
browser:
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
		&& (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) \
		|| echo "chromium is not installed (needs root and apt): the browser test will skip"; }

test: lint browser
	$(BIN)/python -m pytest

k8s: $(STAMP)  # the RayService's serveConfigV2 (k8s/) from serve/config.yaml
	$(BIN)/pixelplexus k8s render --root $(CURDIR)

clean:
	rm -rf demo-output .pytest_cache .ruff_cache
