# meshdrive: build, demo, test. The test suite itself lives in scripts/test.sh.
GO ?= go
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
DEB_PACKAGES := fuse3 fio stress-ng rsync libglib2.0-bin sqlite3 git ca-certificates chromium
VERSITYGW := github.com/versity/versitygw/cmd/versitygw@v1.8.0

.PHONY: build demo test test-long bench bench-go deps vet clean

build:
	$(GO) build -o bin/meshdrive ./cmd/meshdrive

# Mounts a demo drive at .demo/Drive until Ctrl-C.
demo:
	@scripts/demo.sh

# The whole suite: go vet, every package's tests, every Fuzz target for 5s.
test:
	@scripts/test.sh

# The long variants (packages with a -long flag).
test-long:
	@scripts/test.sh long

# Drive vs loopback benchmark; rewrites docs/BENCHMARKS.md (needs root).
bench:
	@scripts/bench.sh

# Go micro-benchmarks of the packages.
bench-go:
	$(GO) test -run '^$$' -bench . -benchmem ./...

vet:
	$(GO) vet ./...

# What the tests need: Debian packages and versitygw (an S3 server), each
# installed only when missing.
deps:
	@if ! dpkg -s $(DEB_PACKAGES) >/dev/null 2>&1; then \
		$(SUDO) apt-get update && $(SUDO) apt-get install -y $(DEB_PACKAGES); \
	fi
	@if ! command -v versitygw >/dev/null && [ ! -x "$$($(GO) env GOPATH)/bin/versitygw" ]; then \
		$(GO) install $(VERSITYGW); \
	fi
	@echo "deps: ok (versitygw in $$($(GO) env GOPATH)/bin; put it on PATH)"

clean:
	rm -rf bin
