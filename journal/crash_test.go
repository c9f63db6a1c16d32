package journal

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/meshdrive/meshdrive/remote"
)

// The crash test runs a child process (this test binary, TestCrashChild)
// that writes, truncates, renames and unlinks files through the journal,
// and makes and removes directories with a file in them (rm -rf's shape),
// and prints every operation before it starts ("B ...") and once it has
// returned ("A n"): a write followed by Flush (what close does, no fsync)
// or by Fsync, the others as they are. The parent SIGKILLs it at a random moment, reopens the
// journal and checks that the state is exactly the acknowledged one, or
// that plus the one operation in flight.

const (
	crashEnvDir  = "MESHDRIVE_JOURNAL_CRASH_DIR"
	crashEnvSeed = "MESHDRIVE_JOURNAL_CRASH_SEED"
	crashBS      = 16 << 10
	crashFiles   = 6
)

func crashOptions(dir string) (Options, *fakeGrid, *testReader) {
	g := newFakeGrid(filepath.Join(dir, "grid"))
	os.MkdirAll(g.dir, 0o700)
	s, err := remoteSealer()
	if err != nil {
		panic(err)
	}
	r := &testReader{g: g, s: s}
	return Options{
		Dir: filepath.Join(dir, "journal"), Grid: g, Sealer: s, Blocks: r,
		BlockSize: crashBS, SegmentSize: 128 << 10, IdleFlush: 20 * time.Millisecond,
		RetryMax: 50 * time.Millisecond, Quota: 1 << 30,
	}, g, r
}

// crashOp is one operation of the child; data is derived from its number.
type crashOp struct {
	n        int
	kind     byte // C create, W write, S whole blocks written in order, P a small file saved whole, T truncate, R rename, U unlink, M mkdir with a file, X rm -rf of it
	name     string
	to       string
	off, len int64
	seed     uint64
}

func (o crashOp) String() string {
	return fmt.Sprintf("B %d %c %s %s %d %d %d", o.n, o.kind, o.name, o.to, o.off, o.len, o.seed)
}

func parseOp(line string) (crashOp, bool) {
	var o crashOp
	var kind string
	if _, err := fmt.Sscanf(line, "B %d %s %s %s %d %d %d", &o.n, &kind, &o.name, &o.to, &o.off, &o.len, &o.seed); err != nil {
		return o, false
	}
	o.kind = kind[0]
	return o, true
}

func opData(o crashOp) []byte {
	p := make([]byte, o.len)
	if o.seed%5 == 0 {
		return p // zeros: holes
	}
	fillRand(o.seed, p)
	if o.seed%3 == 0 {
		for i := range p {
			p[i] &= 0x0f // compressible
		}
	}
	return p
}

// apply applies o to a model (name -> contents).
func apply(m map[string][]byte, o crashOp) {
	switch o.kind {
	case 'C':
		m[o.name] = []byte{}
	case 'W', 'S':
		b := m[o.name]
		if end := o.off + o.len; end > int64(len(b)) {
			b = append(b, make([]byte, end-int64(len(b)))...)
		}
		copy(b[o.off:], opData(o))
		m[o.name] = b
	case 'P':
		m[o.name] = opData(o)
	case 'T':
		b := m[o.name]
		if o.off < int64(len(b)) {
			b = b[:o.off]
		} else {
			b = append(b, make([]byte, o.off-int64(len(b)))...)
		}
		m[o.name] = b
	case 'R':
		m[o.to] = m[o.name]
		delete(m, o.name)
	case 'U':
		delete(m, o.name)
	case 'M':
		m[o.name+"/"] = dirState(dirMode(o), dirMtime(o))
		m[o.name+"/x"] = opData(o)
	case 'X':
		delete(m, o.name+"/x")
		delete(m, o.name+"/")
	}
}

// partials are the states o leaves when a crash cuts it short: M and X
// are several calls.
func partials(m map[string][]byte, o crashOp) []map[string][]byte {
	var out []map[string][]byte
	with := func(f func(map[string][]byte)) {
		alt := maps.Clone(m)
		f(alt)
		out = append(out, alt)
	}
	switch o.kind {
	case 'P':
		with(func(a map[string][]byte) { a[o.name] = []byte{} }) // truncated, not written
	case 'M':
		with(func(a map[string][]byte) { a[o.name+"/"] = []byte{} })
		with(func(a map[string][]byte) { a[o.name+"/"] = []byte{}; a[o.name+"/x"] = []byte{} })
		with(func(a map[string][]byte) { a[o.name+"/"] = []byte{}; a[o.name+"/x"] = opData(o) }) // before the setattr
	case 'X':
		with(func(a map[string][]byte) {
			delete(a, o.name+"/x")
			// The unlink moved the directory's mtime to its own time.
			if d := a[o.name+"/"]; len(d) > 0 {
				a[o.name+"/"] = append(bytes.Fields(d)[0], " now"...)
			}
		})
	}
	return out
}

