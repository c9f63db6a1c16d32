// Package integration holds meshdrive's end-to-end reliability suites. It
// has no API: everything is in the _test.go files.
//
// The tests build the real meshdrive binary once (TestMain), start real
// `meshdrive node serve` processes on 127.0.0.1, `init` a drive against
// them, `mount` it in a subprocess (never the FUSE daemon inside the test
// process, so a kernel deadlock on the test's own mount cannot happen) and
// run real tools against the mount: fio with verify=crc32c, stress-ng's file
// system stressors with --verify, cp, and plain reads and writes from Go.
//
// The six suites of docs/RELIABILITY.md:
//
//	TestIntegrity       data integrity under load, re-read with 2 of 6 nodes stopped
//	TestCrash           SIGKILL of the mount process mid-write, mid-upload, mid-rename, mid-truncate
//	TestNodeFaults      SIGKILL and SIGSTOP of nodes during a workload (grids of 8 and 6)
//	TestNetworkFaults   latency, bandwidth caps, resets and a blackholed node (toxiproxy)
//	TestFullDisk        a node on a full tmpfs (507), a journal on a full tmpfs (ENOSPC)
//	TestNegativeControl corruption injected below the checks must make fio verify fail
//
// Each suite prints one line "NAME: N passed, M failed" on stdout when it
// ends. `go test` shows a passing package's output only with -v, so run
// this package with -v to see the lines: go test -count=1 -v ./integration/
//
// Requirements: /dev/fuse and fusermount3, fio, stress-ng, and root for the
// tmpfs mounts of TestFullDisk. Without them the tests skip, except when the
// environment variable CI is set: then a missing requirement is a failure.
// The -long flag runs longer variants (bigger files, more kills).
package integration
