package journal

import (
	"bytes"
	"fmt"
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

// BenchmarkSmallFile is what cp -a does to the journal per small file:
// create, one write, the kernel's time flush and utimensat (SetAttr of
// times), chmod, and the flush of close.
func BenchmarkSmallFile(b *testing.B) {
	e := newEnv(b, func(o *Options) { o.BlockSize = 4 << 20; o.IdleFlush = time.Hour })
	data := bytes.Repeat([]byte("package main // some source text\n"), 150) // ~5 KB
	mt := time.Unix(1700000000, 0)
	mode := uint32(0o644)
	b.ResetTimer()
	for i := range b.N {
		a, err := e.j.Mknod(bg, RootIno, fmt.Sprintf("f%07d", i), 0o100600, 0, 0, 0)
		if err != nil {
			b.Fatal(err)
		}
		data[0] = byte(i) // distinct blocks
		data[1] = byte(i >> 8)
		data[2] = byte(i >> 16)
		if _, err := e.j.WriteAt(bg, a.Ino, data, 0); err != nil {
			b.Fatal(err)
		}
		now := time.Now()
		if _, err := e.j.SetAttr(bg, a.Ino, SetAttr{Mtime: &now}); err != nil {
			b.Fatal(err)
		}
		if _, err := e.j.SetAttr(bg, a.Ino, SetAttr{Atime: &mt, Mtime: &mt}); err != nil {
			b.Fatal(err)
		}
		if _, err := e.j.SetAttr(bg, a.Ino, SetAttr{Mode: &mode}); err != nil {
			b.Fatal(err)
		}
		if err := e.j.Flush(bg, a.Ino); err != nil {
			b.Fatal(err)
		}
	}
}
