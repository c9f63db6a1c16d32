package integration

import (
	"bytes"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// readLimit is how long one 1 MiB read may take before the suites call it
// a stall. A hung node costs a hedge (250 ms) or a call timeout (10 s),
// never more.
const readLimit = 30 * time.Second

// TestNodeFaults kills one node and hangs another (SIGSTOP) while files are
// written and read, on a grid of 8 (k=4, m=2: 6 nodes still answer, so
// every segment still gets its 6 shards) and on a grid of 6 (4 answer:
// reads work, writes wait in the journal until a node returns).
func TestNodeFaults(t *testing.T) {
	requireEnv(t)
	s := newSuite(t, "node-faults")
	var faults, readBytes atomic.Int64
	s.run(t, "grid-8-kill-1-hang-1", func(t *testing.T) { nodeFaults8(t, &faults, &readBytes) })
	s.run(t, "grid-6-kill-1-hang-1", func(t *testing.T) { nodeFaults6(t, &faults, &readBytes) })
	s.figure("node faults injected: %d (SIGKILL and SIGSTOP during reads and writes); bytes read and verified: %s; bytes lost: 0 unless a subtest failed",
		faults.Load(), mib(readBytes.Load()))
}

// workload reads files in 1 MiB pieces (after dropping the page cache and,
// between passes, the drive's cache) and records latencies and errors.
type workload struct {
	d     *drive
	files fileSet
	want  map[string][]byte

	mu        sync.Mutex // guards the fields below
	lat       []time.Duration
	errs      []error
	bytesRead int64
	passes    int
}

func newWorkload(d *drive, files fileSet) *workload {
	w := &workload{d: d, files: files, want: map[string][]byte{}}
	for name, c := range files {
		w.want[name] = c.contentRange(0, c.size)
	}
	return w
}

// pass reads every file once. It returns false after a stall.
func (w *workload) pass() bool {
	if _, err := w.d.cmd(time.Minute, "cache", "clear"); err != nil {
		w.fail(err)
	}
	for _, name := range w.files.names() {
		want := w.want[name]
		for off := int64(0); off < int64(len(want)); off += 1 << 20 {
			n := min(1<<20, int64(len(want))-off)
			d, got, err := timedRead(w.d.path(name), off, n, readLimit)
			w.mu.Lock()
			w.lat = append(w.lat, d)
			w.mu.Unlock()
			if err != nil {
				w.fail(err)
				if d >= readLimit {
					return false
				}
				continue
			}
			if !bytes.Equal(got, want[off:off+n]) {
				w.fail(fmt.Errorf("%s at %d: %d bytes read differ from what was written", name, off, n))
				continue
			}
			w.mu.Lock()
			w.bytesRead += n
			w.mu.Unlock()
		}
	}
	w.mu.Lock()
	w.passes++
	w.mu.Unlock()
	return true
}

func (w *workload) fail(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.errs) < 20 {
		w.errs = append(w.errs, err)
	}
}

// reset forgets the latencies recorded so far.
func (w *workload) reset() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.lat = nil
}

func (w *workload) report(t testing.TB, what string, bound time.Duration) {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, err := range w.errs {
		t.Errorf("%s: %v", what, err)
	}
	if len(w.lat) == 0 {
		t.Errorf("%s: no read completed", what)
		return
	}
	p50, p99, max := percentile(w.lat, 50), percentile(w.lat, 99), percentile(w.lat, 100)
	t.Logf("%s: %d reads of 1 MiB, latency p50 %v p99 %v max %v", what, len(w.lat), p50.Round(time.Millisecond), p99.Round(time.Millisecond), max.Round(time.Millisecond))
	if max > bound {
		t.Errorf("%s: slowest 1 MiB read took %v, want at most %v", what, max.Round(time.Millisecond), bound)
	}
}

func nodeDirs(nodes []*node, except ...int) []string {
	skip := map[int]bool{}
	for _, i := range except {
		skip[i] = true
	}
	var dirs []string
	for i, n := range nodes {
		if !skip[i] {
			dirs = append(dirs, n.dir)
		}
	}
	return dirs
}

