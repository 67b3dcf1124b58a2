# Two commands set up a fresh machine (see README): `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DATA := $(CURDIR)/data
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test check install install-dev system-deps lint format clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install -q -e .

install-dev: $(BIN)/python
	$(BIN)/pip install -q -e '.[dev]'

# OpenSSH client and server binaries: the tests drive the real ones.
system-deps:
	@if ! command -v sshd >/dev/null 2>&1 && [ ! -x /usr/sbin/sshd ] || ! command -v ssh-agent >/dev/null 2>&1; then \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq openssh-server openssh-client >/dev/null; \
	fi

# An all-in-one cluster (auth + proxy, recording proxy mode, SQLite) under ./data.
run: install
	@mkdir -p $(DATA) && chmod 700 $(DATA)
	@if [ ! -f $(DATA)/teleport.yaml ]; then \
		$(BIN)/teleport configure --cluster-name=localhost --data-dir=$(DATA)/state \
			--public-addr=localhost:3080 -o $(DATA)/teleport.yaml >/dev/null; \
	fi
	@echo "Config: $(DATA)/teleport.yaml"
	@echo "Next, in another shell (with $(BIN) on PATH):"
	@echo "  tctl -c $(DATA)/teleport.yaml status"
	@echo "  tctl -c $(DATA)/teleport.yaml users add alice --roles=access,editor --logins=$$USER"
	@echo "  tctl -c $(DATA)/teleport.yaml users set-password alice   # or open the invite link"
	@echo "  tsh login --proxy=localhost:3080 --user=alice --insecure"
	@echo "Stop with Ctrl-C."
	$(BIN)/teleport start -c $(DATA)/teleport.yaml

check: install-dev
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests
	$(BIN)/mypy
	$(BIN)/lint-imports

test: system-deps install-dev check
	$(BIN)/pytest -q -p no:cacheprovider

format: install-dev
	$(BIN)/ruff format src tests
	$(BIN)/ruff check --fix src tests

clean:
	rm -rf $(VENV) build dist *.egg-info .mypy_cache .ruff_cache .pytest_cache
