package fs

import (
	"bytes"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"syscall"
	"testing"
	"time"
)

var long = flag.Bool("long", false, "run the long variants (fsx steps, whole Go tree for the tools test)")

// fsx is a model check in the spirit of fsx: a seeded random sequence of
// operations is applied to the drive and to a plain directory on local
// disk, and the two are compared after every step. MESHDRIVE_FSX_SEED
// replays a failing run.
type fsx struct {
	t          *testing.T
	s          *stack
	rng        *rand.Rand
	mnt, local string
	names      []string // every path an operation may use, relative
	log        []string // the last operations, for the failure report
}

const (
	fsxMaxSize   = 1 << 20 // ordinary writes stay under this
	fsxSparseMax = 6 << 20 // sparse writes and extends reach this far
)

func TestFsx(t *testing.T) {
	steps := 1500
	if testing.Short() {
		steps = 300
	}
	if *long {
		steps = 20000
	}
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("MESHDRIVE_FSX_SEED"); v != "" {
		var err error
		if seed, err = strconv.ParseUint(v, 10, 64); err != nil {
			t.Fatalf("MESHDRIVE_FSX_SEED=%q: %v", v, err)
		}
	}
	t.Logf("fsx seed %d, %d steps", seed, steps)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("reproduce with MESHDRIVE_FSX_SEED=%d go test -run TestFsx ./fs/", seed)
		}
	})
	s := newStack(t, stackOptions{})
	x := &fsx{t: t, s: s, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), mnt: filepath.Join(s.mnt, "fsx"), local: filepath.Join(t.TempDir(), "fsx")}
	for _, root := range []string{x.mnt, x.local} {
		for _, d := range []string{"", "a", "b"} {
			if err := os.Mkdir(filepath.Join(root, d), 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, d := range []string{"a", "b"} {
		for i := 0; i < 4; i++ {
			x.names = append(x.names, fmt.Sprintf("%s/f%d", d, i))
		}
	}
	counts := map[string]int{}
	for step := 0; step < steps; step++ {
		op := x.step()
		counts[op]++
		if t.Failed() {
			t.Fatalf("step %d diverged; last operations:\n%s", step, x.history())
		}
	}
	t.Logf("operations: %v", counts)
}

func (x *fsx) history() string {
	var b bytes.Buffer
	for _, l := range x.log {
		b.WriteString("  " + l + "\n")
	}
	return b.String()
}

func (x *fsx) note(format string, args ...any) {
	x.log = append(x.log, fmt.Sprintf(format, args...))
	if len(x.log) > 30 {
		x.log = x.log[1:]
	}
}

func (x *fsx) pick() string { return x.names[x.rng.IntN(len(x.names))] }

func (x *fsx) exists(name string) bool {
	_, err := os.Lstat(filepath.Join(x.local, name))
	return err == nil
}

// both runs fn on the local directory and on the mount and checks that
// they fail or succeed alike.
func (x *fsx) both(what string, fn func(root string) error) {
	x.t.Helper()
	errL := fn(x.local)
	errM := fn(x.mnt)
	if (errL == nil) != (errM == nil) {
		x.t.Errorf("%s: local %v, drive %v", what, errL, errM)
	}
}

func (x *fsx) data(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(x.rng.Uint32())
	}
	if x.rng.IntN(4) == 0 {
		// Some runs of one byte, which compress.
		v := byte(x.rng.Uint32())
		for i := range b {
			b[i] = v
		}
	}
	return b
}

func (x *fsx) writeAt(name string, p []byte, off int64) {
	x.both(fmt.Sprintf("write %s [%d,+%d)", name, off, len(p)), func(root string) error {
		f, err := os.OpenFile(filepath.Join(root, name), os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			return err
		}
		if _, err := f.WriteAt(p, off); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	})
}

// step runs one random operation and compares; it returns the op's name.
func (x *fsx) step() string {
	name := x.pick()
	var op string
	switch r := x.rng.IntN(100); {
	case r < 35:
		op = "write"
		n := 1 + x.rng.IntN(64<<10)
		if x.rng.IntN(8) == 0 {
			n = 1 + x.rng.IntN(300<<10)
		}
		off := x.rng.Int64N(fsxMaxSize)
		x.note("write %s off %d len %d", name, off, n)
		x.writeAt(name, x.data(n), off)
	case r < 40:
		op = "sparse-write"
		n := 1 + x.rng.IntN(4096)
		off := x.rng.Int64N(fsxSparseMax)
		x.note("sparse write %s off %d len %d", name, off, n)
		x.writeAt(name, x.data(n), off)
	case r < 50:
		op = "truncate"
		size := x.rng.Int64N(fsxMaxSize)
		if x.rng.IntN(3) == 0 {
			size = x.rng.Int64N(fsxSparseMax) // extend
		}
		x.note("truncate %s %d", name, size)
		x.both("truncate "+name, func(root string) error { return os.Truncate(filepath.Join(root, name), size) })
	case r < 58:
		op = "rename"
		to := x.pick()
		x.note("rename %s %s", name, to)
		x.both("rename "+name+" "+to, func(root string) error {
			return os.Rename(filepath.Join(root, name), filepath.Join(root, to))
		})
	case r < 64:
		op = "link"
		to := x.pick()
		x.note("link %s %s", name, to)
		x.both("link "+name+" "+to, func(root string) error {
			return os.Link(filepath.Join(root, name), filepath.Join(root, to))
		})
	case r < 72:
		op = "unlink"
		x.note("unlink %s", name)
		x.both("unlink "+name, func(root string) error { return os.Remove(filepath.Join(root, name)) })
	case r < 78:
		op = "fsync"
		x.note("fsync %s", name)
		x.both("fsync "+name, func(root string) error {
			f, err := os.OpenFile(filepath.Join(root, name), os.O_RDWR, 0)
			if err != nil {
				return err
			}
			defer f.Close()
			return f.Sync()
		})
	case r < 84:
		op = "chmod"
		mode := uint32(0o600 | x.rng.IntN(0o200))
		x.note("chmod %s %o", name, mode)
		x.both("chmod "+name, func(root string) error { return syscall.Chmod(filepath.Join(root, name), mode) })
	case r < 92:
		op = "append"
		p := x.data(1 + x.rng.IntN(8<<10))
		x.note("append %s %d", name, len(p))
		x.both("append "+name, func(root string) error {
			f, err := os.OpenFile(filepath.Join(root, name), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
			if err != nil {
				return err
			}
			if _, err := f.Write(p); err != nil {
				f.Close()
				return err
			}
			return f.Close()
		})
	case r < 96:
		op = "cache-drop"
		x.note("cache drop")
		if err := x.s.drive.ClearCache(); err != nil {
			x.t.Fatalf("cache clear: %v", err)
		}
		x.compareAll()
		return op
	default:
		if x.rng.IntN(3) != 0 {
			op = "read"
			x.note("read %s", name)
			break
		}
		op = "remount"
		x.note("remount")
		x.s.remount()
		x.compareAll()
		return op
	}
	x.compareMeta()
	if x.exists(name) {
		x.compareData(name)
	}
	return op
}

// compareMeta compares the names, sizes, modes and link counts.
func (x *fsx) compareMeta() {
	x.t.Helper()
	for _, d := range []string{"a", "b"} {
		l, errL := os.ReadDir(filepath.Join(x.local, d))
		m, errM := os.ReadDir(filepath.Join(x.mnt, d))
		if errL != nil || errM != nil {
			x.t.Fatalf("readdir %s: local %v, drive %v", d, errL, errM)
		}
		ln, mn := dirNames(l), dirNames(m)
		if fmt.Sprint(ln) != fmt.Sprint(mn) {
			x.t.Errorf("dir %s: local %v, drive %v", d, ln, mn)
			return
		}
		for _, n := range ln {
			var sl, sm syscall.Stat_t
			if err := syscall.Lstat(filepath.Join(x.local, d, n), &sl); err != nil {
				x.t.Fatal(err)
			}
			if err := syscall.Lstat(filepath.Join(x.mnt, d, n), &sm); err != nil {
				x.t.Errorf("stat %s/%s on the drive: %v", d, n, err)
				continue
			}
			if sl.Size != sm.Size || sl.Mode != sm.Mode || sl.Nlink != sm.Nlink {
				x.t.Errorf("%s/%s: local size %d mode %o nlink %d; drive size %d mode %o nlink %d",
					d, n, sl.Size, sl.Mode, sl.Nlink, sm.Size, sm.Mode, sm.Nlink)
			}
		}
	}
}

func dirNames(es []os.DirEntry) []string {
	var n []string
	for _, e := range es {
		n = append(n, e.Name())
	}
	sort.Strings(n)
	return n
}

func (x *fsx) compareData(name string) {
	x.t.Helper()
	l, errL := os.ReadFile(filepath.Join(x.local, name))
	m, errM := os.ReadFile(filepath.Join(x.mnt, name))
	if errL != nil || errM != nil {
		x.t.Errorf("read %s: local %v, drive %v", name, errL, errM)
		return
	}
	if !bytes.Equal(l, m) {
		i := 0
		for i < len(l) && i < len(m) && l[i] == m[i] {
			i++
		}
		x.t.Errorf("%s: contents differ at byte %d (local %d bytes, drive %d)", name, i, len(l), len(m))
	}
}

func (x *fsx) compareAll() {
	x.t.Helper()
	x.compareMeta()
	for _, n := range x.names {
		if x.exists(n) {
			x.compareData(n)
		}
	}
}
