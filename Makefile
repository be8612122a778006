# Two commands on a fresh machine: `make run` (the app) and `make test` (the suite).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
HOST ?= 127.0.0.1
PORT ?= 8501
# Train on a Ray cluster: `make run RAY=auto` or `RAY=HOST:PORT` (or METRIC_LAB_RAY_ADDRESS set);
# empty (the default): trainings run in the app's process and Ray is neither installed nor imported.
RAY ?= $(METRIC_LAB_RAY_ADDRESS)
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD := 1
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: run test test-quick lint install install-dev install-ray chromium bench clean-venv

$(PY):
	$(PYTHON) -m venv $(VENV)

# Reinstall only when a requirements file changed (the stamp remembers their hash).
$(VENV)/.installed: requirements.txt $(PY)
	$(PIP) install -q -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements.txt requirements-dev.txt $(VENV)/.installed
	$(PIP) install -q -r requirements-dev.txt
	touch $@

$(VENV)/.installed-ray: requirements-ray.txt $(VENV)/.installed
	$(PIP) install -q -r requirements-ray.txt
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev
install-ray: $(VENV)/.installed-ray

run: install $(if $(RAY),install-ray)
	@echo "Metric Lab: open http://$(HOST):$(PORT) in your browser (Ctrl+C stops it)"
	@key="$${METRIC_LAB_TEACHER_KEY:-$$($(PY) -c 'import secrets; print(secrets.token_urlsafe(12))')}"; \
	echo "Teacher key for the Class challenge page: $$key (set METRIC_LAB_TEACHER_KEY to choose it)"; \
	METRIC_LAB_TEACHER_KEY="$$key" $(if $(RAY),METRIC_LAB_RAY_ADDRESS=$(RAY)) $(PY) -m streamlit \
		run app.py --server.address $(HOST) --server.port $(PORT) --server.headless true

# Debian's chromium for the browser tests: installed when missing and we are root; otherwise the
# browser tests skip and say why.
chromium:
	@if [ -x /usr/bin/chromium ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing Debian chromium for the browser tests"; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
			|| echo "chromium could not be installed: browser tests will skip"; \
	else echo "no /usr/bin/chromium and not root: browser tests will skip"; fi

lint: install-dev
	$(VENV)/bin/ruff check .

test: install-dev install-ray chromium lint
	$(PY) -m pytest -q

test-quick: install-dev
	$(PY) -m pytest -q -m "not slow"

bench: install
	$(PY) -m lab bench dashboard --json benchmarks/results/dashboard-cpu.json

clean-venv:
	rm -rf $(VENV)
