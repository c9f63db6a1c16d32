package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"
)

// heapProfEnv names a directory in the environment of meshbench (its
// children inherit it): a debugging aid for peak RSS. While a workload
// runs, the serving child watches its resident memory and, each time it
// passes its high-water mark by heapStep, writes DIR/KIND-WORKLOAD.heap (a
// pprof heap profile) and DIR/KIND-WORKLOAD.status (/proc/self/status,
// smaps_rollup and the Go runtime's memory classes), so that what is left
// once the workload ends was taken near its peak. Writing a profile costs
// the child some CPU: do not time runs made with it.
const heapProfEnv = "MESHBENCH_HEAPPROF"

// heapStep is how far RSS must pass the last snapshot for a new one.
const heapStep = 2 << 20

// watchHeap starts the watcher for one workload when heapProfEnv is set;
// the returned func stops it and waits for it. kind names the daemon.
func watchHeap(kind, workload string) func() {
	dir := os.Getenv(heapProfEnv)
	if dir == "" {
		return func() {}
	}
	stop, done := make(chan struct{}), make(chan struct{})
	base := filepath.Join(dir, kind+"-"+workload)
	go func() {
		defer close(done)
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		high := int64(0)
		for {
			select {
			case <-stop:
				return
			case <-t.C:
			}
			rss := statusKiB("VmRSS:") << 10
			if rss < high+heapStep {
				continue
			}
			high = rss
			if err := snapshotHeap(base); err != nil {
				fmt.Fprintf(os.Stderr, "meshbench: heap snapshot: %v\n", err)
				return
			}
		}
	}()
	return func() { close(stop); <-done }
}

// snapshotHeap writes base.heap and base.status.
func snapshotHeap(base string) error {
	var b bytes.Buffer
	if err := pprof.Lookup("heap").WriteTo(&b, 0); err != nil {
		return err
	}
	if err := os.WriteFile(base+".heap", b.Bytes(), 0o644); err != nil {
		return err
	}
	b.Reset()
	for _, f := range []string{"/proc/self/status", "/proc/self/smaps_rollup"} {
		if s, err := os.ReadFile(f); err == nil {
			b.Write(s)
		}
	}
	b.WriteString(smapsByFile())
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	fmt.Fprintf(&b, "go: HeapAlloc %d MiB, HeapInuse %d MiB, HeapIdle %d MiB, HeapReleased %d MiB, StackInuse %d MiB, Sys %d MiB, NextGC %d MiB, NumGC %d\n",
		ms.HeapAlloc>>20, ms.HeapInuse>>20, ms.HeapIdle>>20, ms.HeapReleased>>20, ms.StackInuse>>20, ms.Sys>>20, ms.NextGC>>20, ms.NumGC)
	return os.WriteFile(base+".status", b.Bytes(), 0o644)
}

// statusKiB is a "Name:  N kB" field of /proc/self/status (-1 when absent).
func statusKiB(name string) int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, name); ok {
			f := strings.Fields(rest)
			if len(f) == 2 && f[1] == "kB" {
				if n, err := strconv.ParseInt(f[0], 10, 64); err == nil {
					return n
				}
			}
		}
	}
	return -1
}

// smapsByFile sums the resident KiB of /proc/self/smaps per mapped file
// (a file mapped several times, as sqlite maps the database once per
// connection, counts once per mapping in RssFile), one line each.
func smapsByFile() string {
	b, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		return ""
	}
	type use struct{ kib, maps int64 }
	by := map[string]*use{}
	var cur *use
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) >= 5 && strings.Contains(f[0], "-") && !strings.HasSuffix(f[0], ":"):
			name := "[anon]"
			if len(f) >= 6 {
				name = f[5]
			}
			if by[name] == nil {
				by[name] = &use{}
			}
			cur = by[name]
			cur.maps++
		case len(f) == 3 && f[0] == "Rss:" && cur != nil:
			n, _ := strconv.ParseInt(f[1], 10, 64)
			cur.kib += n
		}
	}
	var out strings.Builder
	for name, u := range by {
		if u.kib >= 1024 {
			fmt.Fprintf(&out, "smaps: %s %d KiB in %d mappings\n", name, u.kib, u.maps)
		}
	}
	return out.String()
}
