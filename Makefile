# Local bring-up and checks. `make run` and `make test` work on a fresh clone: they create
# .venv, install the package and its tools, fetch the OCR models into MODEL_DIR, then serve
# or test. Nothing here needs root except installing python3-venv where it is missing.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: run test lint models models-clip install system-deps test-deps clean help

help:
	@echo "make run     install what is missing, fetch models, serve on :$${HTTP_PORT:-8060}"
	@echo "make test    install what is missing, fetch models, run the test suite"
	@echo "make lint    ruff over the tree"
	@echo "make models  fetch and verify the OCR models into MODEL_DIR"
	@echo "make models-clip  fetch the Chinese-CLIP models (about 700 MB)"

run: models
	$(BIN)/mtai serve

test: models test-deps
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .

models: $(STAMP)
	$(BIN)/mtai models fetch ocr

# Chinese-CLIP ViT-B-16 for /clip/img and /clip/txt: about 700 MB from the MT-Photos release.
models-clip: $(STAMP)
	$(BIN)/mtai models fetch clip

install: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	@$(MAKE) --no-print-directory system-deps
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip "setuptools>=61" wheel
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

# Debian/Armbian ship Python without venv/ensurepip; install it when it is missing.
system-deps:
	@$(PYTHON) -c "import venv, ensurepip" 2>/dev/null || { \
	  echo "installing python3-venv with apt-get"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -q && $$SUDO apt-get install -y -q python3-venv python3-dev; }

# The status-page test renders in headless Chromium, from Debian's package.
test-deps:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || { \
	  echo "installing chromium with apt-get (for the status page test)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -q && $$SUDO apt-get install -y -q chromium; }

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
