# moat — developer and CI entry points. `make help` lists the targets.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

GO      ?= go
BIN     := $(CURDIR)/bin
RESULTS := $(CURDIR)/results

# Pinned versions of the tools `make tools` installs into ./bin.
ORAS_VERSION        := v1.3.6
CRANE_VERSION       := v0.22.1
REGCTL_VERSION      := v0.11.7
STATICCHECK_VERSION := v0.8.2
CONFORMANCE_VERSION := v0.0.0-20260831232431-97274622c111
VERSITYGW_VERSION   := v1.8.0

# The whole suite, e2e included, has to fit CI's 20 minutes.
TEST_TIMEOUT ?= 15m
TEST_FLAGS   ?=
FUZZTIME     ?= 30s
BENCH        ?= .

# The e2e tests find the pinned tools in ./bin before $PATH.
export PATH := $(BIN):$(PATH)

.PHONY: help run build test tools conformance lint fuzz bench clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

run: ## run a zero-config dev registry on 127.0.0.1:5000
	$(GO) run ./cmd/moat serve

build: ## build ./bin/moat
	$(GO) build -o $(BIN)/moat ./cmd/moat

test: tools ## run every test (e2e included) with the race detector
	$(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) $(TEST_FLAGS) ./...

# tool-install,NAME,MODULE,VERSION,PACKAGE: go install PACKAGE@VERSION into
# ./bin unless ./bin/NAME was already built from MODULE at VERSION. The
# tools are pure Go: built without cgo they do not depend on a C compiler
# (which .ci/run installs at the same time).
define tool-install
	@if $(GO) version -m $(BIN)/$(1) 2>/dev/null | grep -Eq '^[[:space:]]+mod[[:space:]]+$(2)[[:space:]]+$(3)([[:space:]]|$$)'; then \
		echo "tools: $(1) $(3) is installed"; \
	else \
		echo "tools: installing $(4)@$(3)"; \
		CGO_ENABLED=0 GOBIN=$(BIN) $(GO) install $(4)@$(3); \
	fi
endef

TOOLS := oras crane regctl staticcheck conformance versitygw
tools: $(addprefix tool-,$(TOOLS)) ## install the pinned client and lint tools into ./bin

.PHONY: $(addprefix tool-,$(TOOLS))
tool-oras:
	$(call tool-install,oras,oras.land/oras,$(ORAS_VERSION),oras.land/oras/cmd/oras)
tool-crane:
	$(call tool-install,crane,github.com/google/go-containerregistry,$(CRANE_VERSION),github.com/google/go-containerregistry/cmd/crane)
tool-regctl:
	$(call tool-install,regctl,github.com/regclient/regclient,$(REGCTL_VERSION),github.com/regclient/regclient/cmd/regctl)
tool-staticcheck:
	$(call tool-install,staticcheck,honnef.co/go/tools,$(STATICCHECK_VERSION),honnef.co/go/tools/cmd/staticcheck)
tool-conformance:
	$(call tool-install,conformance,github.com/opencontainers/distribution-spec/conformance,$(CONFORMANCE_VERSION),github.com/opencontainers/distribution-spec/conformance)
tool-versitygw:
	$(call tool-install,versitygw,github.com/versity/versitygw,$(VERSITYGW_VERSION),github.com/versity/versitygw/cmd/versitygw)

