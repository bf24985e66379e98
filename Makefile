# One-command entry points. On a fresh machine with Python 3.11+, gcc, Java 17+ and
# Maven, `make test` and `make demo` do all the set-up themselves: the venv,
# the editable install with dev and benchmark tools, and the Kafka broker jars.
#
#   make test    lint, type-check, layer check, then the whole pytest suite
#                (the kafka tests start the local broker themselves)
#   make demo    the end-to-end demo (`kubedelta demo`, DEMO_ARGS for its options)
#   make kafka   start the local broker (127.0.0.1:9092) and show its status
#   make lint    ruff, ruff format --check, mypy --strict (code and tests), import-linter
#
# Settings: PYTHON (interpreter that creates .venv), PYTEST_ARGS, and the
# broker's KUBEDELTA_HOME / KUBEDELTA_KAFKA_PORT (see README.md).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
DEMO_ARGS ?=

.PHONY: test lint mypy-tests pytest demo kafka kafka-stop kafka-status jars install clean-kafka

test: lint jars
	$(BIN)/pytest -p no:cacheprovider -ra $(PYTEST_ARGS)

# Just the test suite, for iterating (no lint).
pytest: install jars
	$(BIN)/pytest -p no:cacheprovider -ra $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(MAKE) --no-print-directory mypy-tests
	$(BIN)/lint-imports

# The tests, strict too. One run per folder: they are not packages (pytest puts each
# folder's helpers on the path), and every folder may have its own conftest.py.
mypy-tests: install
	$(BIN)/mypy --strict tests/*.py
	@set -e; for d in tests/*/; do \
		ls $$d*.py >/dev/null 2>&1 || continue; \
		echo "mypy --strict $$d"; $(BIN)/mypy --strict $$d; \
	done

install: $(STAMP)

$(VENV)/bin/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "kubedelta needs Python 3.11+, $(PYTHON) is " + sys.version.split()[0])'
	$(PYTHON) -m venv $(VENV)

# Reinstalled when pyproject.toml, setup.py or a C extension's source is newer than
# the stamp (the editable install compiles deltas/, store/, producers/ and
# consumers/_speedups.c in place).
$(STAMP): pyproject.toml setup.py deltas/_speedups.c deltas/_utf8.h store/_speedups.c producers/_speedups.c consumers/_speedups.c $(VENV)/bin/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	touch $(STAMP)

# Kafka broker jars from Maven Central (skipped when cached for this pom).
jars: install
	$(BIN)/kubedelta kafka fetch

kafka: jars
	$(BIN)/kubedelta kafka start
	$(BIN)/kubedelta kafka status

kafka-stop: install
	$(BIN)/kubedelta kafka stop

kafka-status: install
	$(BIN)/kubedelta kafka status

# Broker, simulator, producers, consumer and query API; prints curl lines; Ctrl-C stops all.
demo: jars
	$(BIN)/kubedelta demo $(DEMO_ARGS)

# Stop the broker and delete its topics (jars stay cached).
clean-kafka: install
	$(BIN)/kubedelta kafka reset --yes
