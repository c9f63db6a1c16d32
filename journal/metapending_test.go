package journal

import (
	"database/sql"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/meshdrive/meshdrive/journal/metalog"
)

// metaPendingScan is what metaPending answered before it kept mdirty's
// keys in memory: one scan of mdirty per file. The test's oracle.
func metaPendingScan(t testing.TB, j *Journal, ino Ino) bool {
	t.Helper()
	var p bool
	err := j.db.QueryRowContext(bg, `SELECT EXISTS(SELECT 1 FROM mdirty d WHERE
		(d.tbl IN (1, 3, 4, 5) AND d.a = ?1)
		OR (d.tbl = 2 AND EXISTS(SELECT 1 FROM entries e WHERE e.ino = ?1 AND e.parent = d.a AND e.name = d.b))
		OR (d.tbl = 6 AND d.a IN (SELECT block FROM blockmap WHERE ino = ?1))
		OR (d.tbl = 7 AND d.a IN (SELECT b.segment FROM blockmap m JOIN blocks b ON b.id = m.block WHERE m.ino = ?1)))`, ino).Scan(&p)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestMetaPendingMatchesScan: the in-memory keys answer as the scan of
// mdirty does, for files changed in every way, before and after records
// ship (the shipper deletes rows: the keys are read again) and as rows
// are appended (only the new ones are read).
func TestMetaPendingMatchesScan(t *testing.T) { bubble(t, testMetaPendingMatchesScan) }

func testMetaPendingMatchesScan(t *testing.T) {
	e := newGridEnv(t, 6, 4, 2, func(o *Options) { o.MetaInterval = time.Hour })
	j := e.j
	var files []Ino
	check := func(when string, wantSome, wantNone bool) {
		t.Helper()
		some, none := false, true
		for _, f := range files {
			got := must[bool](t)(j.md.metaPending(bg, f))
			if want := metaPendingScan(t, j, f); got != want {
				t.Fatalf("%s: metaPending(%d) = %v, the scan of mdirty says %v", when, f, got, want)
			}
			some = some || got
			none = none && !got
		}
		if wantSome && !some {
			t.Fatalf("%s: no file pending", when)
		}
		if wantNone && !none {
			t.Fatalf("%s: a file still pending", when)
		}
	}
	dir := must[Attr](t)(j.Mkdir(bg, RootIno, "dir", 0o755, 0, 0))
	for i := range 6 {
		files = append(files, e.writeFile(fmt.Sprintf("f%d", i), []byte(fmt.Sprintf("file %d", i))))
	}
	applyUnlinks(t, j) // the creates, for the scan
	check("new files", true, false)
	e.syncGrid()
	check("after the first record", false, true)

	// One kind of change per file, each checked after the keys were read
	// (so only the rows appended since are read for the next).
	changes := []func(){
		func() { must[Attr](t)(j.SetAttr(bg, files[0], SetAttr{Mode: ptr(uint32(0o600))})) },
		func() {
			if err := j.Rename(bg, RootIno, "f1", dir.Ino, "moved", 0); err != nil {
				t.Fatal(err)
			}
		},
		func() {
			if err := j.SetXattr(bg, files[2], "user.x", []byte("y"), 0); err != nil {
				t.Fatal(err)
			}
		},
		func() {
			must[int](t)(j.WriteAt(bg, files[3], []byte("changed"), 0))
			if err := j.Flush(bg, files[3]); err != nil {
				t.Fatal(err)
			}
		},
		func() { must[Attr](t)(j.Link(bg, files[4], dir.Ino, "hard")) },
	}
	for i, change := range changes {
		change()
		check(fmt.Sprintf("change %d", i), true, false)
	}
	e.syncGrid()
	check("after the second record", false, true)
	if err := j.Unlink(bg, dir.Ino, "hard"); err != nil {
		t.Fatal(err)
	}
	check("after an unlink of one of two names", true, false)
}

// BenchmarkMetaPending: a folder's status during a large copy asks, for
// each of its files, whether its metadata is pending; mdirty then holds
// the rows of every file made since the last record. 20,000 files made
// and applied (some 40,000 rows: an inode and an entry each), the state
// of 200 of them asked: by one scan of mdirty each (as before) and from
// the keys in memory (keys-first: the first question, which reads them
// all).
//
//	go test -run '^$' -bench MetaPending -benchtime 1x ./journal/
func BenchmarkMetaPending(b *testing.B) {
	const made, asked = 20_000, 200
	e := newGridEnv(b, 6, 4, 2, func(o *Options) { o.MetaInterval = time.Hour })
	j := e.j
	inos := make([]Ino, made)
	for i := range inos {
		inos[i] = must[Attr](b)(j.Mknod(bg, RootIno, fmt.Sprintf("f%06d", i), 0o644, 0, 0, 0)).Ino
	}
	// The creates are deferred (creates.go): their rows reach mdirty
	// when they are applied, and until then metaPending answers from
	// memory. All of them applied, every question is asked of mdirty.
	if err := j.ul.settle(bg); err != nil {
		b.Fatal(err)
	}
	var rows int
	if err := j.db.QueryRowContext(bg, `SELECT count(*) FROM mdirty`).Scan(&rows); err != nil {
		b.Fatal(err)
	}
	if rows < 2*made {
		b.Fatalf("mdirty holds %d rows after %d creates, want at least %d: the benchmark would ask of fewer rows than it says", rows, made, 2*made)
	}
	b.Run("keys-first", func(b *testing.B) { must[bool](b)(j.md.metaPending(bg, inos[0])) })
	b.Run("scan", func(b *testing.B) {
		for range b.N {
			for i := range asked {
				metaPendingScan(b, j, inos[i*(made/asked)])
			}
		}
		b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*asked), "µs/file")
	})
	b.Run("keys", func(b *testing.B) {
		for range b.N {
			for i := range asked {
				must[bool](b)(j.md.metaPending(bg, inos[i*(made/asked)]))
			}
		}
		b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*asked), "µs/file")
	})
}

