# kubeparts — run `make help` for the targets.
SHELL := /usr/bin/env bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

BIN        := $(CURDIR)/bin
GO_BUILD   := CGO_ENABLED=0 go build -trimpath
# grpcnotrace: grpc otherwise imports golang.org/x/net/trace, whose html/template
# calls reflect methods by computed names, and any such call makes the Go linker
# keep every exported method of every type stored in an interface. Without it
# kubeparts-nodeagent shrinks from 38 to 30 MB, and its RSS with it (most of
# the agent's RSS is its own executable). grpc's /debug/requests pages are the
# only loss; no kubeparts binary serves them.
BUILD_TAGS := grpcnotrace
# The upstream runtimes inside our binaries (scheduler, apiserver) report this
# version; unset they say v0.0.0-master and version checks misbehave.
VPKG := k8s.io/component-base/version
VERSION_LDFLAGS := -X $(VPKG).gitVersion=v1.36.3+kubeparts -X $(VPKG).gitMajor=1 -X $(VPKG).gitMinor=36 -X $(VPKG).gitTreeState=clean
BINARIES   := kubeparts kubeparts-apiserver kubeparts-controller-manager kubeparts-scheduler kubeparts-nodeagent kubeparts-proxy kubeparts-cloud-controller-manager
UP_FLAGS   ?=
TEST_FLAGS ?=
# Integration and e2e tests find the stock and kubeparts binaries here.
export KUBEPARTS_BIN := $(BIN)

##@ General
.PHONY: help
help: ## Show the targets.
	@awk 'BEGIN {FS = ":.*##"} /^[a-zA-Z0-9_-]+:.*##/ {printf "  %-12s %s\n", $$1, $$2} /^##@/ {printf "\n%s\n", substr($$0, 5)}' $(MAKEFILE_LIST)

.PHONY: deps
deps: ## Install Debian packages (as root) and download Go modules.
	@hack/install-deps.sh

##@ Build
.PHONY: build
build: ## Build the kubeparts binaries and the sandbox (pause) binary into bin/.
	@echo "build: kubeparts binaries into bin/"
	@mkdir -p $(BIN)
	@$(GO_BUILD) -tags $(BUILD_TAGS) -ldflags '$(VERSION_LDFLAGS)' -o $(BIN)/ $(addprefix ./cmd/,$(BINARIES))
	@$(GO_BUILD) -ldflags '-s -w' -o $(BIN)/pause ./hack/images/pause
	@$(GO_BUILD) -ldflags '-s -w' -o $(BIN)/nettool ./hack/images/nettool

.PHONY: image
IMAGES := kubeparts-controller-manager kubeparts-scheduler kubeparts-apiserver kubeparts-proxy kubeparts-nodeagent
# Roles that need no root run as the distroless "nonroot" user; the proxy programs
# nftables and the node agent runs containers, both as root.
NONROOT_IMAGES := kubeparts-controller-manager kubeparts-scheduler kubeparts-apiserver
IMAGE_TAG ?= dev
IMAGE_REVISION := $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
IMAGE_LABELS := --label org.opencontainers.image.version=$(IMAGE_TAG) \
  --label org.opencontainers.image.source=https://github.com/kubeparts/kubeparts \
  --label org.opencontainers.image.revision=$(IMAGE_REVISION)
image: build ## Build the in-cluster images (controller manager, scheduler, apiserver, proxy, node agent) as OCI archives in bin/images/ (ctr import / kind load). Same commit, same digests.
	@for i in $(IMAGES); do \
	  extra=""; [ $$i = kubeparts-proxy ] && extra="--host-binary $$(command -v nft)"; \
	  case " $(NONROOT_IMAGES) " in *" $$i "*) extra="$$extra --user 65532:65532";; esac; \
	  go run ./hack/images/build --binary $(BIN)/$$i --name kubeparts/$$i:$(IMAGE_TAG) --out $(BIN)/images/$$i.tar $(IMAGE_LABELS) $$extra && \
	  echo "image: $(BIN)/images/$$i.tar (kubeparts/$$i:$(IMAGE_TAG))"; done

.PHONY: upstream
upstream: ## Build the stock v1.36.3 binaries and etcd into bin/ (skipped when built).
	@BIN=$(BIN) hack/upstream/build.sh

