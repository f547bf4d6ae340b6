# Smart-community gateway: `make demo` runs it on simulated devices, `make test` tests it.
# Both install what they need on Debian / Raspberry Pi OS (apt-get, with sudo when not root).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
STAMP  := $(VENV)/.installed

.PHONY: all deps system-deps venv demo run test test-faults test-paho-latest fuzz lint pytest bench \
        bench-deps clean screenshot

all: test

deps: system-deps venv

# Servers the tests and the demo start privately on free loopback ports, and the tools the
# installer tests use, each with the Debian package that has it. Only the packages of missing
# tools are installed, and nothing that is installed already is upgraded.
TOOLS := mosquitto:mosquitto mosquitto_passwd:mosquitto victoria-metrics:victoria-metrics \
         influxd:influxdb openssl:openssl systemd-analyze:systemd useradd:passwd \
         chromium:chromium chromedriver:chromium-driver \
         nats-server:nats-server
# Files the tests need that are no command, each with its Debian package: a CJK font, without
# which the console's Chinese shows as empty boxes in the test browser (and its screenshots)
FILES ?= /usr/share/fonts/truetype/wqy/wqy-microhei.ttc:fonts-wqy-microhei
# where tools are found besides $PATH (useradd is in /usr/sbin, outside a user's PATH)
TOOL_DIRS ?= /usr/sbin /sbin
APT_GET ?= $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get

system-deps:
	@need=""; \
	add() { case " $$need " in *" $$1 "*) ;; *) need="$${need:+$$need }$$1" ;; esac; }; \
	for pair in $(TOOLS); do \
	  tool=$${pair%%:*}; found=""; \
	  command -v "$$tool" >/dev/null 2>&1 && found=1; \
	  for dir in $(TOOL_DIRS); do [ -x "$$dir/$$tool" ] && found=1; done; \
	  [ -n "$$found" ] || add "$${pair#*:}"; \
	done; \
	for pair in $(FILES); do [ -e "$${pair%%:*}" ] || add "$${pair#*:}"; done; \
	$(PYTHON) -c 'import ensurepip, venv' >/dev/null 2>&1 || add python3-venv; \
	if [ -n "$$need" ]; then \
	  echo "installing $$need with apt-get"; \
	  $(APT_GET) update -qq && \
	  $(APT_GET) install -y -qq --no-upgrade $$need >/dev/null; \
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

test: deps lint pytest test-paho-latest

lint: venv
	$(BIN)/ruff check .
	$(BIN)/mypy

# two workers, a test file each at a time: the suite's servers and processes wait on
# sockets and fsyncs more than they compute (PYTEST_WORKERS=0 runs it in one process)
PYTEST_WORKERS ?= 2
pytest: deps
	$(BIN)/pytest -q $(if $(filter 0,$(PYTEST_WORKERS)),,-n $(PYTEST_WORKERS) --dist loadfile)

test-faults: deps
	$(BIN)/pytest -q -s tests/faults

# The MQTT link's tests once more with the newest releases of its libraries, in a venv of
# their own: mqtt5 within its pinned minor (the link's codec) and paho-mqtt 2.x (under
# aiomqtt: the tools, the upstreams, the tests' devices); this says so before a release
# reaches a Pi
PAHO_VENV  := .venv-paho-latest
PAHO_STAMP := $(PAHO_VENV)/.installed
LINK_TESTS := tests/test_mqtt_link.py tests/test_mqtt_ingress.py tests/faults/test_redelivery.py \
              tests/test_broker_security.py tests/test_fuzz_parsers.py

$(PAHO_STAMP): pyproject.toml
	$(PYTHON) -m venv $(PAHO_VENV)
	$(PAHO_VENV)/bin/pip install --quiet --upgrade pip
	$(PAHO_VENV)/bin/pip install --quiet -e '.[dev]'
	touch $(PAHO_STAMP)

test-paho-latest: deps $(PAHO_STAMP)
	$(PAHO_VENV)/bin/pip install --quiet --upgrade 'paho-mqtt>=2,<3' 'mqtt5>=0.8,<0.9'
	@$(PAHO_VENV)/bin/python -c 'import paho.mqtt; print("paho-mqtt", paho.mqtt.__version__)'
	$(PAHO_VENV)/bin/pytest -q -p no:cacheprovider $(LINK_TESTS)

FUZZ_SECONDS ?= 600
fuzz: deps
	$(BIN)/pip install --quiet 'atheris>=2.3,<3'
	for target in json_payload serial_stream modbus_answer config_file rule_file mqtt_dispatch \
	    availability profile_file onenet_push ctwing_push gb26875_stream \
	    hikvision_push dahua_stream sharing_policy; do \
	  mkdir -p .fuzz/$$target && \
	  $(BIN)/python -m fuzz $$target --seconds $(FUZZ_SECONDS) --corpus .fuzz/$$target \
	    || exit 1; \
	done

# Node-RED, the benchmark's peer, is installed from npm into bench/.peers (needs npm)
bench-deps:
	@command -v npm >/dev/null 2>&1 || { \
	  echo "installing npm with apt-get (for the Node-RED peer of the benchmark)"; \
	  $(APT_GET) update -qq && \
	  $(APT_GET) install -y -qq --no-upgrade npm >/dev/null; }

bench: deps bench-deps
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) $(PAHO_VENV) .demo .pytest_cache .mypy_cache .ruff_cache

# The console's picture in the README: the test browser's screenshot of the demo's board
screenshot: deps
	SCGW_SCREENSHOT=$(CURDIR)/docs/console-zh.png $(BIN)/pytest -q \
	  tests/console/test_console_screenshot.py