// dirMode and dirMtime are what an M op sets on its directory after
// writing x: a deferred SetAttr of a directory (dirattr.go), which a
// kill -9 after it returned must not lose.
func dirMode(o crashOp) uint32 { return 0o700 | uint32(o.seed%8)<<3 }

func dirMtime(o crashOp) time.Time { return time.Unix(dirEpoch+int64(o.seed%1_000_000), 0) }

// dirEpoch starts the mtimes M ops set: any other is the drive's clock.
const dirEpoch = 1_000_000_000

// dirState is a directory's entry in a state: empty for a directory
// with the mode mkdir gave it and the drive's time, else its mode and
// the mtime an M op set (or "now").
func dirState(mode uint32, mtime time.Time) []byte {
	set := mtime.Unix() >= dirEpoch && mtime.Unix() < dirEpoch+1_000_000
	switch {
	case set:
		return fmt.Appendf(nil, "%o %d", mode, mtime.Unix())
	case mode != 0o755:
		return fmt.Appendf(nil, "%o now", mode)
	}
	return []byte{}
}

// partialBlocks reports whether got is what a crash may leave of o, a
// sequential write of whole blocks (S) cut short after write-behind
// committed some of its blocks and not others: every file but o's as in
// m, and o's file at most as long as o makes it and no shorter than it
// was, each of its blocks either what it held before (zeros past its
// end) or what o wrote there. Never bytes it was not given.
func partialBlocks(m, got map[string][]byte, o crashOp) bool {
	if o.kind != 'S' {
		return false
	}
	old, ok := m[o.name]
	g, gok := got[o.name]
	if !ok || !gok {
		return false
	}
	for n, b := range m {
		if n != o.name && !bytes.Equal(got[n], b) {
			return false
		}
	}
	if len(got) != len(m) {
		return false
	}
	after := maps.Clone(m)
	after[o.name] = bytes.Clone(old)
	apply(after, o)
	neu := after[o.name]
	if len(g) < len(old) || len(g) > max(len(old), len(neu)) {
		return false
	}
	pad := func(b []byte) []byte {
		if len(b) >= len(g) {
			return b[:len(g)]
		}
		return append(bytes.Clone(b), make([]byte, len(g)-len(b))...)
	}
	was, now := pad(old), pad(neu)
	for i := 0; i < len(g); i += crashBS {
		e := min(i+crashBS, len(g))
		if !bytes.Equal(g[i:e], was[i:e]) && !bytes.Equal(g[i:e], now[i:e]) {
			return false
		}
	}
	return true
}