.PHONY: generate
# The OpenAPI definitions kubeparts-apiserver serves: its own types and the
# upstream ones it returns (metrics.k8s.io, meta/v1, quantities).
OPENAPI_PKGS := ./api/controlplane/v1alpha1 k8s.io/metrics/pkg/apis/metrics/v1beta1 \
	k8s.io/apimachinery/pkg/apis/meta/v1 k8s.io/apimachinery/pkg/runtime k8s.io/apimachinery/pkg/version \
	k8s.io/apimachinery/pkg/api/resource k8s.io/apimachinery/pkg/util/intstr
generate: $(BIN)/controller-gen $(BIN)/openapi-gen ## Generate deepcopy code for api/ and the aggregated apiserver's OpenAPI definitions.
	@$(BIN)/controller-gen object paths=./api/...
	@$(BIN)/openapi-gen --output-dir apiserver/generated/openapi --output-pkg github.com/kubeparts/kubeparts/apiserver/generated/openapi \
	  --output-file zz_generated.openapi.go --output-model-name-file zz_generated.model_name.go \
	  --readonly-pkg k8s.io/metrics/pkg/apis/metrics/v1beta1 --readonly-pkg k8s.io/apimachinery/pkg/apis/meta/v1 \
	  --readonly-pkg k8s.io/apimachinery/pkg/runtime --readonly-pkg k8s.io/apimachinery/pkg/version \
	  --readonly-pkg k8s.io/apimachinery/pkg/api/resource --readonly-pkg k8s.io/apimachinery/pkg/util/intstr \
	  --go-header-file /dev/null --report-filename /dev/null $(OPENAPI_PKGS)

