# labbridge — two commands do all set-up: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: demo test venv bench clean frontend

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml labbridge/safety/_fastcheck.c labbridge/safety/_arc_kernel.h labbridge/safety/_estimator.h labbridge/safety/_toolpath.c
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

frontend:
	@if [ -f labbridge/server/static/package.json ]; then \
	  cd labbridge/server/static && npm install --no-audit --no-fund --silent; fi

demo: venv frontend
	$(BIN)/labbridge demo

test: venv frontend
	$(BIN)/python -m pytest -n 2 -q $(PYTEST_ARGS)

bench: venv
	$(BIN)/python bench/check_speed.py
	$(BIN)/python bench/stream_speed.py
	$(BIN)/python bench/ws_fanout.py
	$(BIN)/python bench/poll_load.py
	$(BIN)/python bench/dnc_speed.py
	$(BIN)/python bench/eta_accuracy.py
	$(BIN)/python bench/degenerate_programs.py
	$(BIN)/python bench/preview_speed.py

clean:
	rm -rf $(VENV) .pytest_cache
