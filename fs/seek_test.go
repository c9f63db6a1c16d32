package fs

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// seekRegions walks fd with SEEK_DATA and SEEK_HOLE from 0 and checks
// what cp relies on against want, the file's bytes: every reported hole
// reads as zeros in want (so the data regions cover every non-zero
// byte), the regions are in order and inside the file, and both whences
// answer ENXIO at the end of the file. It returns the data regions.
func seekRegions(t *testing.T, fd int, want []byte) [][2]int64 {
	t.Helper()
	size := int64(len(want))
	var data [][2]int64
	off := int64(0)
	again := 0 // SEEK_HOLE answers at the data SEEK_DATA found, in a row
	for off < size {
		d, err := unix.Seek(fd, off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			mustZero(t, want, off, size, "after the last data (SEEK_DATA from %d: ENXIO)", off)
			break
		}
		if err != nil || d < off || d >= size {
			t.Fatalf("SEEK_DATA from %d of a %d-byte file: %d, %v", off, size, d, err)
		}
		mustZero(t, want, off, d, "in the hole SEEK_DATA from %d skips", off)
		h, err := unix.Seek(fd, d, unix.SEEK_HOLE)
		if err == nil && h == d && again < 3 {
			// The region became a hole between the two calls (a block of
			// zeros the journal's background apply of a close turned into
			// one): as for any file that changes under lseek, ask again.
			again++
			off = d
			continue
		}
		if err != nil || h <= d || h > size {
			t.Fatalf("SEEK_HOLE from data at %d of a %d-byte file: %d, %v", d, size, h, err)
		}
		again = 0
		data = append(data, [2]int64{d, h})
		off = h
	}
	for _, wh := range []int{unix.SEEK_DATA, unix.SEEK_HOLE} {
		if o, err := unix.Seek(fd, size, wh); !errors.Is(err, unix.ENXIO) {
			t.Fatalf("lseek(size %d, whence %d) = %d, %v; want ENXIO", size, wh, o, err)
		}
	}
	return data
}

// mustZero fails unless want[lo:hi] is all zeros: a reported hole over a
// non-zero byte is a byte every sparse copy loses.
func mustZero(t *testing.T, want []byte, lo, hi int64, where string, args ...any) {
	t.Helper()
	if i := bytes.IndexFunc(want[lo:hi], func(r rune) bool { return r != 0 }); i >= 0 {
		t.Fatalf("byte %d (0x%02x) is non-zero but lies "+where+" [%d, %d)",
			append(append([]any{lo + int64(i), want[lo+int64(i)]}, args...), lo, hi)...)
	}
}

// seekFrom checks SEEK_DATA and SEEK_HOLE from random offsets, where the
// walk from 0 never starts.
func seekFrom(t *testing.T, rng *rand.Rand, fd int, want []byte) {
	t.Helper()
	size := int64(len(want))
	if size == 0 {
		return
	}
	for range 8 {
		off := rng.Int64N(size)
		d, err := unix.Seek(fd, off, unix.SEEK_DATA)
		switch {
		case errors.Is(err, unix.ENXIO):
			mustZero(t, want, off, size, "after SEEK_DATA from %d said ENXIO", off)
		case err != nil || d < off || d >= size:
			t.Fatalf("SEEK_DATA from %d of a %d-byte file: %d, %v", off, size, d, err)
		default:
			mustZero(t, want, off, d, "in the hole SEEK_DATA from %d skips", off)
		}
		h, err := unix.Seek(fd, off, unix.SEEK_HOLE)
		if err != nil || h < off || h > size {
			t.Fatalf("SEEK_HOLE from %d of a %d-byte file: %d, %v", off, size, h, err)
		}
	}
}

// seekExact checks, after an fsync, that every whole block of zeros is a
// hole and every other block data: the journal stores a block of zeros
// as no block, so the answer is exact then. (With the write-back cache
// the kernel answers for us: all data.)
func seekExact(t *testing.T, fd int, want []byte, bs int64) {
	t.Helper()
	size := int64(len(want))
	for start := int64(0); start+bs <= size; start += bs {
		h, err := unix.Seek(fd, start, unix.SEEK_HOLE)
		if err != nil {
			t.Fatalf("SEEK_HOLE from %d: %v", start, err)
		}
		zero := !bytes.ContainsFunc(want[start:start+bs], func(r rune) bool { return r != 0 })
		switch {
		case writebackTests:
			if h != size {
				t.Fatalf("SEEK_HOLE from %d = %d with the write-back cache; want the end, %d", start, h, size)
			}
		case zero && h != start:
			t.Fatalf("block at %d is all zeros and flushed, but SEEK_HOLE from it says %d", start, h)
		case !zero && h == start:
			t.Fatalf("block at %d holds data, but SEEK_HOLE from it says it is a hole", start)
		}
	}
}

