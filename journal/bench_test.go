package journal

import (
	"bytes"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"syscall"
	"testing"
	"time"
)

// BenchmarkMetadata measures the namespace hot paths on a real sqlite
// file: go test -run '^$' -bench Metadata -benchtime 1x ./journal/
// (each sub-benchmark reports ops/s).
func BenchmarkMetadata(b *testing.B) {
	const n = 100_000
	e := newEnv(b, nil)
	j := e.j
	// The testing package may run a sub-benchmark more than once (with
	// -benchtime Nx: once with b.N = 1, then with N); each run does the
	// same fixed work again: create makes a new directory of n files, and
	// rename moves them out of it or back in.
	var dir Attr
	var inos []Ino
	gen, renames := 0, 0
	report := func(b *testing.B, ops int, d time.Duration) {
		b.ReportMetric(float64(ops)/d.Seconds(), "ops/s")
	}
	// cpu-ops/s: operations per second of this process's CPU time, which
	// a shared, loaded machine distorts less than wall-clock time.
	var ru0 syscall.Rusage
	cpuStart := func() { syscall.Getrusage(syscall.RUSAGE_SELF, &ru0) }
	cpuReport := func(b *testing.B, ops int) {
		var ru syscall.Rusage
		syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		d := time.Duration(ru.Utime.Nano() + ru.Stime.Nano() - ru0.Utime.Nano() - ru0.Stime.Nano())
		b.ReportMetric(float64(ops)/d.Seconds(), "cpu-ops/s")
	}
	b.Run("create", func(b *testing.B) {
		gen++
		dir = must[Attr](b)(j.Mkdir(bg, RootIno, fmt.Sprintf("big-%d", gen), 0o755, 0, 0))
		inos, renames = inos[:0], 0
		start := time.Now()
		cpuStart()
		for i := 0; i < n; i++ {
			a, err := j.Mknod(bg, dir.Ino, fmt.Sprintf("file-%06d", i), 0o644, 0, 0, 0)
			if err != nil {
				b.Fatal(err)
			}
			inos = append(inos, a.Ino)
		}
		report(b, n, time.Since(start))
		cpuReport(b, n)
	})
	b.Run("lookup", func(b *testing.B) {
		start := time.Now()
		cpuStart()
		for i := 0; i < n; i++ {
			if _, err := j.Lookup(bg, dir.Ino, fmt.Sprintf("file-%06d", i)); err != nil {
				b.Fatal(err)
			}
		}
		report(b, n, time.Since(start))
		cpuReport(b, n)
	})
	b.Run("getattr", func(b *testing.B) {
		start := time.Now()
		cpuStart()
		for i := 0; i < n; i++ {
			if _, err := j.GetAttr(bg, inos[i]); err != nil {
				b.Fatal(err)
			}
		}
		report(b, n, time.Since(start))
		cpuReport(b, n)
	})
	b.Run("readdir100k", func(b *testing.B) {
		start := time.Now()
		cpuStart()
		var off uint64
		total := 0
		for {
			page, err := j.ReadDir(bg, dir.Ino, off, 512)
			if err != nil {
				b.Fatal(err)
			}
			if len(page) == 0 {
				break
			}
			total += len(page)
			off = page[len(page)-1].Off
		}
		if total != n {
			b.Fatalf("readdir saw %d entries, want %d", total, n)
		}
		report(b, n, time.Since(start))
		cpuReport(b, n)
	})
	b.Run("rename", func(b *testing.B) {
		const r = 20_000
		start := time.Now()
		cpuStart()
		from, to := dir.Ino, RootIno
		fromName, toName := "file-%06d", fmt.Sprintf("moved-%d-%%06d", gen)
		if renames%2 == 1 {
			from, to, fromName, toName = to, from, toName, fromName
		}
		renames++
		for i := 0; i < r; i++ {
			if err := j.Rename(bg, from, fmt.Sprintf(fromName, i), to, fmt.Sprintf(toName, i), 0); err != nil {
				b.Fatal(err)
			}
		}
		report(b, r, time.Since(start))
		cpuReport(b, r)
	})
}

