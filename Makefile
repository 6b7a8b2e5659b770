# One command each: `make demo` runs the main job on the built-in demo corpus, `make test` runs
# the tests. Both install what they need first (system packages, then a virtual environment).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# ffmpeg: video decoding fallback and test clips; libusb + Mesa EGL/GL: open3d's headless renderer;
# chromium: the report's browser test (headless).
SYSTEM_PACKAGES := ffmpeg libusb-1.0-0 libegl1 libgl1 libegl-mesa0 libgl1-mesa-dri libgomp1 chromium

.PHONY: install system-deps demo test test-fast lint clean

install: system-deps $(STAMP)

system-deps:
	@if command -v ffmpeg >/dev/null && command -v chromium >/dev/null && ldconfig -p | grep -q 'libusb-1.0.so' \
		&& ldconfig -p | grep -q 'libEGL_mesa'; then \
		echo "system packages present"; \
	elif command -v apt-get >/dev/null; then \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $(SYSTEM_PACKAGES); \
	else \
		echo "please install: $(SYSTEM_PACKAGES) (Debian names)"; exit 1; \
	fi

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[all,dev,train]"
	touch $(STAMP)

demo: install
	$(BIN)/m4 demo --out demo_out

test: install
	$(BIN)/python -m pytest -q -p no:dash

test-fast: install
	$(BIN)/python -m pytest -q -p no:dash -m "not slow"

lint: install
	$(BIN)/ruff check m4_pipeline tests benchmarks ray_jobs
	$(BIN)/ruff format --check m4_pipeline tests benchmarks ray_jobs

clean:
	rm -rf demo_out .pytest_cache
