# ebbflow — the two commands a new user runs are `make run` and `make test`.
SHELL := /bin/bash
GO ?= go
BIN := bin/ebbflow
VENV ?= .venv
# Arguments for `make run`, e.g. make run ARGS='--speed 60x --for 4h'.
ARGS ?=

.PHONY: all build run test unit integration bench vet fmt services-up services-down venv clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/ebbflow

## run: build and start the whole pipeline on embedded parts against a simulated cluster.
run: build
	./$(BIN) dev $(ARGS)

## test: install what the tests need, start the real services, run every test, stop the services.
test:
	bash deploy/dev/test-all.sh

## unit: unit tests only (no services needed).
unit:
	$(GO) test -count=1 ./...

## integration: unit + integration tests against already running services (deploy/dev/services.sh up).
integration:
	source .dev/services.env && export EBBFLOW_XGBOOST_LIB="$$(bash deploy/dev/xgboost-lib.sh)" && \
		$(GO) test -count=1 -tags 'integration crashpoints xgbnative' -timeout 45m ./...

## bench: Go benchmarks of every component, with their in-run baselines.
bench: venv
	bash deploy/dev/bench.sh

vet:
	$(GO) vet ./...
	$(GO) vet -tags integration ./...
	$(GO) vet -tags 'integration crashpoints xgbnative' ./...

fmt:
	gofmt -l -w $$(git ls-files '*.go')

venv:
	bash deploy/dev/venv.sh

services-up:
	bash deploy/dev/services.sh up

services-down:
	bash deploy/dev/services.sh down

clean:
	rm -rf bin .dev