func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashEnvDir)
	if dir == "" {
		t.Skip("helper process of TestCrash; runs only when TestCrash starts it")
	}
	seed, _ := strconv.ParseUint(os.Getenv(crashEnvSeed), 10, 64)
	o, _, _ := crashOptions(dir)
	j, err := Open(bg, o)
	if err != nil {
		fmt.Println("ERR", err)
		os.Exit(2)
	}
	rng := rand.New(rand.NewPCG(seed, 99))
	out := bufio.NewWriter(os.Stdout)
	say := func(s string) {
		out.WriteString(s + "\n")
		out.Flush()
	}
	exists := func(name string) (Ino, bool) {
		a, err := j.Lookup(bg, RootIno, name)
		return a.Ino, err == nil
	}
	for n := 0; ; n++ {
		o := crashOp{n: n, name: fmt.Sprintf("f%d", rng.IntN(crashFiles)), to: "-", seed: seed*1_000_000 + uint64(n)}
		if rng.IntN(10) == 0 {
			o.name = fmt.Sprintf("d%d", rng.IntN(3))
		}
		ino, ok := exists(o.name)
		r := rng.IntN(100)
		switch {
		case o.name[0] == 'd' && !ok:
			o.kind = 'M'
			o.len = rng.Int64N(crashBS) + 1
		case o.name[0] == 'd':
			o.kind = 'X'
		case !ok:
			o.kind = 'C'
		case r < 15:
			// A sequential writer, a block a call: write-behind cuts,
			// seals and stages the blocks it has moved past (stageDirect)
			// and commits them before the close's flush.
			o.kind = 'S'
			o.off = rng.Int64N(4) * crashBS
			o.len = (rng.Int64N(6) + 3) * crashBS
		case r < 30:
			// A small file saved whole and closed: its close is logged
			// (a deferred flush, flushlog.go) and applied later.
			o.kind = 'P'
			o.len = rng.Int64N(crashBS/2) + 1
		case r < 65:
			o.kind = 'W'
			switch rng.IntN(3) {
			case 0:
				o.len = rng.Int64N(crashBS/2) + 1
			case 1:
				o.len = rng.Int64N(4*crashBS) + 1
			default:
				o.len = rng.Int64N(16*crashBS) + 1
			}
			o.off = rng.Int64N(20 * crashBS)
		case r < 80:
			o.kind = 'T'
			o.off = rng.Int64N(20 * crashBS)
		case r < 95:
			o.kind = 'R'
			o.to = fmt.Sprintf("f%d", rng.IntN(crashFiles))
			if o.to == o.name {
				continue
			}
		default:
			o.kind = 'U'
		}
		say(o.String())
		switch o.kind {
		case 'C':
			_, err = j.Mknod(bg, RootIno, o.name, 0o644, 0, 0, 0)
		case 'W':
			j.OpenFile(ino)
			_, err = j.WriteAt(bg, ino, opData(o), o.off)
			if err == nil && o.seed%2 == 0 {
				err = j.Flush(bg, ino) // close: committed, not fsync'd
			} else if err == nil {
				err = j.Fsync(bg, ino)
			}
			j.ReleaseFile(ino)
		case 'S':
			j.OpenFile(ino)
			p := opData(o)
			for i := int64(0); i < o.len && err == nil; i += crashBS {
				_, err = j.WriteAt(bg, ino, p[i:i+crashBS], o.off+i)
			}
			if err == nil && o.seed%2 == 0 {
				err = j.Flush(bg, ino)
			} else if err == nil {
				err = j.Fsync(bg, ino)
			}
			j.ReleaseFile(ino)
		case 'P':
			j.OpenFile(ino)
			var zero uint64
			if _, err = j.SetAttr(bg, ino, SetAttr{Size: &zero}); err == nil {
				if _, err = j.WriteAt(bg, ino, opData(o), 0); err == nil {
					err = j.Flush(bg, ino)
				}
			}
			j.ReleaseFile(ino)
		case 'T':
			s := uint64(o.off)
			_, err = j.SetAttr(bg, ino, SetAttr{Size: &s})
		case 'R':
			err = j.Rename(bg, RootIno, o.name, RootIno, o.to, 0)
		case 'U':
			err = j.Unlink(bg, RootIno, o.name)
		case 'M':
			var d, x Attr
			if d, err = j.Mkdir(bg, RootIno, o.name, 0o755, 0, 0); err != nil {
				break
			}
			if x, err = j.Mknod(bg, d.Ino, "x", 0o644, 0, 0, 0); err != nil {
				break
			}
			j.OpenFile(x.Ino)
			if _, err = j.WriteAt(bg, x.Ino, opData(o), 0); err == nil {
				err = j.Flush(bg, x.Ino)
			}
			j.ReleaseFile(x.Ino)
			if err == nil {
				mode, mtime := dirMode(o), dirMtime(o)
				_, err = j.SetAttr(bg, d.Ino, SetAttr{Mode: &mode, Mtime: &mtime})
			}
		case 'X':
			if _, lerr := j.Lookup(bg, ino, "x"); lerr == nil { // a crash may have cut M short
				err = j.Unlink(bg, ino, "x")
			}
			if err == nil {
				err = j.Rmdir(bg, RootIno, o.name)
			}
		}
		if err != nil {
			say("ERR " + err.Error())
			os.Exit(2)
		}
		say(fmt.Sprintf("A %d", n))
	}
}

func remoteSealer() (*remote.Sealer, error) { return remote.NewSealer(testKey) }

// state reads every file of the root directory, and of the directories
// in it (a directory is its name with a slash, holding nothing).
func state(t *testing.T, j *Journal) map[string][]byte {
	t.Helper()
	m := map[string][]byte{}
	ents := must[[]DirEntry](t)(j.ReadDir(bg, RootIno, 0, 1000))
	for _, e := range ents {
		if !isDir(e.Mode) {
			m[e.Name] = readAll(t, j, e.Ino)
			continue
		}
		a := must[Attr](t)(j.GetAttr(bg, e.Ino))
		m[e.Name+"/"] = dirState(a.Mode&0o7777, a.Mtime)
		for _, c := range must[[]DirEntry](t)(j.ReadDir(bg, e.Ino, 0, 1000)) {
			m[e.Name+"/"+c.Name] = readAll(t, j, c.Ino)
		}
	}
	return m
}

func equalState(a, b map[string][]byte) bool {
	return maps.EqualFunc(a, b, bytes.Equal)
}

