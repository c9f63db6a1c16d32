package fs

import (
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkSmallWrites is 4 KiB writes through a real mount of the real
// stack, in place within a 64 MiB file: what a database or a mail store
// does. Each write is a FUSE round trip into the journal; before the
// drive took on clearing set-ID bits (killpriv.go) each also cost the
// kernel's GETXATTR of security.capability.
func BenchmarkSmallWrites(b *testing.B) {
	s := newStack(b, stackOptions{})
	f, err := os.Create(filepath.Join(s.mnt, "f"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 4096)
	b.SetBytes(int64(len(buf)))
	for i := 0; b.Loop(); i++ {
		if _, err := f.WriteAt(buf, int64(i%16384)*4096); err != nil {
			b.Fatal(err)
		}
	}
}
