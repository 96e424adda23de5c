# Every target sets itself up: `make demo` and `make test` work on a fresh clone.
# The venv prefers Python 3.10 (SCF's newest Python runtime) and falls back to python3.
VENV ?= .venv
PY := $(VENV)/bin/python
LOCK := requirements/lock.txt
BASE_PYTHON ?= $(shell scripts/find-python)

.PHONY: help venv demo test lint fuzz bench package clean

help:
	@echo "make demo | test | lint | fuzz | bench | package | clean"

$(VENV)/.installed: pyproject.toml $(LOCK)
	@echo "setting up $(VENV) (first run, or the dependencies changed: about a minute)..."
	test -x $(PY) || $(BASE_PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c $(LOCK) -e '.[dev]'
	touch $@

venv: $(VENV)/.installed

demo: venv
	$(PY) scripts/demo.py

test: venv
	$(MAKE) --no-print-directory lint
	$(PY) -m pytest -q -n auto --dist loadfile

lint: venv
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy
	$(VENV)/bin/lint-imports
	$(VENV)/bin/vermin --target=3.10- --no-tips --violations --eval-annotations src index.py

fuzz: venv
	HYPOTHESIS_PROFILE=fuzz $(PY) -m pytest -q tests/test_fuzz.py tests/test_events.py tests/test_windows.py

bench: venv package
	$(PY) benchmarks/run.py

# dist/package (serverless.yml's src) and dist/sms-stats.zip, for SCF's Python 3.10 runtime.
package: venv
	$(PY) scripts/package

clean:
	rm -rf $(VENV) out dist build .pytest_cache .mypy_cache .ruff_cache .hypothesis
