# synack: `make demo` runs the seeds' worked example in the simulator; `make test` runs the tests.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed

.PHONY: demo test lint bench clean system-deps conformance fuzz

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

# `make demo` installs synack alone (no extras: it needs no other package) and runs a scenario:
# the seeds' worked example, or DEMO="fast-retransmit --lang zh" (any `synack demo` arguments).
DEMO_STAMP := $(VENV)/.installed-demo
DEMO       ?=
$(DEMO_STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -e .
	touch $(DEMO_STAMP)

demo: $(DEMO_STAMP)
	$(BIN)/synack demo $(DEMO)

# Debian packages the interop, capture and report-page tests use, installed when missing
# (and a CJK font, so the report page's Chinese renders in the headless browser).
# One "command package" pair per tool; apt-get update runs once, only if something is missing.
# No package's service may start while installing (a policy-rc.d saying 101 is put in place
# for the install if there is none), and an nginx installed here is disabled at boot:
# the bench runs its own nginx inside a namespace.
SYSTEM_TOOLS := tshark:tshark tcpdump:tcpdump ping:iputils-ping ip:iproute2 tc:iproute2 \
	ss:iproute2 nstat:iproute2 curl:curl nmap:nmap chromium:chromium chromedriver:chromium-driver \
	nc:netcat-openbsd redis-server:redis-server openssl:openssl
POLICY_RC := /usr/sbin/policy-rc.d
system-deps:
	@missing=""; for pair in $(SYSTEM_TOOLS); do \
		command -v $${pair%%:*} >/dev/null 2>&1 || missing="$$missing $${pair#*:}"; \
	done; \
	fc-list :lang=zh 2>/dev/null | grep -q . || missing="$$missing fonts-wqy-microhei"; \
	if [ -n "$$missing" ]; then \
		missing=$$(echo $$missing | tr ' ' '\n' | sort -u | tr '\n' ' '); \
		echo "installing $$missing"; \
		policy=""; if [ ! -e $(POLICY_RC) ]; then \
			printf '#!/bin/sh\nexit 101\n' > $(POLICY_RC) && chmod 755 $(POLICY_RC) && policy=1; \
		fi; \
		apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; rc=$$?; \
		if [ -n "$$policy" ]; then rm -f $(POLICY_RC); fi; \
		case " $$missing " in *" nginx "*) \
			if command -v systemctl >/dev/null 2>&1; then \
				systemctl disable nginx >/dev/null 2>&1 || true; fi;; esac; \
		exit $$rc; \
	fi

test: $(STAMP) system-deps
	$(BIN)/python -m pytest

# Speed: one table of figures, each beside a baseline measured in the same run (bench/run.py).
# Needs root for the namespaces and TAPs of the wire, connection and HTTP rows; about 2 minutes
# (`--full`: about 10 on the engine of 2026-11-29).
# The connection rows hold 10000 idle connections: `make bench BENCH_ARGS=--full` holds 50000
# (or BENCH_ARGS="--conns C"); the HTTP rows need ab (apache2-utils) and nginx, installed
# here when missing, with the interop tools, in one apt-get run.
BENCH_STAMP := $(VENV)/.bench-installed
$(BENCH_STAMP): $(STAMP) pyproject.toml
	$(BIN)/python -m pip install -q -e '.[bench]'
	touch $(BENCH_STAMP)

BENCH_ARGS ?=
bench: SYSTEM_TOOLS += ab:apache2-utils nginx:nginx
bench: $(BENCH_STAMP) system-deps
	$(BIN)/python bench/run.py $(BENCH_ARGS)

# Conformance: every packetdrill script under PKT against the Linux kernel (root: a fresh
# namespace per script) and against synack, a passed/failed table per directory and the
# scripts the kernel passes and synack fails. The upstream scripts are GPL-2.0 and never
# copied here; ../shared/packetdrill.md says how to fetch them, e.g.
#   make conformance PKT=/tmp/packetdrill/gtests/net/tcp
# CONFORMANCE_ARGS="--out FILE" also writes the report to FILE; "--target synack" skips the kernel.
PKT ?= tests/pkt
CONFORMANCE_ARGS ?=
conformance: $(STAMP)
	$(BIN)/python -m synack.drill.conformance $(PKT) $(CONFORMANCE_ARGS)

# Fuzzing (issue 11): atheris on the TCP machine (a host with a connection in every state)
# and on the capture readers, from the seed corpus in fuzz/corpus/, then the corpus replayed
# under coverage.py; prints inputs/s, the fraction of inputs that reached
# Connection.on_segment and the branch coverage of src/synack/tcp/. `make test` runs a short
# run (tests/test_fuzz.py). FUZZ_SECONDS=3600 for longer; FUZZ_ARGS="--seed N --keep DIR".
FUZZ_SECONDS ?= 300
FUZZ_ARGS ?=
fuzz: $(STAMP)
	PYTHONPATH=src $(BIN)/python fuzz/run.py --seconds $(FUZZ_SECONDS) $(FUZZ_ARGS)

lint: $(STAMP)
	$(BIN)/python -m pip install -q ruff mypy
	$(BIN)/ruff check src tests
	$(BIN)/mypy

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache .hypothesis
