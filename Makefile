# Local bring-up and checks. `make run` and `make test` work on a fresh clone: they create
# .venv, install the package and its tools, fetch the OCR models into MODEL_DIR, then serve
# or test. Nothing here needs root except installing python3-venv where it is missing.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
TOOLKIT_STAMP := $(VENV)/.toolkit-stamp
export PIP_DISABLE_PIP_VERSION_CHECK := 1
# Every install takes the versions CI tested (regenerate with `make lock`).
CONSTRAINTS := deploy/constraints.txt
PIP_INSTALL := $(BIN)/python -m pip install --quiet -c $(CONSTRAINTS)

.PHONY: run test test-fast lint models models-clip models-face install system-deps test-deps \
	clean help install-system uninstall-system toolkit convert lock

help:
	@echo "make run     install what is missing, fetch models, serve on :$${HTTP_PORT:-8060}"
	@echo "make test    install what is missing, fetch models, run the whole test suite"
	@echo "make test-fast  the unit tier only (no service, simulator, installer or browser)"
	@echo "make lint    ruff over the tree"
	@echo "make models  fetch and verify the OCR models into MODEL_DIR"
	@echo "make models-clip  fetch the Chinese-CLIP models (about 700 MB)"
	@echo "make models-face  fetch the InsightFace pack FACE_MODEL names (buffalo_l: 280 MB)"
	@echo "make convert convert MODEL_DIR's models for the NPU (TARGETS=rk3588), self-checked"
	@echo "sudo make install-system    install as a systemd service (deploy/install.sh)"
	@echo "sudo make install-system ROLE=node  install a worker node for another board's service"
	@echo "sudo make uninstall-system  remove it; PURGE=1 also removes settings and models"

run: models
	$(BIN)/mtai serve

test: models test-deps toolkit
	$(BIN)/python -m pytest

# The tiers are pytest markers (setup.cfg): everything unmarked, in well under two minutes.
test-fast: models
	$(BIN)/python -m pytest -m "not (service or simulator or install or browser)"

lint: $(STAMP)
	$(BIN)/ruff check .

models: $(STAMP)
	$(BIN)/mtai models fetch ocr

# Chinese-CLIP ViT-B-16 for /clip/img and /clip/txt: about 700 MB from the MT-Photos release.
models-clip: $(STAMP)
	$(BIN)/mtai models fetch clip

# The InsightFace pack FACE_MODEL names (buffalo_l: 280 MB) for /represent and Immich's faces.
models-face: $(STAMP)
	$(BIN)/mtai models fetch face

install: $(STAMP)

# rknn-toolkit2 (x86_64 converter and simulator: `make convert` and the simulator tests). Its
# declared pins would pull torch<=2.4 with gigabytes of CUDA wheels, so it goes in without its
# dependencies, after the CPU torch wheel, followed by the dependencies it needs with its caps
# (onnxruntime moves back to the last release that accepts protobuf<=4.25.4).
TOOLKIT_DEPS := "numpy<=1.26.4" "onnx<=1.18" "protobuf<=4.25.4" psutil ruamel.yaml scipy tqdm \
	fast-histogram opencv-python-headless onnxruntime "setuptools<70" "onnxslim>=0.1.90"
toolkit: $(TOOLKIT_STAMP)

$(TOOLKIT_STAMP): $(STAMP)
	@if [ "$$(uname -m)" = x86_64 ]; then \
	  echo "installing rknn-toolkit2 2.5.0 (CPU torch, then the toolkit without its pins)"; \
	  $(PIP_INSTALL) torch==2.13.0 && \
	  $(PIP_INSTALL) --no-deps rknn-toolkit2==2.5.0 && \
	  $(PIP_INSTALL) $(TOOLKIT_DEPS) && \
	  $(BIN)/python -c "from rknn.api import RKNN"; \
	else echo "rknn-toolkit2 is installed on x86_64 only here; simulator tests skip"; fi
	touch $@

