# Two commands do all the set-up on a fresh machine:
#   make app    install, then serve the Panel app on its embedded defaults
#   make test   install (with test tools and Chromium), then run the whole test suite
PYTHON ?= python3
PIP ?= $(PYTHON) -m pip

.PHONY: install install-test app test lint bench

PIP_INSTALL = $(PIP) install --quiet --disable-pip-version-check -c constraints.txt

install:
	$(PIP_INSTALL) -e .

install-test:
	$(PIP_INSTALL) -e ".[test]"
	@command -v chromium >/dev/null 2>&1 || { \
		echo "installing Debian chromium for the browser tests"; \
		DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

app: install
	$(PYTHON) -m ningbo_sd app

test: install-test
	$(PYTHON) -m ruff check .
	$(PYTHON) -m ruff format --check .
	$(PYTHON) -m ningbo_sd check
	$(PYTHON) -m pytest

lint:
	$(PYTHON) -m ruff check .
	$(PYTHON) -m ruff format --check .

bench: install
	$(PYTHON) bench/bench_engine.py
	$(PYTHON) bench/bench_scenarios.py
	$(PYTHON) bench/bench_calibration.py
	$(PYTHON) bench/bench_montecarlo.py
	$(PYTHON) bench/bench_startup.py
