#!/usr/bin/env bash
# demo.sh: build meshdrive, mount a demo drive on its embedded default grid
# at .demo/Drive, copy a few sample files in, show `meshdrive status`, and
# stay mounted until Ctrl-C. Passphrase "demo" (a demo, not a secret).
#
#   DEMO_DIR=/some/dir scripts/demo.sh   # keep the demo elsewhere
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

demo=${DEMO_DIR:-$root/.demo}
bin=$root/bin/meshdrive
mp=$demo/Drive
export MESHDRIVE_DATA=$demo/data
export MESHDRIVE_PASSPHRASE=${MESHDRIVE_PASSPHRASE:-demo}

if [ ! -e /dev/fuse ]; then
	echo "demo: /dev/fuse is missing: load the fuse module (modprobe fuse), or pass the device into this container" >&2
	exit 1
fi
if [ "$(id -u)" != 0 ] && ! command -v fusermount3 >/dev/null; then
	echo "demo: fusermount3 is missing: install fuse3 (make deps, or apt-get install fuse3)" >&2
	exit 1
fi

mkdir -p bin "$mp"
go build -o "$bin" ./cmd/meshdrive

# A demo left mounted by an earlier run: unmount it first.
if grep -qs " $mp fuse" /proc/self/mounts; then
	"$bin" unmount "$mp" || true
fi

"$bin" mount --daemon --log-level info "$mp"
sleeper= # pid of the loop's sleep below, killed on the way out
cleanup() {
	trap - INT TERM EXIT
	if [ -n "$sleeper" ]; then
		kill "$sleeper" 2>/dev/null || true
	fi
	echo
	"$bin" unmount "$mp" || true
}
trap cleanup EXIT
trap 'cleanup; exit 0' INT TERM

mkdir -p "$mp/samples"
cp README.md go.mod "$mp/samples/" 2>/dev/null || cp go.mod "$mp/samples/"
cp -r cmd/meshdrive "$mp/samples/meshdrive-source"
head -c $((6 << 20)) /dev/urandom >"$mp/samples/random-6MiB.bin"
"$bin" sync --timeout 2m
echo
"$bin" status
echo
"$bin" status "$mp/samples"
echo
echo "The demo drive is mounted at $mp (data in $MESHDRIVE_DATA)."
echo "Try: ls $mp/samples; $bin status; MESHDRIVE_DATA=$MESHDRIVE_DATA $bin status $mp/samples/README.md"
echo "Press Ctrl-C to unmount."
while :; do
	sleep 3600 &
	sleeper=$!
	wait "$sleeper" || true
done
