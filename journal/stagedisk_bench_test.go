package journal

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"
)

// BenchmarkStagingDisk measures the disk under the staging directory in
// the ways the write path can make a 4 MiB sealed block durable, from one
// goroutine and from two (write-behind runs two):
//
//   - file-per-block: what write-behind does now (stageDirect): a new
//     file written with O_DIRECT and fsync'd (writeDirect), then the
//     staging directory fsync'd (syncDir).
//   - file-per-block-nosync: the same without either fsync. Not safe: a
//     ceiling, and what the disk takes before its cache is flushed.
//   - ring-fdatasync: an O_DIRECT write into a slot of one file whose
//     blocks were written before (no allocation, no size change), then
//     fdatasync: the shape of an append-only staging log that reuses its
//     space.
//   - one-file-buffered (one goroutine): 4 MiB appended to one file
//     through the page cache and one fsync at the end, what the plain
//     daemon B of `make bench` makes the disk do for `dd conv=fsync`.
//
// Each op is one block; MB/s is what the pattern sustains. TMPDIR picks
// the disk:
//
//	TMPDIR=/path/on/the/disk go test -run '^$' -bench StagingDisk -benchtime 256x ./journal/
func BenchmarkStagingDisk(b *testing.B) {
	const bs = 4 << 20
	b.Run("one-file-buffered/w1", func(b *testing.B) {
		f, err := os.Create(filepath.Join(b.TempDir(), "file"))
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		stageBench(b, 1, bs, func(i int, buf []byte) error {
			if _, err := f.WriteAt(buf, int64(i)*bs); err != nil {
				return err
			}
			if i == b.N-1 {
				return f.Sync()
			}
			return nil
		})
	})
	for _, workers := range []int{1, 2} {
		b.Run(fmt.Sprintf("file-per-block/w%d", workers), func(b *testing.B) {
			dir := b.TempDir()
			stageBench(b, workers, bs, func(i int, buf []byte) error {
				if _, err := writeDirect(filepath.Join(dir, fmt.Sprint(i)), buf); err != nil {
					return err
				}
				return syncDir(dir)
			})
		})
		b.Run(fmt.Sprintf("file-per-block-nosync/w%d", workers), func(b *testing.B) {
			dir := b.TempDir()
			stageBench(b, workers, bs, func(i int, buf []byte) error {
				f, err := os.OpenFile(filepath.Join(dir, fmt.Sprint(i)), os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_DIRECT, 0o600)
				if err != nil {
					return err
				}
				_, err = f.Write(buf)
				if cerr := f.Close(); err == nil {
					err = cerr
				}
				return err
			})
		})
		b.Run(fmt.Sprintf("ring-fdatasync/w%d", workers), func(b *testing.B) {
			const slots = 64
			f, err := os.OpenFile(filepath.Join(b.TempDir(), "ring"), os.O_RDWR|os.O_CREATE|unix.O_DIRECT, 0o600)
			if err != nil {
				b.Fatal(err)
			}
			defer f.Close()
			zero := alignedSlice(bs)[:bs]
			for s := range slots {
				if _, err := f.WriteAt(zero, int64(s)*bs); err != nil {
					b.Fatal(err)
				}
			}
			if err := f.Sync(); err != nil {
				b.Fatal(err)
			}
			stageBench(b, workers, bs, func(i int, buf []byte) error {
				if _, err := f.WriteAt(buf, int64(i%slots)*bs); err != nil {
					return err
				}
				return unix.Fdatasync(int(f.Fd()))
			})
		})
	}
}

// stageBench runs stage for blocks 0 to b.N-1 from workers goroutines,
// each with an aligned buffer of bs bytes of its own.
func stageBench(b *testing.B, workers, bs int, stage func(i int, buf []byte) error) {
	b.SetBytes(int64(bs))
	bufs := make([][]byte, workers)
	for w := range bufs {
		bufs[w] = alignedSlice(bs)[:bs]
		for i := range bufs[w] {
			bufs[w][i] = byte(i*7 + w)
		}
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Value
	b.ResetTimer()
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(b.N) {
					return
				}
				if err := stage(int(i), bufs[w]); err != nil {
					failed.CompareAndSwap(nil, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	if err, _ := failed.Load().(error); err != nil {
		b.Fatal(err)
	}
}
