# Two commands on a fresh machine: `make demo` (the main job) and `make test`.
# Both create the virtual environment in .venv on first use: the demo needs the package alone; the tests
# add the test and napari extras (pytest, dask, ONNX Runtime, napari, PyQt6), a minute more to install.
PYTHON ?= python3
VENV   ?= .venv
DEMO   ?= demo-output
# Empty: torch comes from the default index, like every other package. On a CPU-only machine,
# `make demo TORCH_INDEX=https://download.pytorch.org/whl/cpu` installs the small CPU build of torch first.
TORCH_INDEX ?=

.PHONY: demo test env clean-env

demo: $(VENV)/.package
	$(VENV)/bin/pcnacycle demo --output $(DEMO) --overwrite

# napari's canvas needs an X server: the tests run under Xvfb when it and the libraries Qt's xcb platform
# loads are installed (as root on Debian they are installed here); otherwise the tests needing a display
# are skipped, saying why.
DISPLAY_PACKAGES = xvfb xauth libxcb-icccm4 libxcb-keysyms1 libxcb-cursor0 libxcb-image0 libxcb-render-util0 \
                   libxcb-xkb1 libxkbcommon-x11-0 libxcb-shape0 libgl1 libegl1

test: $(VENV)/.installed
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && ! dpkg -s $(DISPLAY_PACKAGES) >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(DISPLAY_PACKAGES) >/dev/null; \
	fi
	@if command -v xvfb-run >/dev/null && { ! command -v dpkg >/dev/null || dpkg -s $(DISPLAY_PACKAGES) >/dev/null 2>&1; }; then \
	    xvfb-run -a $(VENV)/bin/python -m pytest; \
	else \
	    echo "no xvfb-run (or Qt's xcb libraries): tests that need a display are skipped"; \
	    $(VENV)/bin/python -m pytest; \
	fi

env: $(VENV)/.installed

$(VENV)/.package: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --upgrade pip
	if [ -n "$(TORCH_INDEX)" ]; then \
	    $(VENV)/bin/python -m pip install "torch>=2.14,<2.15" "torchvision>=0.29,<0.30" --index-url "$(TORCH_INDEX)"; \
	fi
	$(VENV)/bin/python -m pip install -e .
	touch $@

$(VENV)/.installed: $(VENV)/.package
	$(VENV)/bin/python -m pip install -e ".[test,napari]"
	touch $@

clean-env:
	rm -rf $(VENV)