// sameBytes fails unless the file at path holds want.
func sameBytes(t *testing.T, path string, want []byte, what string) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		i := 0
		for i < len(got) && i < len(want) && got[i] == want[i] {
			i++
		}
		t.Fatalf("%s: %d bytes, want %d; first difference at %d", what, len(got), len(want), i)
	}
}

// cpSparse copies src to dst with cp --sparse=always, which skips what
// SEEK_HOLE reports, and checks dst holds want.
func cpSparse(t *testing.T, src, dst string, want []byte) {
	t.Helper()
	os.Remove(dst)
	if out, err := exec.Command("cp", "--sparse=always", src, dst).CombinedOutput(); err != nil {
		t.Fatalf("cp --sparse=always: %v: %s", err, out)
	}
	sameBytes(t, dst, want, "cp --sparse=always of "+filepath.Base(src))
}

// TestSeekDataHoleModel writes a file at random on a real mount (sparse
// writes, some fsync'd and some still dirty in the journal, writes of
// zeros over data, truncates that shrink and grow, sequential runs that
// write-behind cuts while they go) and after every step checks
// SEEK_DATA/SEEK_HOLE against the file's bytes: no non-zero byte in a
// reported hole. cp --sparse=always of it, out of the mount and into it,
// must give the same bytes.
func TestSeekDataHoleModel(t *testing.T) {
	if _, err := exec.LookPath("cp"); err != nil {
		t.Skip("no cp")
	}
	s := newStack(t, stackOptions{})
	bs := int64(s.o.BlockSize)
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("MESHDRIVE_SEEK_SEED"); v != "" { // to replay a failure
		var err error
		if seed, err = strconv.ParseUint(v, 10, 64); err != nil {
			t.Fatalf("MESHDRIVE_SEEK_SEED=%q: %v", v, err)
		}
	}
	t.Logf("seed %d (MESHDRIVE_SEEK_SEED replays it)", seed)
	rng := rand.New(rand.NewPCG(seed, seed>>1))
	const span = 40 // blocks the writes land in
	path := filepath.Join(s.mnt, "sparse")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { f.Close() }()
	var want []byte
	write := func(p []byte, off int64) {
		if _, err := f.WriteAt(p, off); err != nil {
			t.Fatal(err)
		}
		if end := off + int64(len(p)); end > int64(len(want)) {
			want = append(want, make([]byte, end-int64(len(want)))...)
		}
		copy(want[off:], p)
	}
	random := func(n int64) []byte {
		p := make([]byte, n)
		for i := range p {
			p[i] = byte(rng.UintN(255) + 1)
		}
		return p
	}
	holes := 0 // holes seen inside the file, so the test cannot pass with all-data answers
	for step := range 300 {
		op := rng.IntN(10)
		switch op {
		case 0, 1: // a random write, up to two blocks
			write(random(1+rng.Int64N(2*bs)), rng.Int64N(span*bs))
		case 2: // a few bytes far apart
			write(random(1+rng.Int64N(16)), rng.Int64N(span*bs))
		case 3: // whole blocks of zeros over whatever is there
			write(make([]byte, (1+rng.Int64N(3))*bs), rng.Int64N(span)*bs)
		case 4: // zeros, not aligned
			write(make([]byte, 1+rng.Int64N(2*bs)), rng.Int64N(span*bs))
		case 5: // truncate: shrink or grow
			size := rng.Int64N(span * bs)
			if err := f.Truncate(size); err != nil {
				t.Fatal(err)
			}
			if size < int64(len(want)) {
				want = want[:size]
			} else {
				want = append(want, make([]byte, size-int64(len(want)))...)
			}
		case 6: // a sequential run, in pieces (write-behind cuts behind it)
			off := rng.Int64N(span/2) * bs
			for range 4 + rng.IntN(6) {
				n := bs/2 + rng.Int64N(bs)
				write(random(n), off)
				off += n
			}
		case 7:
			if err := f.Sync(); err != nil {
				t.Fatal(err)
			}
		case 8: // close (the journal's flush) and open again
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			if f, err = os.OpenFile(path, os.O_RDWR, 0); err != nil {
				t.Fatal(err)
			}
		case 9:
			if step%3 == 0 {
				cpSparse(t, path, filepath.Join(s.base, "copy"), want)
				cpSparse(t, path, filepath.Join(s.mnt, "copy"), want)
			}
		}
		// While a writer is open the whole file is data (a shared
		// mmap's bytes may be in the kernel's page cache only).
		if d := seekRegions(t, int(f.Fd()), want); len(want) > 0 && (len(d) != 1 || d[0] != [2]int64{0, int64(len(want))}) {
			t.Errorf("with a writer open: data regions %v, want the whole file", d)
		}
		// With none, the journal's answer: close (the journal's flush,
		// then the handle's release), seek on a read-only descriptor,
		// open again.
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		r := waitReleased(t, path, want, bs)
		fd := int(r.Fd())
		data := seekRegions(t, fd, want)
		seekFrom(t, rng, fd, want)
		if op == 7 {
			seekExact(t, fd, want, bs)
		}
		r.Close()
		if f, err = os.OpenFile(path, os.O_RDWR, 0); err != nil {
			t.Fatal(err)
		}
		if len(data) != 1 || data[0] != [2]int64{0, int64(len(want))} {
			holes++
		}
		if t.Failed() {
			t.Fatalf("step %d (op %d), seed %d", step, op, seed)
		}
	}
	sameBytes(t, path, want, "the file read back")
	cpSparse(t, path, filepath.Join(s.base, "copy"), want)
	if holes == 0 && !writebackTests {
		t.Fatalf("300 steps of sparse writes and no hole reported (seed %d)", seed)
	}
}