.PHONY: manifests
manifests: $(BIN)/controller-gen ## Generate CRDs into config/crd/ and the chart's crds/ (api/v1alpha1 only: api/controlplane is served by kubeparts-apiserver, not a CRD).
	@$(BIN)/controller-gen crd paths=./api/v1alpha1/... output:crd:artifacts:config=config/crd
	@cp config/crd/*.*.yaml charts/kubeparts/crds/

$(BIN)/openapi-gen: hack/tools/go.mod
	@echo "tools: building openapi-gen"
	@cd hack/tools && $(GO_BUILD) -o $(BIN)/openapi-gen k8s.io/kube-openapi/cmd/openapi-gen

$(BIN)/controller-gen: hack/tools/go.mod
	@echo "tools: building controller-gen"
	@cd hack/tools && $(GO_BUILD) -o $(BIN)/controller-gen sigs.k8s.io/controller-tools/cmd/controller-gen

# The real helm CLI for the chart's tests, from its Go module (no download site is
# reachable here); ~2 min to build once, kept in bin/ (the stamp names the version).
HELM_VERSION := v4.3.2
$(BIN)/helm: $(BIN)/.helm-$(HELM_VERSION).stamp
$(BIN)/.helm-$(HELM_VERSION).stamp:
	@echo "tools: building helm $(HELM_VERSION)"
	@mkdir -p $(BIN)
	@GOBIN=$(BIN) CGO_ENABLED=0 go install helm.sh/helm/v4/cmd/helm@$(HELM_VERSION)
	@touch $@

# kind and the stock kubeadm for the kind-based tests (hack/kind, its own module so
# hack/upstream's binaries are not rebuilt); ~3 min to build once, kept in bin/.
KIND_DIGEST = $(shell cat hack/kind/go.mod hack/kind/go.sum | sha256sum | cut -c1-16)
$(BIN)/kind $(BIN)/kubeadm: hack/kind/go.mod hack/kind/go.sum
	@echo "tools: building kind and kubeadm v1.36.3 (hack/kind)"
	@mkdir -p $(BIN)
	@cd hack/kind && CGO_ENABLED=0 go build -trimpath -o $(BIN)/kind sigs.k8s.io/kind
	@cd hack/kind && CGO_ENABLED=0 go build -trimpath -ldflags '-s -w -X $(VPKG).gitVersion=v1.36.3 -X $(VPKG).gitMajor=1 -X $(VPKG).gitMinor=36 -X $(VPKG).gitTreeState=clean' -o $(BIN)/kubeadm k8s.io/kubernetes/cmd/kubeadm
	@touch $(BIN)/kind $(BIN)/kubeadm

##@ Run
.PHONY: run
run: deps build upstream ## Start a local cluster in the foreground (Ctrl-C stops it). Flags: UP_FLAGS=...
	@$(BIN)/kubeparts up $(UP_FLAGS)

##@ Test
.PHONY: test
test: deps build upstream image lint verify test-unit test-integration test-e2e ## Everything CI runs: lint, generated files, unit, integration, e2e.

.PHONY: test-kind
test-kind: deps build upstream image $(BIN)/helm $(BIN)/kind $(BIN)/kubeadm ## kind on podman: a multi-node kind cluster from our own node image, the chart installed, the e2e checks there.
	@echo "test: kind (podman; node image cached in podman and bin/kind-node/)"
	@KUBEPARTS_KIND=1 go test $(TEST_FLAGS) -count=1 -timeout 30m -v ./test/kind/

.PHONY: test-kind-upstream
test-kind-upstream: deps build upstream image $(BIN)/helm $(BIN)/kind $(BIN)/kubeadm ## make test-kind, then the upstream e2e sets of the swapped roles in that cluster (builds e2e.test, ~10 min once; SETS=a,b for some: controller-manager, nodeagent, scheduler, scheduler-serial).
	@echo "test: kind + upstream e2e sets (controller manager, node agent, scheduler)"
	@KUBEPARTS_KIND=1 KUBEPARTS_KIND_UPSTREAM=$(or $(SETS),1) go test $(TEST_FLAGS) -count=1 -timeout 90m -v ./test/kind/

.PHONY: test-unit
test-unit: $(BIN)/helm ## Unit tests (no apiserver; the chart's with the real helm).
	@echo "test: unit"
	@go test $(TEST_FLAGS) $$(go list ./... | grep -v /test/)

.PHONY: test-integration
test-integration: ## Tests against a real etcd and kube-apiserver from bin/.
	@echo "test: integration (real etcd + kube-apiserver)"
	@go test $(TEST_FLAGS) -count=1 -timeout 15m ./test/integration/...

.PHONY: test-e2e
test-e2e: ## `kubeparts up` end to end: cluster start, kubectl, restart, pods on containerd, clean stop.
	@echo "test: e2e (kubeparts up with containerd)"
	@go test $(TEST_FLAGS) -count=1 -timeout 35m ./test/e2e/...

.PHONY: e2e-upstream
e2e-upstream: deps build upstream ## The upstream e2e network sets (Conformance) on `kubeparts up`, kubeparts-proxy then the stock kube-proxy (FOCUS=..., SKIP=...).
	@hack/e2e-upstream/run.sh $(if $(FOCUS),'$(FOCUS)')
	@hack/e2e-upstream/run.sh --stock=proxy $(if $(FOCUS),'$(FOCUS)')

.PHONY: bench
bench: deps build upstream ## Benchmarks: Go benchmarks, controllers vs stock, `kubeparts up` time to ready/stop.
	@echo "bench: Go benchmarks"
	@go test -run '^$$' -bench . -benchmem $$(go list ./... | grep -v /test/)
	@echo "bench: side by side with the stock binaries (controller managers, scheduler, node agent, proxy; one package at a time; BENCH_ROUNDS=n for more rounds)"
	@go test -p 1 -count=1 -run '^$$' -bench . -benchtime 1x -timeout 90m ./test/bench/...
	@echo "bench: kubeparts up, warm start to ready and Ctrl-C to exit"
	@go test -count=1 -run '^$$' -bench . -benchtime 3x ./test/e2e/

.PHONY: lint
lint: $(BIN)/staticcheck ## gofmt, go vet, staticcheck (and golangci-lint when it is in PATH).
	@echo "lint: gofmt, go vet, staticcheck"
	@bad=$$(gofmt -l $$(git ls-files '*.go') 2>/dev/null); if [ -n "$$bad" ]; then echo "gofmt needed:"; echo "$$bad"; exit 1; fi
	@go vet ./...
	@(cd hack/upstream && go vet ./etcd)
	@$(BIN)/staticcheck ./...
	@if command -v golangci-lint >/dev/null; then golangci-lint run ./...; fi

$(BIN)/staticcheck: hack/tools/go.mod
	@echo "tools: building staticcheck"
	@cd hack/tools && $(GO_BUILD) -o $(BIN)/staticcheck honnef.co/go/tools/cmd/staticcheck

.PHONY: verify
verify: generate manifests ## Regenerate and fail when the tree changed.
	@echo "verify: generated code and CRDs are up to date"
	@git diff --exit-code -- api config apiserver/generated || { echo "verify: run make generate manifests and commit the result"; exit 1; }

.PHONY: clean
clean: ## Remove built kubeparts binaries (keeps the stock ones).
	@rm -f $(addprefix $(BIN)/,$(BINARIES) pause nettool)