conformance: tool-conformance ## run the OCI conformance suite (1.1 and dev); reports in ./results
	rm -rf $(RESULTS)
	MOAT_E2E_REQUIRE=1 MOAT_CONFORMANCE_RESULTS=$(RESULTS) \
		$(GO) test -count=1 -timeout $(TEST_TIMEOUT) -run '^TestConformance$$' -v ./e2e
	@ls -1 $(RESULTS)/*/

lint: tool-staticcheck ## gofmt, go vet and staticcheck
	@unformatted="$$(gofmt -l .)"; \
	if [ -n "$$unformatted" ]; then echo "gofmt -l: not formatted:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(BIN)/staticcheck ./...

fuzz: ## run every Fuzz* target for FUZZTIME each (default 30s)
	@for pkg in $$($(GO) list ./...); do \
		list="$$($(GO) test -list '^Fuzz' $$pkg)"; \
		for fn in $$(grep '^Fuzz' <<<"$$list" || true); do \
			echo "fuzz: $$pkg $$fn for $(FUZZTIME)"; \
			$(GO) test -run '^$$' -fuzz "^$$fn$$" -fuzztime $(FUZZTIME) $$pkg; \
		done; \
	done

# `make bench` compares moat with this CNCF Distribution, installed into
# ./bin; BENCH_FLAGS go to `moat-bench compare` (e.g. --scenarios=tags-list).
DISTRIBUTION_VERSION := v3.1.2
BENCH_FLAGS ?=
BENCH_REV   := $(shell git describe --always --dirty 2>/dev/null || echo unknown)

.PHONY: bench-quick bench-replicas bench-go bench-pprof bench-build tool-distribution

tool-distribution:
	$(call tool-install,registry,github.com/distribution/distribution/v3,$(DISTRIBUTION_VERSION),github.com/distribution/distribution/v3/cmd/registry)

# bench-build: moat as shipped (static, stripped) and the load tool.
bench-build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags='-s -w' -o $(BIN)/moat-static ./cmd/moat
	$(GO) build -o $(BIN)/moat-bench ./cmd/moat-bench

bench: tool-distribution tool-versitygw bench-build ## moat vs Distribution v3.1.2 + ceilings, full (1 GiB blobs, 100,000 tags; minutes), then bench-replicas
	$(BIN)/moat-bench compare --moat $(BIN)/moat-static --distribution $(BIN)/registry --revision $(BENCH_REV) $(BENCH_FLAGS)
	$(BIN)/moat-bench replicas --moat $(BIN)/moat-static $(BENCH_REPLICAS_FLAGS)

# bench-replicas: three replicas on PostgreSQL and S3 (versitygw, started by
# the tool, as is a PostgreSQL cluster) vs one on bbolt; skipped when
# PostgreSQL is not installed. BENCH_REPLICAS_FLAGS go to `moat-bench replicas`.
BENCH_REPLICAS_FLAGS ?=
bench-replicas: tool-versitygw bench-build ## 3 replicas (PostgreSQL + S3) vs 1 on bbolt: push/pull-small, settings propagation
	$(BIN)/moat-bench replicas --moat $(BIN)/moat-static $(BENCH_REPLICAS_FLAGS)

bench-quick: tool-distribution bench-build ## the same comparison with small sizes, under a minute (CI smoke)
	$(BIN)/moat-bench compare --quick --moat $(BIN)/moat-static --distribution $(BIN)/registry --revision $(BENCH_REV) $(BENCH_FLAGS)

bench-pprof: bench-build ## CPU profiles of moat per scenario phase (bench/profile.sh)
	bench/profile.sh $(BENCH_FLAGS)

bench-go: ## run the Go micro-benchmarks (BENCH=regexp)
	$(GO) test -run '^$$' -bench '$(BENCH)' -benchmem ./...

# `make dist`: static release binaries (no cgo) for each DIST_PLATFORMS
# entry in ./dist, named moat-<os>-<arch>, with SHA256SUMS; then the
# binary of this machine's platform must run `moat version` and report
# VERSION.
VERSION        ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
DIST           := $(CURDIR)/dist
DIST_PLATFORMS ?= linux/amd64 linux/arm64
DIST_LDFLAGS   := -s -w -X github.com/moat-registry/moat/server.Version=$(VERSION)

.PHONY: dist
dist: ## static binaries for linux/amd64 and linux/arm64 in ./dist with SHA256SUMS
	rm -rf $(DIST) && mkdir -p $(DIST)
	@for p in $(DIST_PLATFORMS); do \
		os=$${p%/*}; arch=$${p#*/}; \
		echo "dist: moat-$$os-$$arch ($(VERSION))"; \
		CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch $(GO) build -trimpath -ldflags "$(DIST_LDFLAGS)" -o $(DIST)/moat-$$os-$$arch ./cmd/moat; \
	done
	cd $(DIST) && sha256sum moat-* > SHA256SUMS && cat SHA256SUMS
	@native=$(DIST)/moat-$$($(GO) env GOOS)-$$($(GO) env GOARCH); \
	if [ -x "$$native" ]; then \
		out="$$("$$native" version)"; echo "$$out"; \
		grep -qF -- "$(VERSION)" <<<"$$out" || { echo "dist: $$native version does not report $(VERSION)"; exit 1; }; \
	fi

clean: ## remove built binaries and reports
	rm -rf $(BIN) $(RESULTS)
