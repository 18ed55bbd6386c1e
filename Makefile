# The two set-up commands of the README. Each creates .venv if it is missing and installs into it.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test lint install clean k8s system-packages

# System packages some tests need, installed with apt when missing and running as root (as CI does); otherwise
# those tests skip with the reason: the ncnn oracle's Vulkan loader and OpenMP (libGL for its OpenCV), and
# Debian's chromium for the service page's browser test (driven by the playwright package; the browser is never
# downloaded by a test tool).
SYSTEM_PACKAGES := libvulkan1 libomp5 libgl1 libglib2.0-0 chromium

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

system-packages:
	@missing=$$(for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -z "$$missing" ] || ! command -v dpkg >/dev/null; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing $$missing (apt)"; \
		(apt-get install -y -qq $$missing || (apt-get update -qq && apt-get install -y -qq $$missing)) >/dev/null \
			|| echo "could not install $$missing: the tests that need them skip"; \
	else echo "not installing $$missing (needs root and apt): the tests that need them skip"; fi

test: lint system-packages
	$(BIN)/python -m pytest

k8s: $(STAMP)  # the RayService's serveConfigV2 (k8s/) from serve/config.yaml
	$(BIN)/pixelplexus k8s render --root $(CURDIR)

clean:
	rm -rf demo-output .pytest_cache .ruff_cache
