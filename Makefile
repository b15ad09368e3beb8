# Every target here is the interface to humans and CI; CI calls `make test`.
SHELL := /usr/bin/env bash
.SHELLFLAGS := -euo pipefail -c

GO        ?= go
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X main.version=$(VERSION)
BIN       := bin/adapter
PLUGIN    := bin/kubectl-hpa_signals
GOTEST    := $(GO) test -race -count=1
FUZZTIME  ?= 30s

E2E_TEST  := $(GO) test -tags e2e -count=1 -p 1 -parallel 4 -v

# Tools are installed from the Go module proxy at pinned versions into a
# cache outside the repository (beside the control plane), once.
CACHE_DIR := $(or $(HPA_SIGNALS_CACHE),$(HOME)/.cache/hpa-signals)
TOOLS_DIR := $(CACHE_DIR)/tools
BENCHSTAT_VERSION := v0.0.0-20260908200009-22c9c6c9d4da
BENCHSTAT := $(TOOLS_DIR)/benchstat-$(BENCHSTAT_VERSION)
GOLANGCI_LINT_VERSION := v2.15.0
GOLANGCI_LINT := $(TOOLS_DIR)/golangci-lint-$(GOLANGCI_LINT_VERSION)

# bench: which benchmarks (a -bench pattern) and how many runs of each;
# benchstat shows confidence intervals from BENCH_COUNT=6 on.
# LOAD_DURATION: how long each row of the e2e PodsRead benchmark loads.
BENCH         ?= .
BENCH_COUNT   ?= 1
LOAD_DURATION ?= 5s

.PHONY: all build unit test e2e e2e-kind demo demo-short control-plane fuzz bench verify lint deps image clean

all: build

## build: the adapter and the kubectl plugin (kubectl hpa-signals) in bin/
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/adapter
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(PLUGIN) ./cmd/kubectl-hpa_signals

## unit: fast tests for the edit loop (skips tests that start servers)
unit:
	$(GOTEST) -short ./...

## test: everything CI runs: unit and integration tests with -race against
## real servers, the end-to-end scenarios, and the short demo
test: deps verify
	$(GOTEST) -timeout 30m ./...
	$(MAKE) --no-print-directory e2e
	$(MAKE) --no-print-directory demo-short

## control-plane: build etcd, kube-apiserver, kube-controller-manager,
## kube-scheduler and kwok into ~/.cache/hpa-signals (once; minutes cold)
control-plane:
	@hack/build-control-plane.sh >/dev/null

## e2e: the end-to-end scenarios on a local control plane (HPAs scaling on
## every signal, outage, security, lifecycle)
e2e: deps control-plane
	$(E2E_TEST) -timeout 60m ./test/e2e/...

## e2e-kind: the same scenarios on a kind cluster (needs Docker and kind)
e2e-kind:
	hack/e2e-kind.sh

## demo: the local stack with the example HPAs, a scripted story and a live
## view; writes a timeline picture (DEMO_FLAGS=--keep keeps it running)
demo: deps control-plane
	$(GO) run ./demo $(DEMO_FLAGS)

## demo-short: the demo's short, non-interactive run (part of make test)
demo-short: deps control-plane
	DEMO_SHORT=1 $(GO) run ./demo --out "$${TMPDIR:-/tmp}/hpa-signals-demo-short"

## fuzz: fuzz the selector-to-PromQL translation for FUZZTIME
fuzz:
	$(GO) test -run '^$$' -fuzz FuzzBuildQuery -fuzztime $(FUZZTIME) ./sources/prometheus/

