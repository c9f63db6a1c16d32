#!/usr/bin/env bash
# test.sh: the one place the test suite is defined (make test and CI run it).
#
#   scripts/test.sh          every package's tests, then each Fuzz target for
#                            FUZZTIME (default 5s)
#   scripts/test.sh long     the long variants: packages with a -long flag
#
# Tests that need /dev/fuse skip without it, except when CI is set (then
# they fail). Budget: under 20 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."

mode=${1:-short}
fuzztime=${FUZZTIME:-5s}
pkgs=${PKGS:-./...} # a subset while working on one package, e.g. PKGS=./cmd/...
start=$(date +%s)

if [ "$mode" = long ]; then
	# Only packages whose tests define -long get the flag (others would
	# refuse an unknown flag).
	for dir in $(grep -rl --include='*_test.go' 'flag.Bool("long"' . | xargs -n1 dirname | sort -u); do
		echo "== long: $dir"
		go test -count=1 -timeout 60m "$dir" -args -long
	done
	echo "== long tests passed in $(($(date +%s) - start))s"
	exit 0
fi

echo "== go vet"
go vet $pkgs

echo "== go test $pkgs"
go test -count=1 -timeout 25m $pkgs

echo "== fuzz targets, $fuzztime each"
n=0
for pkg in $(go list $pkgs); do
	for target in $(go test -list 'Fuzz.*' "$pkg" | grep '^Fuzz' || true); do
		echo "-- $pkg $target"
		go test -count=1 -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" "$pkg"
		n=$((n + 1))
	done
done
echo "== all tests passed ($n fuzz targets) in $(($(date +%s) - start))s"