// BenchmarkSmallFile is what cp -a does to the journal per small file,
// as the fs calls it: create and open, one write, the kernel's time flush
// and utimensat (SetAttr of times), chmod, the flush of close, release.
func BenchmarkSmallFile(b *testing.B) {
	e := newEnv(b, func(o *Options) { o.BlockSize = 4 << 20; o.IdleFlush = time.Hour })
	data := bytes.Repeat([]byte("package main // some source text\n"), 150) // ~5 KB
	b.ResetTimer()
	for i := range b.N {
		smallFile(b, e.j, i, data)
	}
}

func smallFile(b *testing.B, j *Journal, i int, data []byte) {
	a, err := j.Mknod(bg, RootIno, fmt.Sprintf("f%07d", i), 0o100600, 0, 0, 0)
	if err != nil {
		b.Fatal(err)
	}
	j.OpenFile(a.Ino)
	defer j.ReleaseFile(a.Ino)
	data[0] = byte(i) // distinct blocks
	data[1] = byte(i >> 8)
	data[2] = byte(i >> 16)
	if _, err := j.WriteAt(bg, a.Ino, data, 0); err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	if _, err := j.SetAttr(bg, a.Ino, SetAttr{Mtime: &now}); err != nil {
		b.Fatal(err)
	}
	mt := time.Unix(1700000000, 0)
	if _, err := j.SetAttr(bg, a.Ino, SetAttr{Atime: &mt, Mtime: &mt}); err != nil {
		b.Fatal(err)
	}
	mode := uint32(0o644)
	if _, err := j.SetAttr(bg, a.Ino, SetAttr{Mode: &mode}); err != nil {
		b.Fatal(err)
	}
	if err := j.Flush(bg, a.Ino); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkSmallFileFrames counts the pages the journal writes to its WAL
// per small file (what BenchmarkSmallFile does; the uploader, waiting
// for IdleFlush, commits nothing meanwhile), by table or index, over 40
// files after 3,000 (a checkpoint in between empties the WAL):
//
//	go test -run '^$' -bench SmallFileFrames -benchtime 1x -v ./journal/
func BenchmarkSmallFileFrames(b *testing.B) {
	const warm, files = 3000, 40
	for range b.N {
		e := newEnv(b, func(o *Options) { o.BlockSize = 4 << 20; o.IdleFlush = time.Hour })
		data := bytes.Repeat([]byte("package main // some source text\n"), 150)
		for i := range warm {
			smallFile(b, e.j, i, data)
		}
		if err := e.j.WaitDurable(bg); err != nil { // the uploader's commits of the warm-up
			b.Fatal(err)
		}
		e.j.wmu.Lock()
		_, err := e.j.w.ExecContext(bg, "PRAGMA wal_checkpoint(TRUNCATE)")
		e.j.wmu.Unlock()
		if err != nil {
			b.Fatal(err)
		}
		for i := warm; i < warm+files; i++ {
			smallFile(b, e.j, i, data)
		}
		// Small files' closes are logged (flushlog.go): their apply, one
		// transaction for the batch, is what writes their pages.
		applyUnlinks(b, e.j)
		byName, total := walFrames(b, e.opts.Dir)
		names := make([]string, 0, len(byName))
		for k := range byName {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, k := range names {
			b.Logf("%-28s %5.2f frames per file", k, float64(byName[k])/files)
		}
		b.ReportMetric(float64(total)/files, "frames/file")
	}
}

// walFrames counts the frames of dir's journal WAL by the table or index
// their page belongs to (sqlite's dbstat).
func walFrames(b *testing.B, dir string) (map[string]int, int) {
	wal, err := os.ReadFile(filepath.Join(dir, "journal.db-wal"))
	if err != nil {
		b.Fatal(err)
	}
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "journal.db")+"?mode=ro")
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT name, pageno FROM dbstat`)
	if err != nil {
		b.Fatal(err)
	}
	defer rows.Close() // on a failure too: the journal's Close waits for an open read
	owner := map[uint32]string{}
	for rows.Next() {
		var name string
		var page uint32
		if err := rows.Scan(&name, &page); err != nil {
			b.Fatal(err)
		}
		owner[page] = name
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		b.Fatal(err)
	}
	const walHeader, frameHeader = 32, 24
	if len(wal) < walHeader {
		return map[string]int{}, 0 // nothing written since the checkpoint
	}
	pageSize := int(binary.BigEndian.Uint32(wal[8:]))
	byName, total := map[string]int{}, 0
	for off := walHeader; off+frameHeader+pageSize <= len(wal); off += frameHeader + pageSize {
		name := owner[binary.BigEndian.Uint32(wal[off:])]
		if name == "" {
			name = "(free page)"
		}
		byName[name]++
		total++
	}
	return byName, total
}

// BenchmarkBatchedFlushRows sizes what batching small files' flushes would
// buy, as BenchmarkOpLog does for creates and unlinks: the rows a new
// small file's create and close write today (the parent's times, inode,
// entry, block, staged bytes, block map, the inode's size) for 640 files
// after 3,000 real ones, one transaction per file (what cp -a costs now)
// against one per 8 or 32 files. It reports the process's CPU and the WAL
// frames per file; what a deferred flush adds on top (the log record's
// write, its replay, reads of a file not yet applied) is not in it:
//
//	go test -run '^$' -bench BatchedFlushRows -benchtime 1x ./journal/
func BenchmarkBatchedFlushRows(b *testing.B) {
	for _, batch := range []int{1, 8, 32} {
		b.Run(fmt.Sprintf("batch%d", batch), func(b *testing.B) { batchedFlushRows(b, batch) })
	}
}

func batchedFlushRows(b *testing.B, batch int) {
	const warm, files = 3000, 640
	e := newEnv(b, func(o *Options) { o.BlockSize = 4 << 20; o.IdleFlush = time.Hour })
	data := bytes.Repeat([]byte("package main // some source text\n"), 150)
	for i := range warm {
		smallFile(b, e.j, i, data)
	}
	if err := e.j.WaitDurable(bg); err != nil {
		b.Fatal(err)
	}
	var seq int64
	e.j.wmu.Lock()
	_, err := e.j.w.ExecContext(bg, "PRAGMA wal_checkpoint(TRUNCATE)")
	if err == nil {
		err = e.j.w.QueryRowContext(bg, `SELECT seq FROM sqlite_sequence WHERE name = 'inodes'`).Scan(&seq)
	}
	e.j.wmu.Unlock()
	if err != nil {
		b.Fatal(err)
	}
	sealed := make([]byte, 1500) // the sealed size of smallFile's block
	rows := func(tx *sql.Tx, i int) error {
		ino := seq + 1 + int64(i)
		now := nowNS()
		id := sha256.Sum256(binary.BigEndian.AppendUint64(nil, uint64(ino))) // random, as block ids are
		binary.BigEndian.PutUint64(sealed, uint64(ino))
		for _, s := range []struct {
			q    string
			args []any
		}{
			{`UPDATE inodes SET mtime = ?1, ctime = ?1 WHERE ino = ?2`, []any{now, RootIno}},
			{`INSERT INTO inodes(ino, mode, uid, gid, nlink, atime, mtime, ctime) VALUES(?, ?, 0, 0, 1, ?, ?, ?)`, []any{ino, 0o100644, now, now, now}},
			{`INSERT INTO entries(parent, name, ino) VALUES(?, ?, ?)`, []any{RootIno, fmt.Sprintf("g%07d", ino), ino}},
			{`INSERT INTO blocks(id, plain_len, sealed_len, refcount, state, prio, seq) VALUES(?, ?, ?, 1, ?, 0, ?)`, []any{id[:], len(data), len(sealed), blockStaged, ino << 20}},
			{`INSERT INTO staged(id, sealed) VALUES(?, ?)`, []any{id[:], sealed}},
			{`INSERT INTO blockmap(ino, idx, block) VALUES(?, 0, ?)`, []any{ino, id[:]}},
			{`UPDATE inodes SET size = ?1, used = ?1, mtime = ?2, ctime = ?2 WHERE ino = ?3`, []any{len(data), now, ino}},
		} {
			if _, err := e.j.c.texec(bg, tx, s.q, s.args...); err != nil {
				return err
			}
		}
		return nil
	}
	t0 := cpuTime()
	b.ResetTimer()
	for range b.N {
		for i := 0; i < files; i += batch {
			err := e.j.c.tx(bg, func(tx *sql.Tx) error {
				for k := i; k < i+batch; k++ {
					if err := rows(tx, k); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
		}
	}
	b.StopTimer()
	cpu := cpuTime() - t0
	_, total := walFrames(b, e.opts.Dir)
	b.ReportMetric(float64(cpu.Microseconds())/float64(files*b.N), "cpu-µs/file")
	b.ReportMetric(float64(total)/float64(files*b.N), "frames/file")
}

// BenchmarkSetAttrDir is cp -a's last word on each directory it copies:
// a SetAttr of its times, by the time its reply waits for. The change is
// a record in the unlink log (dirattr.go), applied later by the unlinker
// on the other core: the figure leaves the apply out.
func BenchmarkSetAttrDir(b *testing.B) {
	e := newEnv(b, nil)
	j := e.j
	var dirs []Ino
	for i := range 256 {
		dirs = append(dirs, must[Attr](b)(j.Mkdir(bg, RootIno, fmt.Sprintf("d%d", i), 0o755, 0, 0)).Ino)
	}
	mt := time.Unix(1_700_000_000, 0)
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		t := mt.Add(time.Duration(i))
		a, err := j.SetAttr(bg, dirs[i%len(dirs)], SetAttr{Atime: &t, Mtime: &t})
		if err != nil {
			b.Fatal(err)
		}
		if !a.Mtime.Equal(t) {
			b.Fatalf("SetAttr replied mtime %v, want %v", a.Mtime, t)
		}
	}
}

// BenchmarkDedupStaged is the cut of a block the journal holds staged,
// not yet uploaded (a copy made before the upload), as a close's flush
// makes it: hash, look-up, and the check of the staged copy
// (stagedIntact) before the reference to it is taken; and that check
// alone. small: a 5 KB block staged in the database; big: a 4 MiB block
// in a staging file.
//
//	go test -run '^$' -bench DedupStaged ./journal/
func BenchmarkDedupStaged(b *testing.B) {
	for _, size := range []int{5 << 10, 4 << 20} {
		e := newEnv(b, func(o *Options) { o.BlockSize = 4 << 20; o.IdleFlush = time.Hour; o.SegmentSize = 1 << 40 })
		waitKnown(b, e.j) // else the filter may not know the block
		data := make([]byte, size)
		fillRand(9, data)
		a, err := e.j.Mknod(bg, RootIno, "a", 0o100600, 0, 0, 0)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := e.j.WriteAt(bg, a.Ino, data, 0); err != nil {
			b.Fatal(err)
		}
		if err := e.j.Fsync(bg, a.Ino); err != nil {
			b.Fatal(err)
		}
		name := map[int]string{5 << 10: "small", 4 << 20: "big"}[size]
		b.Run(name+"/cut", func(b *testing.B) {
			for b.Loop() {
				c, err := e.j.fl.cutPlain(bg, 0, slices.Clone(data), false, false)
				if err != nil || c.plain == nil {
					b.Fatalf("cut %+v, %v: not deduplicated", c.id, err)
				}
			}
		})
		b.Run(name+"/check", func(b *testing.B) {
			id := e.j.seal.BlockID(data)
			row, err := e.j.fl.blockRow(bg, id)
			if err != nil || row.state != blockStaged {
				b.Fatalf("block %+v, %v: want staged", row, err)
			}
			for b.Loop() {
				if err := e.j.fl.stagedIntact(bg, id, row); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkApplyCloses is the unlinker's apply of what cp -a logs per
// small file, a create and a close, in batches of unlinkerBatch records:
// the time the apply holds wmu, per file.
//
//	go test -run '^$' -bench ApplyCloses -count 5 ./journal/
func BenchmarkApplyCloses(b *testing.B) {
	e := newEnv(b, func(o *Options) { o.BlockSize = 4 << 20; noTimers(o) })
	data := bytes.Repeat([]byte("package main // some source text\n"), 150) // ~5 KB
	const files = unlinkerBatch / 2                                         // a create and a close each
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		for k := range files {
			n := i*files + k
			data[0], data[1], data[2] = byte(n), byte(n>>8), byte(n>>16) // distinct blocks
			writeClosed(b, e.j, fmt.Sprintf("f%07d", n), data)
		}
		e.j.ul.sealAhead() // as the unlinker does before it takes wmu
		b.StartTimer()
		applyUnlinks(b, e.j)
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*files), "µs/file")
}
