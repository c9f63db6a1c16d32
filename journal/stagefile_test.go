package journal

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/meshdrive/meshdrive/remote"
)

// TestWriteDirect writes sealed buffers of lengths around the alignment
// with O_DIRECT and reads back exactly their bytes: the padding is cut
// off and never read.
func TestWriteDirect(t *testing.T) {
	dir := t.TempDir()
	var pb []byte
	for _, n := range []int{1, directAlign - 1, directAlign, directAlign + 1, 100_003} {
		b := sealBuf(&pb, n)
		for i := range n {
			b = append(b, byte(i*7+n))
		}
		if !canWriteDirect(b) {
			t.Fatalf("%d bytes: sealBuf's buffer cannot be written with O_DIRECT (cap %d)", n, cap(b))
		}
		b[:cap(b)][n:cap(b)][0] = 0xff // stale padding must not reach the file
		name := filepath.Join(dir, "f")
		err := writeDirect(name, b)
		if errors.Is(err, errNoDirect) {
			t.Skipf("the file system of %s refuses O_DIRECT", dir)
		}
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, b) {
			t.Fatalf("%d bytes written, read back %d, equal prefix %v", n, len(got), bytes.HasPrefix(got, b))
		}
		if err := writeDirect(name, b); err == nil || errors.Is(err, errNoDirect) {
			t.Fatalf("writeDirect over an existing file: %v, want an error (O_EXCL)", err)
		}
		os.Remove(name)
	}
	if canWriteDirect(pb[1:2]) {
		t.Fatal("an unaligned slice passed canWriteDirect")
	}
}

// TestWriteTempPaths stages through both paths: O_DIRECT (an aligned seal
// buffer) and the page cache (unaligned bytes, or a journal that found its
// staging directory refuses O_DIRECT), each file holding exactly the bytes.
func TestWriteTempPaths(t *testing.T) {
	e := newEnv(t, nil)
	var pb []byte
	aligned := append(sealBuf(&pb, 5000), bytes.Repeat([]byte("sealed"), 900)...)
	unaligned := append([]byte(nil), aligned[1:]...)
	for _, tc := range []struct {
		name     string
		sealed   []byte
		buffered bool
	}{
		{"direct", aligned, false},
		{"unaligned", unaligned, false},
		{"buffered", aligned, true},
	} {
		e.j.bufferedStage.Store(tc.buffered)
		name, err := e.j.fl.writeTemp(remote.BlockID{1, byte(len(tc.name))}, tc.sealed)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		got, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, tc.sealed) {
			t.Fatalf("%s: staged %d bytes, read back %d", tc.name, len(tc.sealed), len(got))
		}
		os.Remove(name)
	}
}