# Every model family MODEL_DIR holds, converted for the NPU and checked in the simulator
# (on the shared test images when the checkout has them, else on generated ones).
TARGETS ?= rk3588
OCR_SAMPLES ?= $(wildcard ../shared/testdata/ocr)
CLIP_SAMPLES ?= $(wildcard ../shared/testdata/photos)
FACE_SAMPLES ?= $(wildcard ../shared/testdata/photos)
convert: models toolkit
	$(BIN)/mtai convert --target $(TARGETS) $(if $(OCR_SAMPLES),--ocr-samples $(OCR_SAMPLES)) \
	  $(if $(CLIP_SAMPLES),--clip-samples $(CLIP_SAMPLES)) \
	  $(if $(FACE_SAMPLES),--face-samples $(FACE_SAMPLES))

$(STAMP): setup.cfg pyproject.toml $(CONSTRAINTS)
	@$(MAKE) --no-print-directory system-deps
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip "setuptools>=61" wheel
	$(PIP_INSTALL) -e '.[dev]'
	$(PIP_INSTALL) --no-deps insightface==2.1 "onnx<=1.18" tqdm
	touch $@

# deploy/constraints.txt: exact versions of everything setup.cfg asks for (product, rknn and
# dev extras), for x86_64 and aarch64 and every Python the package supports, resolved with
# the toolkit's caps (deploy/constraints.in). The Makefile, deploy/install.sh and the
# Dockerfile install with it. Run after changing a requirement; needs PyPI.
lock: $(STAMP)
	$(BIN)/python -m pip install --quiet uv
	$(BIN)/uv pip compile setup.cfg --extra rknn --extra dev --universal --python-version 3.9 \
	  -c deploy/constraints.in -o $(CONSTRAINTS)

# Debian/Armbian ship Python without venv/ensurepip; install it when it is missing. The OCR
# ground truth (tests, benchmarks/ocr_accuracy.py) renders text in Debian's Noto CJK and DejaVu.
FONTS := /usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc \
	/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf
system-deps:
	@$(PYTHON) -c "import venv, ensurepip" 2>/dev/null || { \
	  echo "installing python3-venv with apt-get"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -q && $$SUDO apt-get install -y -q python3-venv python3-dev; }
	@for font in $(FONTS); do [ -f "$$font" ] || missing=1; done; [ -z "$$missing" ] || { \
	  echo "installing fonts-noto-cjk and fonts-dejavu-core with apt-get (OCR ground truth)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -q && $$SUDO apt-get install -y -q fonts-noto-cjk fonts-dejavu-core; }

# The status-page test renders in headless Chromium, from Debian's package, driven by
# Playwright (the dev extra) through its executable_path: no browser build is downloaded.
test-deps: system-deps
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || { \
	  echo "installing chromium with apt-get (for the status page test)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -q && $$SUDO apt-get install -y -q chromium; }
	@command -v systemd-analyze >/dev/null 2>&1 && command -v shellcheck >/dev/null 2>&1 || { \
	  echo "installing systemd and shellcheck with apt-get (for the deploy tests)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -q && $$SUDO apt-get install -y -q systemd shellcheck; }

# The board: a venv in /opt/mtai, settings in /etc/mtai, models in /var/lib/mtai, the
# systemd unit enabled. DESTDIR=, DRY_RUN=1, PURGE=1 and more: deploy/install.sh --help.
# ROLE=node: a board that lends its NPU to another board's service (mtai-node.service), with
# NODE_CONNECT= and NODE_SERVER_KEY= as `mtai keys add` prints them there. A CURVE key holds `$`
# and other characters make would expand: its value is passed on unexpanded.
install-system:
	PYTHON=$(PYTHON) ROLE='$(ROLE)' NODE_CONNECT='$(value NODE_CONNECT)' \
	  NODE_SERVER_KEY='$(value NODE_SERVER_KEY)' bash deploy/install.sh install

uninstall-system:
	bash deploy/install.sh uninstall

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