## bench: benchmarks into bench.out, summarised by benchstat (BENCH=pattern,
## BENCH_COUNT=6 for confidence intervals; compare two runs with
## benchstat old.out bench.out). The e2e benchmarks (Discovery: hpa-signals
## and prometheus-adapter side by side; Start: exec to ready and to the
## first answer, RSS; PodsRead: the Pods read and discovery under a
## closed-loop HTTP/2 load, both adapters, directly and through the
## aggregator, LOAD_DURATION per row) start a local control plane and run
## once each.
bench: deps control-plane $(BENCHSTAT)
	$(GO) test -run '^$$' -bench '$(BENCH)' -benchmem -count $(BENCH_COUNT) ./cmd/... ./sources/... ./provider/... ./test/integration/ | grep -v "is disabled" | tee bench.out
	HPA_SIGNALS_LOAD_DURATION=$(LOAD_DURATION) $(GO) test -tags e2e -timeout 60m -run '^$$' -bench '$(BENCH)' -benchtime 1x -count $(BENCH_COUNT) ./test/e2e/ | grep -v "is disabled" | tee -a bench.out
	@echo; $(BENCHSTAT) bench.out

$(BENCHSTAT):
	@mkdir -p $(TOOLS_DIR)
	@echo "installing benchstat $(BENCHSTAT_VERSION) into $(TOOLS_DIR)"
	@gobin=$$(mktemp -d $(TOOLS_DIR)/.install.XXXXXX); \
	GOBIN=$$gobin $(GO) install golang.org/x/perf/cmd/benchstat@$(BENCHSTAT_VERSION) && mv $$gobin/benchstat $@; \
	status=$$?; rm -rf $$gobin; exit $$status

$(GOLANGCI_LINT):
	@mkdir -p $(TOOLS_DIR)
	@echo "installing golangci-lint $(GOLANGCI_LINT_VERSION) into $(TOOLS_DIR) (a few minutes, once)"
	@gobin=$$(mktemp -d $(TOOLS_DIR)/.install.XXXXXX); \
	GOBIN=$$gobin $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION) && mv $$gobin/golangci-lint $@; \
	status=$$?; rm -rf $$gobin; exit $$status

## verify: formatting, vet, the linters of .golangci.yml, and a tidy go.mod
verify: $(GOLANGCI_LINT)
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed on:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...
	$(GO) vet -tags e2e ./test/...
	$(GOLANGCI_LINT) run ./...
	@cp go.mod /tmp/hpa-signals-go.mod.bak; cp go.sum /tmp/hpa-signals-go.sum.bak
	@$(GO) mod tidy
	@if ! git diff --quiet -- go.mod go.sum; then echo "go.mod/go.sum are not tidy: run 'go mod tidy' and commit"; git diff --stat -- go.mod go.sum; cp /tmp/hpa-signals-go.mod.bak go.mod; cp /tmp/hpa-signals-go.sum.bak go.sum; exit 1; fi

## lint: golangci-lint with the checks of .golangci.yml (installed into
## ~/.cache/hpa-signals/tools at a pinned version, once)
lint: $(GOLANGCI_LINT)
	$(GOLANGCI_LINT) run ./...

## image: the adapter image (needs a Docker engine)
IMAGE ?= hpa-signals:dev
image:
	@docker info >/dev/null 2>&1 || { echo "make image needs a running Docker engine (docker info failed); on a machine without one use 'make build' for the binary"; exit 1; }
	docker build --build-arg VERSION=$(VERSION) -t $(IMAGE) .
	docker build -f examples/sample-app/Dockerfile -t hpa-signals-sample-app:dev .

## deps: install what the tests need with apt: Prometheus (Debian package)
## and kubectl (the e2e harness and the demo apply manifests with it)
deps:
	@missing=; command -v prometheus >/dev/null || missing="$$missing prometheus"; \
	command -v kubectl >/dev/null || missing="$$missing kubectl"; \
	if [ -n "$$missing" ]; then echo "installing$$missing (apt)"; \
		if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null \
		|| { echo "could not install$$missing with apt-get; install them and run make again (kubectl: https://kubernetes.io/docs/tasks/tools/)"; exit 1; }; fi
	@# sed reads to the end: head would close the pipe early and pipefail would fail the step
	@prometheus --version 2>&1 | sed -n 1p
	@kubectl version --client 2>/dev/null | sed -n 1p

clean:
	rm -rf bin bench.out