func nodeFaults8(t *testing.T, faults, readBytes *atomic.Int64) {
	nodes := startNodes(t, 8)
	d := newDrive(t, driveOptions{Nodes: nodeURLs(nodes), K: 4, M: 2})
	d.mount(t, nil)
	base := makeFiles("base/f", 6, 4<<20, 31)
	base.write(t, d.mnt)
	d.sync(t, 3*time.Minute)
	d.unmount(t)
	d.mount(t, nil)

	w := newWorkload(d, base)
	if !w.pass() { // healthy baseline
		t.Fatalf("baseline read stalled")
	}
	w.reset()
	before := shardCount(t, nodeDirs(nodes))
	dn := dataShardNodes(t, nodes, 4)
	if len(dn) < 2 {
		t.Fatalf("only %d nodes hold data shards", len(dn))
	}
	killed, hung := dn[0], dn[1] // on the path of healthy reads
	nodes[killed].kill(t)
	nodes[hung].stop(t)
	faults.Add(2)
	t.Logf("killed %s, stopped %s", nodes[killed].name, nodes[hung].name)

	// Writes and reads during the faults.
	fresh := makeFiles("new/f", 6, 2<<20, 32)
	var wg sync.WaitGroup
	var writeErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		for _, name := range fresh.names() {
			if err := mkdirWrite(d.path(name), fresh[name]); err != nil {
				writeErr = err
				return
			}
		}
	}()
	for range 2 {
		if !w.pass() {
			break
		}
	}
	wg.Wait()
	if writeErr != nil {
		t.Errorf("write during node faults: %v", writeErr)
	}
	w.report(t, "reads with 1 node killed and 1 hung", 15*time.Second)
	readBytes.Add(w.bytesRead)

	start := time.Now()
	d.sync(t, 3*time.Minute)
	t.Logf("sync with 1 node killed and 1 hung took %v", time.Since(start).Round(time.Millisecond))
	after := shardCount(t, nodeDirs(nodes, killed, hung))
	newSegs := 0
	for seg, n := range after {
		if _, old := before[seg]; old {
			continue
		}
		newSegs++
		if n != 6 {
			t.Errorf("segment %s written during the faults has %d shards on the 6 nodes that answer, want 6", seg, n)
		}
	}
	if newSegs == 0 {
		t.Errorf("no segment was written during the faults")
	}
	t.Logf("%d segments written during the faults; status: %+v", newSegs, d.status(t).Uploads)

	// Bring the nodes back: nothing is lost.
	nodes[hung].cont(t)
	nodes[killed].start(t)
	d.sync(t, 3*time.Minute)
	d.unmount(t)
	d.mount(t, nil)
	d.cacheClear(t)
	readBytes.Add(base.check(t, d.mnt) + fresh.check(t, d.mnt))
	d.unmount(t)
	d.checkJournal(t)
}

func mkdirWrite(path string, c content) error {
	if err := mkdirAll(path); err != nil {
		return err
	}
	return writeContent(path, c)
}

func nodeFaults6(t *testing.T, faults, readBytes *atomic.Int64) {
	nodes := startNodes(t, 6)
	d := newDrive(t, driveOptions{Nodes: nodeURLs(nodes), K: 4, M: 2})
	d.mount(t, nil)
	base := makeFiles("base/f", 4, 4<<20, 41)
	base.write(t, d.mnt)
	d.sync(t, 3*time.Minute)
	d.unmount(t)
	d.mount(t, nil)

	dn := dataShardNodes(t, nodes, 4)
	if len(dn) < 2 {
		t.Fatalf("only %d nodes hold data shards", len(dn))
	}
	killed, hung := dn[0], dn[1] // on the path of healthy reads
	nodes[killed].kill(t)
	nodes[hung].stop(t)
	faults.Add(2)
	w := newWorkload(d, base)
	w.pass()
	w.report(t, "reads with 4 of 6 nodes (k=4)", 15*time.Second)
	readBytes.Add(w.bytesRead)

	// Writes land in the journal and wait there: 4 nodes are fewer than
	// k+1, so no segment can be stored.
	fresh := makeFiles("new/f", 3, 4<<20, 42)
	for _, name := range fresh.names() {
		if err := mkdirWrite(d.path(name), fresh[name]); err != nil {
			t.Fatalf("write with 4 of 6 nodes: %v", err)
		}
	}
	if out, err := d.cmd(10*time.Second, "sync"); err == nil {
		t.Errorf("sync returned with only 4 of 6 nodes up (k=4, m=2 needs 5):\n%s", lastLines(out, 5))
	}
	st := d.status(t)
	if st.Uploads.Bytes == 0 {
		t.Errorf("with 4 of 6 nodes the upload queue is empty; want the new files waiting in the journal (status %+v)", st.Uploads)
	}
	readBytes.Add(fresh.check(t, d.mnt)) // readable from the journal meanwhile

	// One node returns: 5 nodes take the segments (one shard owed).
	nodes[killed].start(t)
	start := time.Now()
	d.sync(t, 3*time.Minute)
	t.Logf("sync after a node returned took %v", time.Since(start).Round(time.Millisecond))
	nodes[hung].cont(t)
	d.sync(t, 3*time.Minute)
	d.unmount(t)
	d.mount(t, nil)
	d.cacheClear(t)
	readBytes.Add(base.check(t, d.mnt) + fresh.check(t, d.mnt))
	d.unmount(t)
	d.checkJournal(t)
}