// BenchmarkShipDelta: the delta record after 20,000 creates (40,000 keys
// noted), what the metadata shipper reads from the journal while a large
// copy goes on.
//
//	go test -run '^$' -bench ShipDelta -benchtime 1x ./journal/
func BenchmarkShipDelta(b *testing.B) {
	const made = 20_000
	e := newGridEnv(b, 6, 4, 2, func(o *Options) { o.MetaInterval = time.Hour })
	j := e.j
	must[uint64](b)(j.ShipMeta(bg, true)) // the full record: the next is a delta
	for i := range made {
		must[Attr](b)(j.Mknod(bg, RootIno, fmt.Sprintf("f%06d", i), 0o644, 0, 0, 0))
	}
	if err := j.ul.settle(bg); err != nil {
		b.Fatal(err)
	}
	var rows int
	b.ResetTimer()
	for range b.N {
		j.ms.mu.Lock()
		rtx, err := j.db.BeginTx(bg, &sql.TxOptions{ReadOnly: true})
		if err != nil {
			b.Fatal(err)
		}
		bl := metalog.NewBuilder(metalog.Header{Seq: 2, Kind: metalog.Delta})
		var later deferral
		err = deltaRows(bg, rtx, math.MaxInt64, bl, &later)
		rtx.Rollback()
		j.ms.mu.Unlock()
		if err != nil {
			b.Fatal(err)
		}
		rows = bl.Rows()
	}
	if rows < made*2 {
		b.Fatalf("the delta holds %d rows after %d creates", rows, made)
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*rows), "µs/row")
}

// TestDeltaRowsLeavesOut: a delta record holds the rows of the keys noted
// since the last one as they are now, and deletions of those gone; the
// rows of an inode the deferral leaves out (its inode, block map and the
// entry that names it) go to later.keys instead.
func TestDeltaRowsLeavesOut(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.UnlinkDelay = -1 })
	j := e.j
	mk := func(name string) Ino { return must[Attr](t)(j.Mknod(bg, RootIno, name, 0o644, 0, 0, 0)).Ino }
	gone := mk("gone")
	j.wmu.Lock()
	_, err := j.w.ExecContext(bg, `DELETE FROM mdirty`) // as after a record
	j.wmu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	kept, left := mk("kept"), mk("left")
	for _, ino := range []Ino{kept, left} {
		j.OpenFile(ino)
		must[int](t)(j.WriteAt(bg, ino, []byte("some data"), 0))
		if err := j.Fsync(bg, ino); err != nil {
			t.Fatal(err)
		}
		j.ReleaseFile(ino)
	}
	if err := j.Unlink(bg, RootIno, "gone"); err != nil {
		t.Fatal(err)
	}
	if err := j.ul.settle(bg); err != nil {
		t.Fatal(err)
	}
	// The blocks uploaded, as a slow run (-race) has them by now: their
	// rows are in the delta too, keyed by id.
	if err := j.WaitDurable(bg); err != nil {
		t.Fatal(err)
	}

	rtx, err := j.db.BeginTx(bg, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer rtx.Rollback()
	b := metalog.NewBuilder(metalog.Header{Seq: 1, Kind: metalog.Full, Base: 1}) // what deltaRows adds; Open checks no chain
	later := deferral{inodes: map[int64]bool{int64(left): true}}
	if err := deltaRows(bg, rtx, math.MaxInt64, b, &later); err != nil {
		t.Fatal(err)
	}
	s := testSealer(t)
	_, each, err := metalog.Open(s, 1, b.Seal(s))
	if err != nil {
		t.Fatal(err)
	}
	type key struct {
		tbl uint8
		del bool
		a   any
	}
	got := map[key]bool{}
	if err := each(func(r metalog.Row) error {
		a := r.Vals[0]
		if r.Table == 2 && !r.Delete { // entries: by the inode they name
			a = r.Vals[2]
		}
		if r.Table == 2 && r.Delete { // by name
			a = r.Vals[1]
		}
		if b, ok := a.([]byte); ok { // table blocks: keyed by the id, bytes
			a = string(b)
		}
		got[key{r.Table, r.Delete, a}] = true
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []key{
		{1, false, int64(kept)}, {2, false, int64(kept)}, {5, false, int64(kept)},
		{1, true, int64(gone)}, {2, true, "gone"},
	} {
		if !got[want] {
			t.Errorf("the delta lacks %+v; it holds %v", want, got)
		}
	}
	for k := range got {
		if k.a == int64(left) {
			t.Errorf("the delta holds %+v of the inode it leaves out", k)
		}
	}
	leftKeys := map[uint8]bool{}
	for _, k := range later.keys {
		leftKeys[k.tbl] = true
	}
	for _, tbl := range []uint8{1, 2, 5} {
		if !leftKeys[tbl] {
			t.Errorf("no key of table %d left for later; left: %+v", tbl, later.keys)
		}
	}
}
