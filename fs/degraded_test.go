package fs

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/meshdrive/meshdrive/journal"
	"github.com/meshdrive/meshdrive/remote/faulty"
)

// degradedFiles writes a mix of files and returns their contents.
func degradedFiles(t *testing.T, mnt string) map[string][]byte {
	rng := rand.New(rand.NewPCG(1, 2))
	files := map[string][]byte{}
	for i, size := range []int{0, 1, 100, 64<<10 - 1, 64 << 10, 64<<10 + 1, 300 << 10, 2<<20 + 17} {
		b := make([]byte, size)
		for k := range b {
			b[k] = byte(rng.Uint32())
		}
		files[fmt.Sprintf("f%d", i)] = b
	}
	// A sparse file and a compressible one.
	sparse := make([]byte, 3<<20)
	copy(sparse[2<<20:], "island in the middle of nothing")
	files["sparse"] = sparse
	files["zeros-and-text"] = append(bytes.Repeat([]byte("meshdrive "), 50000), make([]byte, 70000)...)
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(mnt, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return files
}

func checkFiles(t *testing.T, mnt string, files map[string][]byte) {
	t.Helper()
	for name, want := range files {
		got, err := os.ReadFile(filepath.Join(mnt, name))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: %d bytes read, %d written, contents differ", name, len(got), len(want))
		}
	}
}

// TestReadsFromGridWithTwoNodesDown: once files are grid-durable, a
// cleared cache (and then a fresh cache directory) with 2 of 6 nodes down
// still reads every byte, and the negative control notices corruption.
func TestReadsFromGridWithTwoNodesDown(t *testing.T) {
	s := newStack(t, stackOptions{HTTP: true})
	files := degradedFiles(t, s.mnt)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := s.drive.SyncGrid(ctx); err != nil {
		t.Fatal(err)
	}

	// Remount so the kernel page cache is gone, drop the block cache,
	// and stop two nodes.
	s.remount()
	if err := s.drive.ClearCache(); err != nil {
		t.Fatal(err)
	}
	s.stores[1].down.Store(true)
	s.stores[4].down.Store(true)
	checkFiles(t, s.mnt, files)

	// A fresh cache directory, two other nodes down.
	s.close()
	if err := os.RemoveAll(filepath.Join(s.base, "data", "cache")); err != nil {
		t.Fatal(err)
	}
	s.stores[1].down.Store(false)
	s.stores[4].down.Store(false)
	s.stores[0].down.Store(true)
	s.stores[2].down.Store(true)
	s.open()
	s.mount()
	checkFiles(t, s.mnt, files)

	// Negative control: with every block read corrupted after the
	// integrity checks, the same comparison must see differences.
	s.close()
	o := s.driveOptions()
	o.WrapBlocks = func(r journal.BlockReader) journal.BlockReader { return faulty.CorruptBlocks(r, 1) }
	d, err := OpenDrive(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	s.drive = d
	s.mount()
	if err := d.ClearCache(); err != nil {
		t.Fatal(err)
	}
	bad := 0
	for name, want := range files {
		got, err := os.ReadFile(filepath.Join(s.mnt, name))
		if err != nil || !bytes.Equal(got, want) {
			bad++
		}
	}
	if bad == 0 {
		t.Errorf("CorruptBlocks(1) changed no file: the comparison above could not fail")
	}
}

// TestSequentialReadsShareReusedBlocks reads files sequentially through
// the mount, from several readers at once, with a memory cache of two
// blocks: the FUSE replies share the cache's plaintext (released when
// go-fuse has written them), and the cache reuses the buffers of evicted
// blocks, so a release too early would show up here as wrong bytes.
func TestSequentialReadsShareReusedBlocks(t *testing.T) {
	const bs = 256 << 10
	s := newStack(t, stackOptions{BlockSize: bs, CacheMem: 2 * bs})
	rng := rand.New(rand.NewPCG(3, 4))
	var sizes []int
	for range 4 {
		sizes = append(sizes, 8*bs+int(rng.IntN(bs)))
	}
	files := writeRandomFiles(t, s, rng, "seq", sizes)
	for round := range 4 {
		s.remount()
		errs := make(chan error, len(files))
		for name, want := range files {
			go func() {
				f, err := os.Open(filepath.Join(s.mnt, name))
				if err != nil {
					errs <- err
					return
				}
				defer f.Close()
				got := make([]byte, 0, len(want))
				buf := make([]byte, 128<<10)
				for {
					n, err := f.Read(buf)
					got = append(got, buf[:n]...)
					if err != nil || n == 0 {
						break
					}
				}
				if !bytes.Equal(got, want) {
					errs <- fmt.Errorf("round %d: %s: %d bytes read, %d written, contents differ", round, name, len(got), len(want))
					return
				}
				errs <- nil
			}()
		}
		for range files {
			if err := <-errs; err != nil {
				t.Error(err)
			}
		}
	}
}

// TestWrittenFilesReadLocallyAfterRemount: the blocks of files written on
// this drive stay in its disk cache once uploaded (the journal hands the
// staging files to the cache), and small blocks in the journal's database
// (journal.Options.KeepSmall), so after a remount the files read with
// every node down and not one fetch from the grid.
func TestWrittenFilesReadLocallyAfterRemount(t *testing.T) {
	s := newStack(t, stackOptions{})
	// Whole blocks of random bytes: each seals too big to be staged in
	// the journal's database, so each has a staging file to hand over.
	// And small ones (a small file, a big file's short last block),
	// staged in the database and kept there after their upload.
	files := writeRandomFiles(t, s, rand.New(rand.NewPCG(3, 4)), "w", []int{64 << 10, 320 << 10, 2 << 20, 5000, 128<<10 + 3000})
	s.remount() // the kernel's page cache and the memory tier are gone
	for _, st := range s.stores {
		st.down.Store(true)
	}
	c0 := s.drive.CacheStats()
	checkFiles(t, s.mnt, files)
	c1 := s.drive.CacheStats()
	if f := (c1.Fetches - c0.Fetches) + (c1.FrameFetches - c0.FrameFetches); f != 0 || c1.DiskHits == c0.DiskHits {
		t.Errorf("reading the written files after a remount: %d grid fetches and %d disk-tier hits, want 0 and some",
			f, c1.DiskHits-c0.DiskHits)
	}
	// The two small blocks come from the journal's kept rows, which the
	// cache does not see: counted beside its hits.
	if k := c1.KeptReads - c0.KeptReads; k < 2 || c1.StagedReads != c0.StagedReads {
		t.Errorf("reading the written files after a remount: %d reads of kept small blocks and %d of staged ones, want 2 or more and 0",
			k, c1.StagedReads-c0.StagedReads)
	}
}

// writeRandomFiles writes files of random bytes of the given sizes (named
// prefix0, prefix1, ...) through s's mount, waits until they are
// grid-durable and returns their contents.
func writeRandomFiles(t *testing.T, s *stack, rng *rand.Rand, prefix string, sizes []int) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	for i, size := range sizes {
		b := make([]byte, size)
		for k := range b {
			b[k] = byte(rng.Uint32())
		}
		name := fmt.Sprintf("%s%d", prefix, i)
		files[name] = b
		if err := os.WriteFile(filepath.Join(s.mnt, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := s.drive.SyncGrid(ctx); err != nil {
		t.Fatal(err)
	}
	return files
}
