# Two commands set up a fresh machine (see README): `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DATA := $(CURDIR)/data
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run next-steps test check install install-dev system-deps lint format clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install -q -e .

install-dev: $(BIN)/python
	$(BIN)/pip install -q -e '.[dev]'

# OpenSSH client and server binaries: the tests drive the real ones. X11 forwarding is tested
# with a real X server (Xvfb), xauth (which sshd runs) and an X client (xdpyinfo); the search
# index with vim typing into a file through the proxy.
system-deps:
	@if ! command -v sshd >/dev/null 2>&1 && [ ! -x /usr/sbin/sshd ] || ! command -v ssh-agent >/dev/null 2>&1 \
		|| ! command -v Xvfb >/dev/null 2>&1 || ! command -v xauth >/dev/null 2>&1 || ! command -v xdpyinfo >/dev/null 2>&1 \
		|| ! command -v vim >/dev/null 2>&1; then \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq openssh-server openssh-client xvfb xauth x11-utils vim >/dev/null; \
	fi

# An all-in-one cluster (auth + proxy, recording proxy mode, SQLite) under ./data.
CONFIG := $(DATA)/teleport.yaml
# The OpenSSH server the next steps put behind the proxy: this host's sshd, named as the proxy
# dials it and as the host certificate names it. Override with make run NODE=host.example.com.
NODE ?= localhost
# The proxy's web address as users reach it; the proxy's SSH listener is on port 3023 of its host.
WEB_ADDR ?= localhost:3080
PROXY_HOST := $(firstword $(subst :, ,$(WEB_ADDR)))
AS_ROOT := $(if $(SUDO),$(SUDO) ,)

# Steps 1-5 of docs/guide.md, for this cluster; printed by `make run` before it starts. They work
# in a fresh HOME (no ~/.ssh yet) and where no sshd runs yet (a container), and the test suite
# runs them as printed (tests/e2e/test_quickstart.py).
define NEXT_STEPS
Config: $(CONFIG)
Next, in another shell:

  export PATH=$(CURDIR)/$(BIN):$$PATH
  [ -n "$$SSH_AUTH_SOCK" ] || eval $$(ssh-agent)   # tsh login loads the certificate into it
  tctl -c $(CONFIG) status
  tctl -c $(CONFIG) users add alice --roles=access,editor --logins=$$(id -un)
  tctl -c $(CONFIG) users set-password alice   # or open the invite link
  tsh login --proxy=$(WEB_ADDR) --user=alice --insecure
  ssh-add -L   # a line ending in teleport:alice

Make the OpenSSH server on $(NODE) trust the cluster, then reload it (or start it where none runs):

  curl -sk 'https://$(WEB_ADDR)/webapi/auth/export?type=user' | sed s/cert-authority\ // | $(AS_ROOT)tee /etc/ssh/teleport_user_ca.pub >/dev/null
  $(AS_ROOT)$(CURDIR)/$(BIN)/tctl -c $(CONFIG) auth sign --host=$(NODE) --format=openssh --out=/etc/ssh/$(NODE)
  printf '%s\n' 'TrustedUserCAKeys /etc/ssh/teleport_user_ca.pub' 'HostKey /etc/ssh/$(NODE)' 'HostCertificate /etc/ssh/$(NODE)-cert.pub' | $(AS_ROOT)tee -a /etc/ssh/sshd_config >/dev/null
  $(AS_ROOT)sh -c '/usr/sbin/sshd -t -f /etc/ssh/sshd_config && { kill -HUP "$$(cat /run/sshd.pid 2>/dev/null)" 2>/dev/null || { mkdir -p /run/sshd && /usr/sbin/sshd -f /etc/ssh/sshd_config; }; }'

Log in through the recording proxy (SSH on port 3023); the session is recorded:

  mkdir -p -m 700 ~/.ssh && curl -sk 'https://$(WEB_ADDR)/webapi/auth/export?type=host' >> ~/.ssh/known_hosts
  ssh -o "ForwardAgent yes" -o "ProxyCommand ssh -o 'ForwardAgent yes' -p 3023 %r@$(PROXY_HOST) -s proxy:%h:%p" $$(id -un)@$(NODE)
  tctl -c $(CONFIG) recordings ls

Stop the cluster with Ctrl-C.
endef
export NEXT_STEPS

$(CONFIG): | install
	@mkdir -p $(DATA) && chmod 700 $(DATA)
	$(BIN)/teleport configure --cluster-name=localhost --data-dir=$(DATA)/state \
		--public-addr=$(WEB_ADDR) -o $(CONFIG) >/dev/null

next-steps:
	@printf '%s\n' "$$NEXT_STEPS"

run: install $(CONFIG) next-steps
	$(BIN)/teleport start -c $(CONFIG)

check: install-dev
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

# Two workers (pytest-xdist): most of an end-to-end test's time is spent waiting on processes
# (teleport, sshd, ssh), so two run side by side in about half the time with little contention
# on 2 cores. TEST_WORKERS=0 runs everything in one process.
TEST_WORKERS ?= 2
test: system-deps install-dev check
	$(BIN)/pytest -q -p no:cacheprovider -n $(TEST_WORKERS) --dist worksteal

format: install-dev
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

clean:
	rm -rf $(VENV) build dist *.egg-info .mypy_cache .ruff_cache .pytest_cache

# Benchmarks of the recording proxy against OpenSSH direct and ssh -J (docs/performance.md):
# about 15 minutes on 2 cores. Options through BENCH_ARGS, e.g.
#   make bench BENCH_ARGS="--size 256M --sessions 200 --json bench.json"
.PHONY: bench
bench: system-deps install
	$(BIN)/python -m bench $(BENCH_ARGS)
