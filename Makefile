# appdeb developer entry points. `make demo` and `make test` are the two commands the README promises.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: setup install uninstall test lint unit e2e demo deb bench bench-publish bench-serve bench-install bench-failsafe golden clean
PREFIX ?= /usr/local

setup: $(VENV)/.installed

$(VENV)/.installed: setup.cfg pyproject.toml scripts/install-host-deps.sh
	./scripts/install-host-deps.sh
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test,deploy]'
	touch $@

# `appdeb` on PATH: a link to the virtualenv's command (which finds its own Python and libraries).
install: setup
	install -d $(PREFIX)/bin
	ln -sfn $(abspath $(BIN))/appdeb $(PREFIX)/bin/appdeb
	@echo "linked $(PREFIX)/bin/appdeb -> $(abspath $(BIN))/appdeb"

uninstall:
	@if [ -L $(PREFIX)/bin/appdeb ]; then rm $(PREFIX)/bin/appdeb; echo "removed $(PREFIX)/bin/appdeb"; fi

lint: setup
	$(BIN)/ruff check appdeb tests bench
	$(BIN)/mypy

# Tests run on PYTEST_WORKERS processes (pytest-xdist): a module stays on one worker, and the e2e modules
# whose nodes share the host's network run one after another (tests/conftest.py). PYTEST_WORKERS=0: one process.
PYTEST_WORKERS ?= 2
XDIST = -n $(PYTEST_WORKERS) --dist loadscope

test: lint
	$(BIN)/pytest $(XDIST) $(PYTEST_ARGS)

unit: setup
	$(BIN)/pytest -m "not e2e" $(PYTEST_ARGS)

e2e: setup
	$(BIN)/pytest $(XDIST) -m e2e $(PYTEST_ARGS)

golden: setup
	$(BIN)/pytest tests/test_golden.py --update-golden

demo: setup
	$(BIN)/python scripts/demo.py

deb: setup
	./scripts/build-self-deb.sh

bench: setup
	./bench/build.sh

# one publish into 1,000 versions vs plain aptly, and publishes in a row (bench/publish.py): PUBLISH_ARGS e.g. --burst 20
bench-publish: setup
	$(BIN)/python bench/publish.py $(PUBLISH_ARGS)

# The generated web service's req/s next to gunicorn run by hand and through its nginx site, on a node
# (wrk, interleaved rounds; about two minutes). SERVE_ARGS e.g. "--rounds 5 --duration 10".
SERVE_ARGS ?=
bench-serve: setup
	$(BIN)/python bench/serve.py $(SERVE_ARGS)

# dpkg -i until the first HTTP 200 on a node (bench/install.py): INSTALL_ARGS e.g. --baseline REF, --big
INSTALL_ARGS ?=
bench-install: setup
	$(BIN)/python bench/install.py $(INSTALL_ARGS)

# The fail-safe server benchmark (docs/failsafe.md): every server × scenario on its own node, about
# 70 minutes; results in build/failsafe/. Not part of `make test`. FAILSAFE_ARGS narrows it down.
FAILSAFE_ARGS ?=
bench-failsafe: setup
	$(BIN)/pip install -q -e '.[bench]'
	$(BIN)/appdeb bench failsafe --out build/failsafe $(FAILSAFE_ARGS)

clean:
	rm -rf dist build *.egg-info .pytest_cache .mypy_cache .ruff_cache
