# turingtest: `make demo` runs the app on its embedded defaults,
# `make test` runs the whole suite. Both set up .venv first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
PYTEST_ARGS ?=
# Test processes (pytest-xdist): one per core, at most four; TEST_WORKERS=0 runs in one.
TEST_WORKERS ?= auto
HOST   ?= 127.0.0.1
PORT   ?= 8000

.PHONY: install demo test lint bench clean

$(STAMP): requirements.txt requirements-test.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements-test.txt
	touch $@

install: $(STAMP)

# exec: the shell gives way to the demo, so the SIGTERM make passes on to its
# child reaches the demo, which then stops its Celery worker as well.
demo: install
	exec $(BIN)/python manage.py demo --addr $(HOST):$(PORT) $(if $(DATA),--data "$(DATA)",) $(if $(TRAIN_MINUTES),--train-minutes $(TRAIN_MINUTES),)

test: install
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --maxprocesses 4 --dist loadfile $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

clean:
	rm -rf var
