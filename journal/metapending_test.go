package journal

import (
	"fmt"
	"testing"
	"time"
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
// (60,000 rows), the state of 200 of them asked: by one scan of mdirty
// each (as before) and from the keys in memory (keys-first: the first
// question, which reads them all).
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
