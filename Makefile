# nubo — a real EC2 you run yourself.
#   make run    install what the host needs, build, serve the EC2 API
#   make test   install the same, run every test
#   make bench  print the benchmarks' figures

SHELL := /bin/bash
export PATH := /usr/local/go/bin:$(PATH)
GO       ?= go
BIN      := bin/nubo
DATA_DIR ?= /var/lib/nubo
LISTEN   ?= 127.0.0.1:8773

# Debian packages nubo needs on the host: runc (the instance runtime),
# mmdebstrap (builds images from Debian's packages), util-linux (nsenter),
# e2fsprogs (mkfs.ext4 for the EBS pool),
# busybox-static (the runtime's test root filesystem), the stock aws CLI (tests,
# and what users point at nubo) and OpenSSH's client (keys, logging in);
# iptables: CRIU locks a hibernating instance's network with iptables-restore
# (its nftables lock segfaults or fails through runc; see docs/criu-notes.md).
DEBS := runc mmdebstrap debian-archive-keyring util-linux e2fsprogs iproute2 nftables iptables busybox-static awscli openssh-client python3 ca-certificates curl
IMAGE ?= debian-12-minimal
# Images built by the tests, reused by every test package within a run.
export NUBO_IMAGE_CACHE ?= $(CURDIR)/.cache/images

.PHONY: all install build run test test-go test-cli fuzz bench clean

all: build

# CRIU 4.x for instance hibernation (runc checkpoint/restore), built by
# scripts/install-criu.sh into $(CRIU_DIR): Debian 12's criu 3.17 fails on
# kernels >= 6.13. Build deps (bookworm): protobuf-c (image format), libprotobuf-dev
# (descriptor.proto), libnl-3, libnet1, libcap, uuid (required by CRIU),
# libnftables (network-lock nftables: no iptables here); no docs/python toolchain.
# Call it with CRIU_FAULT=130. A failed build warns and goes on: nubo then
# reports hibernation as unavailable (RunInstances says why), and nothing
# else needs CRIU.
CRIU_DIR := /usr/local/lib/nubo/criu

# Idempotent: apt-get runs only when a package is missing; the CRIU build only
# when $(CRIU_DIR)/criu is missing or older than 4.
install:
	@missing=""; for p in $(DEBS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	@NUBO_CRIU_DIR=$(CRIU_DIR) scripts/install-criu.sh || \
	  echo "WARNING: CRIU 4 could not be built: instances cannot hibernate on this host" >&2

build:
	$(GO) build -o $(BIN) ./cmd/nubo
	CGO_ENABLED=0 $(GO) build -o bin/nubo-init ./cmd/nubo-init

run: install build
	$(BIN) image build $(IMAGE) --data-dir $(DATA_DIR)
	$(BIN) serve --data-dir $(DATA_DIR) --listen $(LISTEN)

test: install build test-go test-cli

test-go:
	$(GO) vet ./...
	NUBO_BIN=$(CURDIR)/$(BIN) $(GO) test -race -count=1 -timeout 30m ./...

test-cli:
	NUBO_BIN=$(CURDIR)/$(BIN) bash test/cli/aws-cli.sh

# Explore the query decoder beyond its seed corpus (make test runs the seeds).
fuzz:
	$(GO) test -run '^$$' -fuzz FuzzParseParams -fuzztime 60s ./internal/api/ec2query/

bench: build
	NUBO_BIN=$(CURDIR)/$(BIN) $(GO) run ./test/bench

clean:
	rm -rf bin
