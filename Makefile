# Two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint bench deps redis-server tools clean docs

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip >/dev/null 2>&1 || true
	$(BIN)/pip install -q -e '.[test]'
	@touch $(STAMP)

deps: $(STAMP)

## make run: start the gateway on the example config in config/ (no Redis needed; the demo allows AppCodes
## over plain HTTP, which production should not: see docs/auth.md)
run: $(STAMP)
	GATEWAY_APP_CODE_ALLOW_HTTP=$${GATEWAY_APP_CODE_ALLOW_HTTP:-true} $(BIN)/gateway run --config config/

## make test: install test dependencies and a real redis-server when missing, then run the whole suite
test: $(STAMP) redis-server
	$(BIN)/pytest

redis-server:
	@command -v redis-server >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = "0" ]; then \
	    echo "installing redis-server with apt-get"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server) >/dev/null; \
	  else \
	    echo "redis-server is missing: install it (apt-get install redis-server) or run as root"; exit 1; \
	  fi; }

## make bench: side-by-side throughput/latency (direct, nginx, gateway; HTTP/2 and gRPC with h2load); installs
## wrk/nginx/h2load when root
tools:
	@if [ "$$(id -u)" = "0" ]; then \
	  missing=""; command -v wrk >/dev/null 2>&1 || missing="$$missing wrk"; \
	  command -v nginx >/dev/null 2>&1 || missing="$$missing nginx-light"; \
	  command -v redis-server >/dev/null 2>&1 || missing="$$missing redis-server"; \
	  command -v h2load >/dev/null 2>&1 || missing="$$missing nghttp2-client"; \
	  if [ -n "$$missing" ]; then (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing) >/dev/null; fi; \
	fi

bench: $(STAMP) tools
	$(BIN)/python benchmarks/run.py

## make docs: regenerate docs/configuration.md and the settings table of docs/operations.md from the code
docs: $(STAMP)
	$(BIN)/python -m gateway.docgen

lint: $(STAMP)
	$(BIN)/ruff check gateway tests benchmarks
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
