# vmove — conventional entry points (as in kubebuilder projects).
#   make run     local control plane (unless KUBECONFIG points at a cluster), CRDs, controller, demo nodes
#   make test    everything CI runs: typecheck, unit, integration (real kube-apiserver + etcd), e2e
#   make docs    docs/machines.md: the move machines' diagrams, drawn from their definitions
# Every target installs what it needs itself: Node 24 (from the npm registry when the machine's
# Node is older), npm packages, kube-apiserver/etcd and the test tools (promtool, kstatus, …)
# built from Go modules (cached in ~/.cache/vmove), Lua from Debian's packages.

SHELL := /bin/bash
NODE_HOME := $(shell hack/ensure-node.sh)
export PATH := $(NODE_HOME)/bin:$(PATH)
export npm_config_update_notifier := false
VMOVE := node dist/cli/main.js

.PHONY: all deps build typecheck guest tools run cluster cluster-down test test-unit test-integration test-e2e bench docs clean helm chart-sync chart-lint argocd-cm image

all: build

# `npm install`, not `npm ci`: the registry mirror lacks other platforms' optional packages
# (e.g. @unrs/resolver-binding-android-*), so the lock cannot list them and `npm ci` refuses it.
node_modules/.installed: package.json package-lock.json
	npm install --no-audit --no-fund
	@touch $@

deps: node_modules/.installed

build: deps
	npx tsc -p tsconfig.build.json

typecheck: deps
	npx tsc -p tsconfig.json --noEmit

# Test guest kit (Debian kernel + busybox initramfs) cached in ~/.cache/vmove/images/testguest.
guest:
	hack/build-guest.sh >/dev/null

# What the unit tests of the alerts, dashboard and health checks run, cached in ~/.cache/vmove:
# promtool (from the Prometheus Go module), hack/kstatus, hack/promql, hack/grafana, and Lua;
# tmux for the kubectl plugin's terminal test.
tools:
	hack/install-lua.sh >/dev/null
	hack/install-tmux.sh >/dev/null
	hack/build-promtool.sh >/dev/null
	hack/build-go-tool.sh kstatus >/dev/null
	hack/build-go-tool.sh promql >/dev/null
	hack/build-go-tool.sh grafana >/dev/null

cluster: build
	$(VMOVE) cluster up

cluster-down: build
	$(VMOVE) cluster down

# The demo: local control plane in .cache/cluster (reused while healthy), CRDs and RBAC, the
# controller, three demo nodes (one agent each, DRIVER=sim|qemu|libvirt) and two demo VMs.
DRIVER ?= sim
# RUNTIME=kubelet: two real kubelet nodes running the Helm chart's pods instead of local processes.
RUNTIME ?= processes
run: build $(if $(filter sim,$(DRIVER)),,guest)
	$(VMOVE) demo --driver $(DRIVER) --runtime $(RUNTIME)

test: typecheck build guest tools
	hack/build-control-plane.sh >/dev/null
	hack/build-helm.sh >/dev/null
	npm test

test-unit: deps tools
	npm run test:unit

test-integration: build
	hack/build-control-plane.sh >/dev/null
	hack/build-helm.sh >/dev/null
	npm run test:integration

test-e2e: build guest
	npm run test:e2e

# A unit test fails when the committed file differs from what this writes.
docs: build
	node dist/machines/diagram.js > docs/machines.md

# `make bench` runs them all; `make bench BENCH="moves --quick"` one, smaller.
BENCH ?=
bench: build guest
	hack/build-control-plane.sh >/dev/null
	npm run bench -- $(BENCH)

# The Helm chart (charts/vmove). `make helm` prints the helm binary: one on PATH (v3.19+) or
# built from helm.sh/helm/v3 and cached in ~/.cache/vmove. The chart's crds/ and files/rbac/
# are copies of crds/ and config/rbac/; a unit test fails when they drift.
helm:
	@hack/build-helm.sh

chart-sync:
	rm -f charts/vmove/crds/*.yaml charts/vmove/files/rbac/*.yaml
	cp crds/*.yaml charts/vmove/crds/
	cp config/rbac/*.yaml charts/vmove/files/rbac/

chart-lint:
	"$$(hack/build-helm.sh)" lint --strict charts/vmove

# config/argocd/argocd-cm-patch.yaml from the Argo CD health checks; a unit test fails when it is stale.
argocd-cm:
	hack/argocd-cm.sh >/dev/null

# The controller/agent image from the Dockerfile, built with buildah (no Docker, no registry) into
# an OCI archive for containerd on kubelet nodes (~/.cache/vmove/images/vmove-<hash>.oci.tar).
# Prints the archive path and the image reference (localhost/vmove:<hash>), one a line.
image:
	@hack/build-image.sh

clean:
	rm -rf dist
