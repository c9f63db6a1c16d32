package journal

import (
	"bytes"
	"database/sql"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
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
	const walHeader, frameHeader = 32, 24
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
