# labbridge — two commands do all set-up: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: demo test venv bench clean frontend catalogs messages

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml labbridge/safety/_fastcheck.c labbridge/safety/_toolpath.c \
          labbridge/safety/_toolpath.h labbridge/safety/_arc_kernel.h labbridge/safety/_estimator.h
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

frontend:
	@if [ -f labbridge/server/static/package.json ]; then \
	  cd labbridge/server/static && npm install --no-audit --no-fund --silent; fi

demo: venv frontend catalogs
	$(BIN)/labbridge demo

# --dist loadscope: a module's tests run on one worker, in order, around its one module-scoped server (a module
# split over two workers started a second server whose admin had not chosen a password yet)
test: venv frontend catalogs
	$(BIN)/python -m pytest -n 2 --dist loadscope -q $(PYTEST_ARGS)

bench: venv
	$(BIN)/python bench/check_speed.py
	$(BIN)/python bench/stream_speed.py
	$(BIN)/python bench/ws_fanout.py
	$(BIN)/python bench/poll_load.py
	$(BIN)/python bench/dnc_speed.py
	$(BIN)/python bench/fleet_scale.py
	$(BIN)/python bench/eta_accuracy.py
	$(BIN)/python bench/degenerate_programs.py
	$(BIN)/python bench/hold_latency.py
	$(BIN)/python bench/preview_speed.py

clean:
	rm -rf $(VENV) .pytest_cache

# Translations (Babel). `make messages` extracts the messages marked in the code into the template and merges
# them into each language's catalog (then translate the new entries); `make catalogs` compiles the catalogs
# that ship in the package.
LOCALE := labbridge/locale

messages: venv
	$(BIN)/pybabel --quiet extract -F babel.cfg --add-location=file --sort-output --add-comments=TRANSLATORS: \
	  --project=labbridge --copyright-holder="InfoMobil" -o $(LOCALE)/labbridge.pot labbridge
	$(BIN)/pybabel --quiet update -i $(LOCALE)/labbridge.pot -d $(LOCALE) -D labbridge --no-fuzzy-matching --ignore-obsolete

catalogs: venv
	$(BIN)/pybabel --quiet compile -d $(LOCALE) -D labbridge
