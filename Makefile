# Smart-community gateway: `make demo` runs it on simulated devices, `make test` tests it.
# Both install what they need on Debian / Raspberry Pi OS (apt-get, with sudo when not root).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_PACKAGES := mosquitto victoria-metrics influxdb openssl systemd passwd
STAMP  := $(VENV)/.installed

.PHONY: all deps system-deps venv demo run test test-faults fuzz lint pytest bench bench-deps clean

all: test

deps: system-deps venv

# Servers the tests and the demo start privately on free loopback ports, and the tools the
# installer tests use (systemd-analyze, useradd).
system-deps:
	@need=""; \
	for bin in mosquitto mosquitto_passwd victoria-metrics influxd openssl \
	           systemd-analyze useradd; do \
	  command -v $$bin >/dev/null 2>&1 || [ -x /usr/sbin/$$bin ] || need=1; \
	done; \
	$(PYTHON) -c 'import ensurepip, venv' >/dev/null 2>&1 || need=1; \
	if [ -n "$$need" ]; then \
	  echo "installing $(APT_PACKAGES) python3-venv with apt-get"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq \
	    $(APT_PACKAGES) python3-venv >/dev/null; \
	fi
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python >= 3.11 needed"'

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: deps
	$(BIN)/scgw demo

test: deps lint pytest

lint: venv
	$(BIN)/ruff check .
	$(BIN)/mypy

pytest: deps
	$(BIN)/pytest -q

test-faults: deps
	$(BIN)/pytest -q -s tests/faults

FUZZ_SECONDS ?= 600
fuzz: deps
	$(BIN)/pip install --quiet 'atheris>=2.3,<3'
	for target in json_payload serial_stream modbus_answer config_file rule_file; do \
	  mkdir -p .fuzz/$$target && \
	  $(BIN)/python -m fuzz $$target --seconds $(FUZZ_SECONDS) --corpus .fuzz/$$target \
	    || exit 1; \
	done

# Node-RED, the benchmark's peer, is installed from npm into bench/.peers (needs npm)
bench-deps:
	@command -v npm >/dev/null 2>&1 || { \
	  echo "installing npm with apt-get (for the Node-RED peer of the benchmark)"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq npm >/dev/null; }

bench: deps bench-deps
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .demo .pytest_cache .mypy_cache .ruff_cache
