# Keel: `make demo` and `make test` are all a fresh machine needs.
# The environment lives in .venv/ and is rebuilt only when pyproject.toml or requirements.lock changes; every
# package is pinned by requirements.lock (the environment of a green run), so what installs is what was tested.

VENV := .venv
PYTHON := $(VENV)/bin/python
KEEL := $(VENV)/bin/keel
STAMP := $(VENV)/.installed

# Python 3.12: python3.12 on PATH, else pyenv's 3.12 (these machines have 3.12.1 under pyenv).
PYTHON312 := $(shell command -v python3.12 2>/dev/null || ls -d $(HOME)/.pyenv/versions/3.12*/bin/python3.12 2>/dev/null | tail -n 1)

LOCK := requirements.lock

.PHONY: venv lock demo test test-fast bench lab mlflow-ui clean

venv: $(STAMP)

$(STAMP): pyproject.toml $(LOCK)
	@test -n "$(PYTHON312)" || { echo "error: Python 3.12 not found (looked for python3.12 on PATH and ~/.pyenv/versions/3.12*)"; exit 2; }
	@test -x $(PYTHON) || $(PYTHON312) -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -m pip install --quiet -c $(LOCK) -e .
	@touch $(STAMP)

# Re-pin the environment after a dependency change: install unpinned, run the tests, write the lock only if green.
lock:
	@test -x $(PYTHON) || $(PYTHON312) -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade -e .
	$(VENV)/bin/pytest -q
	{ sed -n '1,2p' $(LOCK); $(PYTHON) -m pip freeze --exclude-editable; } > $(LOCK).new && mv $(LOCK).new $(LOCK)
	@touch $(STAMP)

demo: venv
	$(KEEL) demo

test: venv
	$(VENV)/bin/pytest

test-fast: venv
	$(VENV)/bin/pytest -m "not slow"

bench: venv
	$(PYTHON) -m bench

lab: venv
	$(VENV)/bin/jupyter lab notebooks/

mlflow-ui: venv
	$(VENV)/bin/mlflow ui --backend-store-uri sqlite:///$(CURDIR)/var/mlflow.db

clean:
	rm -rf var/