func diffState(got, want map[string][]byte) string {
	var s []string
	for _, k := range slices.Sorted(maps.Keys(want)) {
		a, b := got[k], want[k]
		if bytes.Equal(a, b) {
			continue
		}
		i := 0
		for i < min(len(a), len(b)) && a[i] == b[i] {
			i++
		}
		e := i
		for e < min(len(a), len(b)) && a[e] != b[e] {
			e++
		}
		s = append(s, fmt.Sprintf("%s differs at [%d,%d) (block %d) len %d/%d", k, i, e, i/crashBS, len(a), len(b)))
	}
	return strings.Join(s, "; ")
}

func describe(m map[string][]byte) string {
	var s []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		s = append(s, fmt.Sprintf("%s:%d", k, len(m[k])))
	}
	return strings.Join(s, " ")
}

func TestCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test: skipped in -short mode")
	}
	kills := 50
	if *long {
		kills = 300
	}
	dir := t.TempDir()
	model := map[string][]byte{}
	rng := rand.New(rand.NewPCG(42, 42))
	var acked, inflight, partial int
	start := time.Now()
	for k := 0; k < kills; k++ {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.v=false")
		cmd.Env = append(os.Environ(), crashEnvDir+"="+dir, crashEnvSeed+"="+strconv.Itoa(k+1))
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := make(chan string, 1024)
		go func() {
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				lines <- sc.Text()
			}
			close(lines)
		}()
		// Kill after a random number of acknowledged operations, at a
		// random moment within the next one.
		want := rng.IntN(40) + 1
		var pending *crashOp
		var got int
		var recent []string
		timeout := time.After(20 * time.Second)
	read:
		for {
			select {
			case line, ok := <-lines:
				if !ok {
					t.Fatalf("kill %d: child exited early", k)
				}
				switch {
				case strings.HasPrefix(line, "B "):
					o, ok := parseOp(line)
					if !ok {
						t.Fatalf("bad line %q", line)
					}
					pending = &o
					if got >= want {
						time.Sleep(time.Duration(rng.IntN(3000)) * time.Microsecond)
						break read
					}
				case strings.HasPrefix(line, "A "):
					apply(model, *pending)
					recent = append(recent, pending.String())
					pending = nil
					got++
					acked++
				case strings.HasPrefix(line, "ERR"):
					t.Fatalf("child: %s", line)
				}
			case <-timeout:
				t.Fatalf("kill %d: child made no progress", k)
			}
		}
		cmd.Process.Signal(syscall.SIGKILL)
		// Whatever it printed before dying counts.
		for line := range lines {
			switch {
			case strings.HasPrefix(line, "B "):
				if o, ok := parseOp(line); ok {
					pending = &o
				}
			case strings.HasPrefix(line, "A ") && pending != nil:
				apply(model, *pending)
				pending = nil
				acked++
			}
		}
		cmd.Wait()

		checkDB(t, filepath.Join(dir, "journal"))
		o, _, _ := crashOptions(dir)
		j, err := Open(bg, o)
		if err != nil {
			t.Fatalf("kill %d: reopen: %v", k, err)
		}
		got2 := state(t, j)
		switch {
		case equalState(got2, model):
		case pending != nil && func() bool {
			alt := maps.Clone(model)
			for n, b := range alt {
				alt[n] = bytes.Clone(b)
			}
			apply(alt, *pending)
			if equalState(got2, alt) {
				model = alt
				inflight++
				return true
			}
			for _, p := range partials(model, *pending) {
				if equalState(got2, p) {
					model = p
					inflight++
					return true
				}
			}
			if partialBlocks(model, got2, *pending) {
				model = got2
				inflight++
				partial++
				return true
			}
			return false
		}():
		default:
			t.Fatalf("kill %d: state after crash differs\n got  %s\n want %s\n pending %v\n %s\n recent %v", k, describe(got2), describe(model), pending, diffState(got2, model), recent)
		}
		ctx, cancel := context.WithTimeout(bg, 20*time.Second)
		err = j.WaitDurable(ctx)
		cancel()
		if err != nil {
			t.Fatalf("kill %d: uploader does not drain: %v (%+v)", k, err, j.Stats())
		}
		if s := j.Stats(); s.QueuedBlocks != 0 {
			t.Fatalf("kill %d: queue not empty: %+v", k, s)
		}
		var staged int
		j.db.QueryRow(`SELECT count(*) FROM blocks WHERE state = ?`, blockStaged).Scan(&staged)
		if staged != 0 {
			t.Fatalf("kill %d: %d blocks still staged", k, staged)
		}
		if err := j.Close(); err != nil {
			t.Fatal(err)
		}
		checkDB(t, filepath.Join(dir, "journal"))
	}
	t.Logf("%d kills, %d acknowledged operations verified, %d in-flight operations found applied (%d of them in part), %v",
		kills, acked, inflight, partial, time.Since(start).Round(time.Millisecond))
}
