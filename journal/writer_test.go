package journal

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshdrive/meshdrive/remote"
)

// TestTwoWritersOneDrive: a drive recovered into a second data dir while
// the first still runs. The second ships after the record it recovered
// from; the first is then told the drive was taken over, ships nothing
// more, and its garbage collection deletes none of the second's
// segments, though its journal names none of them.
func TestTwoWritersOneDrive(t *testing.T) {
	e := newGridEnv(t, 6, 4, 2, func(o *Options) { o.MetaInterval = time.Hour })
	a := e.j
	e.writeFile("a", []byte("first computer"))
	e.syncGrid()

	r, err := ReadRoot(bg, e.grid, e.sealer, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.Writer.IsZero() {
		t.Fatal("the root record names no writer")
	}
	ob := e.opts
	ob.Dir = filepath.Join(t.TempDir(), "journal")
	if _, err := Rebuild(bg, RebuildOptions{Dir: ob.Dir, Grid: e.grid, Sealer: e.sealer, Seq: r.Seq, Head: r.Head,
		BlockSize: ob.BlockSize}); err != nil {
		t.Fatal(err)
	}
	b, err := Open(bg, ob)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	f := must[Attr](t)(b.Mknod(bg, RootIno, "b", 0o644, 0, 0, 0))
	must[int](t)(b.WriteAt(bg, f.Ino, []byte(strings.Repeat("second computer ", 1000)), 0))
	if err := b.Flush(bg, f.Ino); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := contextTimeout(30 * time.Second)
	defer cancel()
	if err := b.SyncGrid(ctx); err != nil {
		t.Fatalf("the recovered journal cannot ship after the record it took up: %v", err)
	}

	e.writeFile("c", []byte("first computer, later"))
	err = a.SyncGrid(ctx)
	var to *TakenOverError
	if !errors.As(err, &to) || !errors.Is(err, ErrTakenOver) {
		t.Errorf("the first journal's sync after the takeover: %v; want ErrTakenOver", err)
	}
	if st := a.MetaStats(bg); st.LastError == "" || !st.TakenOver {
		t.Errorf("the first journal's metadata stats %+v: want the error and TakenOver", st)
	}
	if st := b.MetaStats(bg); st.TakenOver {
		t.Errorf("the recovered journal's metadata stats %+v: want it not taken over", st)
	}
	if _, err := a.CollectGarbage(ctx, GCOptions{OrphanGrace: time.Nanosecond}); !errors.Is(err, ErrTakenOver) {
		t.Errorf("the first journal's garbage collection: %v; want ErrTakenOver", err)
	}
	rows, err := b.Segments(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range rows {
		for i, n := range s.Info.Nodes {
			if n == "" {
				continue
			}
			var node int
			if _, err := fmt.Sscanf(n, "node-%d", &node); err != nil {
				t.Fatal(err)
			}
			if _, err := e.nodes[node].Stat(ctx, remote.ShardName(s.Info.ID, i)); err != nil {
				t.Errorf("shard %d of the second journal's segment %s on %s: %v", i, s.Info.ID, n, err)
			}
		}
	}
	// The second journal goes on: it is the drive's writer.
	if _, err := b.CollectGarbage(ctx, GCOptions{}); err != nil {
		t.Errorf("the second journal's garbage collection: %v", err)
	}
	if r, err := ReadRoot(bg, e.grid, e.sealer, nil); err != nil || r.Writer == (remote.WriterID{}) {
		t.Fatalf("root after both: %+v, %v", r, err)
	}
}

// TestShipAfterCrashAfterRootPut: a ship whose root record reached the
// nodes but whose row did not (a crash between the two) leaves the
// journal the drive's writer: the next mount ships on.
func TestShipAfterCrashAfterRootPut(t *testing.T) {
	e := newGridEnv(t, 6, 4, 2, func(o *Options) { o.MetaInterval = time.Hour })
	e.writeFile("a", []byte("x"))
	e.syncGrid()
	crash := errors.New("crash after the root's Put")
	e.j.ms.afterRoot = func() error { return crash }
	e.writeFile("b", []byte("y"))
	if err := e.j.up.WaitDurable(bg); err != nil {
		t.Fatal(err)
	}
	if _, err := e.j.ms.ship(bg, false, false, false); !errors.Is(err, crash) {
		t.Fatalf("ship with the crash: %v", err)
	}
	r, err := ReadRoot(bg, e.grid, e.sealer, nil)
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := e.j.md.metaNext(bg); r.Seq != n {
		t.Fatalf("the grid's root is record %d; want the one the crash cut short, %d", r.Seq, n)
	}
	e.reopen()
	e.writeFile("c", []byte("z"))
	e.syncGrid()
	got, _ := e.rebuildFromGrid()
	for _, name := range []string{"a", "b", "c"} {
		if _, err := got.Lookup(bg, RootIno, name); err != nil {
			t.Errorf("the grid's copy lacks %s: %v", name, err)
		}
	}
}

// TestCopiedDataDir: a copy of a data dir (or a clone of the disk, a
// restored backup), opened beside its original: whichever ships second is
// told, and the first goes on.
func TestCopiedDataDir(t *testing.T) {
	e := newGridEnv(t, 6, 4, 2, func(o *Options) { o.MetaInterval = time.Hour })
	e.writeFile("a", []byte("before the copy"))
	e.syncGrid()
	if err := e.j.Close(); err != nil {
		t.Fatal(err)
	}
	e.j = nil
	ob := e.opts
	ob.Dir = filepath.Join(t.TempDir(), "journal")
	if err := os.CopyFS(ob.Dir, os.DirFS(e.opts.Dir)); err != nil {
		t.Fatal(err)
	}
	e.open()
	ob.Grid, ob.Blocks, ob.Meta = e.grid, e.reader, e.grid
	b, err := Open(bg, ob)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })

	e.writeFile("from-original", []byte("x"))
	e.syncGrid()
	f := must[Attr](t)(b.Mknod(bg, RootIno, "from-copy", 0o644, 0, 0, 0))
	if err := b.Flush(bg, f.Ino); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := contextTimeout(30 * time.Second)
	defer cancel()
	if err := b.SyncGrid(ctx); !errors.Is(err, ErrTakenOver) {
		t.Fatalf("the copy's sync after the original shipped: %v; want ErrTakenOver", err)
	}
	e.writeFile("from-original-2", []byte("y"))
	e.syncGrid() // the original goes on
}
