# Two commands on a fresh machine: `make demo` (the main job) and `make test`.
# Both create the virtual environment in .venv on first use.
PYTHON ?= python3
VENV   ?= .venv
DEMO   ?= demo-output

.PHONY: demo test env clean-env

demo: $(VENV)/.installed
	$(VENV)/bin/pcnacycle demo --output $(DEMO) --overwrite

test: $(VENV)/.installed
	$(VENV)/bin/python -m pytest

env: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --upgrade pip
	$(VENV)/bin/python -m pip install -e ".[test]"
	touch $@

clean-env:
	rm -rf $(VENV)
