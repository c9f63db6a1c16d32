package fs

import (
	"os"
	"runtime"
)

// spareProcs is how many Ps RaiseProcs adds above the CPUs.
const spareProcs = 2

// RaiseProcs sets GOMAXPROCS to spareProcs more than its default, the
// number of CPUs the process may run on, unless $GOMAXPROCS sets it. It
// changes a process-wide setting: call it once, from main, before
// mounting.
//
// Go gives goroutines no priorities: with one P per CPU, a FUSE request
// that comes while every P runs background work (the journal's applies,
// sealing, Reed-Solomon coding, the collector) waits in a run queue until
// one of them blocks or is preempted, up to 10 ms later. A program such
// as cp -a waits for each of its requests in turn, so that wait is its
// time. With spare Ps the request's goroutine runs at once on a thread of
// its own, and the kernel, which knows the unlinker's thread runs niced
// (journal/nice.go), decides who gets the CPU. The two together made
// cp -a of $GOROOT/src on 2 cores about 10% faster (docs/BENCHMARKS.md).
func RaiseProcs() int {
	if os.Getenv("GOMAXPROCS") != "" {
		return runtime.GOMAXPROCS(0)
	}
	n := runtime.NumCPU() + spareProcs
	runtime.GOMAXPROCS(n)
	return n
}
