package fs

import (
	"runtime"
	"testing"
	"time"
	"unsafe"

	"github.com/meshdrive/meshdrive/journal"
)

func TestGoMemoryLimit(t *testing.T) {
	const mib = 1 << 20
	for _, c := range []struct {
		name                      string
		target, other, live, want int64
	}{
		{"what the rest leaves", 128 * mib, 40 * mib, 30 * mib, 88 * mib},
		{"nothing outside Go", 128 * mib, 0, 30 * mib, 128 * mib},
		{"negative other counts as none", 128 * mib, -5 * mib, 30 * mib, 128 * mib},
		{"live heap too large: an eighth above it", 128 * mib, 40 * mib, 96 * mib, 116 * mib},
		{"live heap larger than target", 128 * mib, 40 * mib, 160 * mib, 188 * mib},
		{"others fill the target", 128 * mib, 200 * mib, 0, 8 * mib},
	} {
		if got := goMemoryLimit(c.target, c.other, c.live); got != c.want {
			t.Errorf("%s: goMemoryLimit(%d, %d, %d) = %d MiB, want %d MiB", c.name, c.target/mib, c.other/mib, c.live/mib, got/mib, c.want/mib)
		}
	}
}

func TestOverLive(t *testing.T) {
	const mib = 1 << 20
	for _, c := range []struct {
		name                      string
		target, other, live, want int64
	}{
		{"fits", 120 * mib, 25 * mib, 60 * mib, 0},
		{"fits exactly", 120 * mib, 25 * mib, 77 * mib, 0},
		{"over: what brings the floor to the target", 120 * mib, 25 * mib, 80 * mib, 24 * mib / 9},
		{"negative other counts as none", 120 * mib, -5 * mib, 80 * mib, 0},
	} {
		got := overLive(c.target, c.other, c.live)
		if got != c.want {
			t.Errorf("%s: overLive(%d, %d, %d) = %d, want %d", c.name, c.target/mib, c.other/mib, c.live/mib, got, c.want)
		}
		if got > 0 {
			if lim := goMemoryLimit(c.target, c.other, c.live-got); lim > c.target-c.other+1 {
				t.Errorf("%s: freeing %d leaves the limit at %d, over %d", c.name, got, lim, c.target-c.other)
			}
		}
	}
}

func TestResidentBytes(t *testing.T) {
	rss, ok := residentBytes()
	if runtime.GOOS != "linux" {
		t.Skip("no /proc/self/statm")
	}
	if !ok || rss < 1<<20 || rss > 1<<40 {
		t.Fatalf("residentBytes() = %d, %v; want a plausible resident size", rss, ok)
	}
}

func TestPackedAttr(t *testing.T) {
	for _, a := range []journal.Attr{
		{Ino: 7, Mode: 0o100644, Nlink: 2, Uid: 1000, Gid: 100, Rdev: 3, Size: 1 << 40, Blocks: 9,
			Atime: time.Unix(1, 2), Mtime: time.Unix(1700000000, 999999999), Ctime: time.Unix(-5, 0)},
		{Ino: 1},
	} {
		got := packAttr(a).attr(a.Ino)
		if got.Ino != a.Ino || got.Mode != a.Mode || got.Nlink != a.Nlink || got.Uid != a.Uid || got.Gid != a.Gid ||
			got.Rdev != a.Rdev || got.Size != a.Size || got.Blocks != a.Blocks ||
			!got.Atime.Equal(a.Atime) || !got.Mtime.Equal(a.Mtime) || !got.Ctime.Equal(a.Ctime) ||
			got.Atime.IsZero() != a.Atime.IsZero() {
			t.Errorf("packAttr(%+v).attr() = %+v", a, got)
		}
	}
}

// TestNodeSize keeps a node within its size class: 100,000 nodes of the
// next class (224 bytes) are 1.6 MB more live heap, and the live heap sets
// the peak RSS of a big directory's create (docs/BENCHMARKS.md).
func TestNodeSize(t *testing.T) {
	if sz := unsafe.Sizeof(node{}); sz > nodeSize {
		t.Fatalf("a node is %d bytes, over %d (the size class that 100,000 of them are sized for)", sz, nodeSize)
	}
}