// TestSeekSparseCopyReadsLittle copies a 1 GiB file with two blocks of
// data out of the mount with cp --sparse=always: cp reads only the data
// regions, a few READs, not the thousands reading its zeros takes.
func TestSeekSparseCopyReadsLittle(t *testing.T) {
	var reads atomic.Int64
	s := newStack(t, stackOptions{ObserveOp: func(op string, d time.Duration, failed bool) {
		if op == "read" {
			reads.Add(1)
		}
	}})
	bs := int64(s.o.BlockSize)
	const size = 1 << 30
	// ref is the same file on local disk, for cmp.
	ref := filepath.Join(t.TempDir(), "ref")
	path := filepath.Join(s.mnt, "big")
	for _, name := range []string{path, ref} {
		f, err := os.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		for _, off := range []int64{bs, 700 << 20} {
			if _, err := f.WriteAt(bytes.Repeat([]byte{0x5a}, int(bs)), off); err != nil {
				t.Fatal(err)
			}
		}
		if err := f.Truncate(size); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
	s.remount() // a new mount has none of the file's pages cached: cp's reads reach us
	dst := filepath.Join(t.TempDir(), "big")
	reads.Store(0)
	t0 := time.Now()
	if out, err := exec.Command("cp", "--sparse=always", path, dst).CombinedOutput(); err != nil {
		t.Fatalf("cp --sparse=always: %v: %s", err, out)
	}
	n := reads.Load()
	t.Logf("cp --sparse=always of a 1 GiB file with 2 data blocks: %v, %d READs", time.Since(t0), n)
	if out, err := exec.Command("cmp", ref, dst).CombinedOutput(); err != nil {
		t.Fatalf("cmp of the copy with the file written: %v: %s", err, out)
	}
	if !writebackTests && n > 64 {
		t.Fatalf("cp read the file in %d READs; with SEEK_DATA/SEEK_HOLE it needs a few", n)
	}
}

// TestSeekSnapshotFile: a snapshot's files answer SEEK_DATA/SEEK_HOLE from
// the snapshot's own block map (meshdrive snapshot restore copies them
// with it), unmoved by writes to the live file after the snapshot.
func TestSeekSnapshotFile(t *testing.T) {
	s := newStack(t, stackOptions{})
	bs := int64(s.o.BlockSize)
	want := make([]byte, 20*bs)
	copy(want[2*bs:], bytes.Repeat([]byte{1}, int(bs)))
	copy(want[10*bs+5:], "data")
	live := filepath.Join(s.mnt, "f")
	if err := os.WriteFile(live, want, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := s.drive.CreateSnapshot(context.Background(), "s"); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(live, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("after"), 15*bs); err != nil { // dirty, in a hole of the snapshot's
		t.Fatal(err)
	}
	defer f.Close()
	sf, err := os.Open(filepath.Join(s.mnt, snapshotsName, "s", "f"))
	if err != nil {
		t.Fatal(err)
	}
	defer sf.Close()
	data := seekRegions(t, int(sf.Fd()), want)
	if !writebackTests && len(data) != 2 {
		t.Errorf("snapshot file's data regions %v; want its two data blocks", data)
	}
	cpSparse(t, sf.Name(), filepath.Join(s.base, "copy"), want)
}

// waitReleased opens path read-only once the kernel has released the
// last writable handle (release comes after close returns) and the
// journal has applied the close: when want has a block of zeros, the
// journal then reports a hole before the end, which the whole-file
// answer given while a writer is open (or dirty data) does not. The file
// is closed at the test's end too (before the unmount), in case a
// t.Fatal comes before the caller's Close.
func waitReleased(t *testing.T, path string, want []byte, bs int64) *os.File {
	t.Helper()
	size := int64(len(want))
	zeroBlock := false
	for lo := int64(0); lo < size && !zeroBlock; lo += bs {
		zeroBlock = !slices.ContainsFunc(want[lo:min(lo+bs, size)], func(b byte) bool { return b != 0 })
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		r, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		done := !zeroBlock
		if !done {
			h, err := unix.Seek(int(r.Fd()), 0, unix.SEEK_HOLE)
			done = err == nil && h < size
		}
		if done {
			t.Cleanup(func() { r.Close() }) // a second Close does nothing
			return r
		}
		r.Close()
		if time.Now().After(deadline) {
			t.Fatalf("10 s after the last writer's close, SEEK_HOLE still finds no hole in a file with a block of zeros")
		}
	}
}

// TestSeekMmapDirtyPages: bytes written into a hole through a shared
// writable mmap stay in the kernel's page cache until msync, munmap or
// writeback, and the kernel does not write them back before it asks the
// drive for SEEK_HOLE. While the mapping (and so a writable handle) is
// there, the drive answers the whole file as data: a hole reported over
// those bytes would be skipped by cp and lost in the copy. Once the
// mapping and its handle are gone, the answer is exact again.
func TestSeekMmapDirtyPages(t *testing.T) {
	s := newStack(t, stackOptions{})
	bs := int64(s.o.BlockSize)
	path := filepath.Join(s.mnt, "mapped")
	want := make([]byte, 3*bs)
	for i := range bs {
		want[i] = byte(i%251 + 1)
	}
	if err := os.WriteFile(path, want, 0o644); err != nil {
		t.Fatal(err)
	}
	waitReleased(t, path, want, bs).Close() // the close applied: the journal knows the holes
	// Every file and mapping below is closed by a cleanup too, which
	// runs before the unmount (cleanups run last first): one a t.Fatal
	// left open would make the unmount fail.
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() }) // a second Close does nothing
	m, err := unix.Mmap(int(f.Fd()), 0, int(3*bs), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	mapped := true
	t.Cleanup(func() {
		if mapped {
			unix.Munmap(m)
		}
	})
	f.Close() // the mapping keeps the handle open
	const note = "written through the mapping, not synced"
	copy(m[2*bs+100:], note)
	copy(want[2*bs+100:], note)
	r, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	seekRegions(t, int(r.Fd()), want)
	r.Close()
	cpSparse(t, path, filepath.Join(s.base, "copy"), want)
	mapped = false
	if err := unix.Munmap(m); err != nil { // the kernel writes the pages back
		t.Fatal(err)
	}
	// The release follows the unmap; then the exact answer: the middle
	// block is a hole.
	after := waitReleased(t, path, want, bs)
	data := seekRegions(t, int(after.Fd()), want)
	after.Close()
	if len(data) != 2 {
		t.Fatalf("data regions %v after the unmap, want the first and the last block", data)
	}
}
