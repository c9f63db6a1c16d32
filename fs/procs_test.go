package fs

import (
	"runtime"
	"testing"
)

// TestRaiseProcs: spareProcs Ps above the CPUs, and $GOMAXPROCS wins.
func TestRaiseProcs(t *testing.T) {
	old := runtime.GOMAXPROCS(0)
	t.Cleanup(func() { runtime.GOMAXPROCS(old) })
	t.Setenv("GOMAXPROCS", "")
	if got, want := RaiseProcs(), runtime.NumCPU()+spareProcs; got != want || runtime.GOMAXPROCS(0) != want {
		t.Errorf("RaiseProcs: %d, GOMAXPROCS %d; want %d", got, runtime.GOMAXPROCS(0), want)
	}
	runtime.GOMAXPROCS(3)
	t.Setenv("GOMAXPROCS", "3")
	if got := RaiseProcs(); got != 3 || runtime.GOMAXPROCS(0) != 3 {
		t.Errorf("with $GOMAXPROCS=3: RaiseProcs %d, GOMAXPROCS %d", got, runtime.GOMAXPROCS(0))
	}
}
