#!/usr/bin/env bash
# bench.sh: build cmd/meshbench and run it once: go-fuse's loopback with FUSE
# passthrough (A), the same loopback serving every byte itself (B), B with an
# fsync of each written file at close (D: the promise the drive keeps) and the
# meshdrive drive over a local grid (C), on the same disk, the same workloads.
# Replaces the "## Drive vs loopback" section of docs/BENCHMARKS.md.
#
#   scripts/bench.sh                  # full run (2 GiB, 100k entries, 10k unlinks, GOROOT/src)
#   scripts/bench.sh --quick          # smoke run, seconds
#   scripts/bench.sh --dir /mnt/disk  # scratch on another disk
#
# Extra arguments go to meshbench (see `meshbench -h`); --workloads picks
# some (e.g. --workloads copy-tree,create,unlink,rm-tree, without --out). Needs root: FUSE
# passthrough and /proc/sys/vm/drop_caches are root-only. BENCH_OUT overrides
# the markdown file ("" prints only).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

if [ "$(id -u)" != 0 ]; then
	echo "bench.sh: run as root (FUSE passthrough and drop_caches need it), e.g. sudo -E $0 $*" >&2
	exit 1
fi
if [ ! -e /dev/fuse ]; then
	echo "bench.sh: /dev/fuse is missing: load the fuse module (modprobe fuse)" >&2
	exit 1
fi

mkdir -p bin
go build -o bin/meshbench ./cmd/meshbench

out=${BENCH_OUT-docs/BENCHMARKS.md}
if [ -n "$out" ]; then
	exec bin/meshbench --out "$out" "$@"
fi
exec bin/meshbench "$@"
