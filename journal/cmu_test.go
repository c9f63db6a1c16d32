package journal

import (
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"
)

// TestCreateInDirectoryWhoseRmdirIsApplied: a create in a directory whose
// deferred rmdir the unlinker applies while the create checks (its read
// of the directory, then the pending rmdirs) must not be deferred: the
// directory is gone, and an apply of the create would find no parent
// row. Without wmu the create can run in the apply's window; the kernel
// would not send a create in a removed directory, an API caller may.
func TestCreateInDirectoryWhoseRmdirIsApplied(t *testing.T) {
	for _, kind := range []string{"mknod", "mkdir"} {
		t.Run(kind, func(t *testing.T) {
			e := newEnv(t, func(o *Options) { o.UnlinkDelay = time.Hour })
			j := e.j
			p := must[Attr](t)(j.Mkdir(bg, RootIno, "p", 0o755, 0, 0))
			applyUnlinks(t, j)
			if _, err := j.Lookup(bg, p.Ino, "f"); !errors.Is(err, ErrNotFound) {
				t.Fatal(err) // p is a known directory now (knownDirs)
			}
			if err := j.Rmdir(bg, RootIno, "p"); err != nil {
				t.Fatal(err)
			}
			if !j.unl.rmdirPending(p.Ino) {
				t.Fatal("the rmdir was not deferred")
			}
			ran := false
			j.attrReadHook = func(ino Ino) {
				if ino != p.Ino || ran {
					return
				}
				ran = true
				applyUnlinks(t, j) // as the unlinker would, in the create's checks
			}
			var err error
			if kind == "mkdir" {
				_, err = j.Mkdir(bg, p.Ino, "f", 0o755, 0, 0)
			} else {
				_, err = j.Mknod(bg, p.Ino, "f", sIFREG|0o644, 0, 0, 0)
			}
			j.attrReadHook = nil // ran or not: the create need not read the row
			if !errors.Is(err, ErrNotFound) {
				t.Errorf("a create in a removed directory: %v, want %v", err, ErrNotFound)
			}
			// Whatever it answered, the next applies must work.
			j.wmu.Lock()
			aerr := j.ul.applyUnlinksLocked(bg)
			j.wmu.Unlock()
			if aerr != nil {
				t.Fatalf("the apply after it: %v", aerr)
			}
			if _, err := j.Mkdir(bg, RootIno, "q", 0o755, 0, 0); err != nil {
				t.Fatal(err)
			}
			applyUnlinks(t, j)
		})
	}
}

// stressDir is a directory of the model in TestCreatesRaceApplies.
type stressDir struct {
	ino    Ino
	parent *stressDir
	name   string
	files  map[string]Ino // regular files, by name
	subs   map[string]*stressDir
	mtime  time.Time // set by the last change when it was a SetAttr, else zero
	mode   uint32
}

func (d *stressDir) nlink() int { return 2 + len(d.subs) }

// TestCreatesRaceApplies: workers, each in a tree of its own (the kernel
// serializes calls on one directory, not on different ones), create
// files, make and remove directories, set directories' times and modes,
// rename, hard-link, unlink and write files, while the unlinker applies
// every few hundred microseconds and a writer elsewhere commits
// transactions that fold the pending records. After each call, what it
// changed reads back; at the end the database is the model's, after an
// apply, and after a kill -9 halfway (with records pending) and Open's
// replay.
func TestCreatesRaceApplies(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.UnlinkDelay = 300 * time.Microsecond })
	j := e.j
	const workers, ops = 6, 400
	roots := make([]*stressDir, workers)
	for w := range roots {
		a := must[Attr](t)(j.Mkdir(bg, RootIno, fmt.Sprintf("w%d", w), 0o755, 0, 0))
		roots[w] = &stressDir{ino: a.Ino, name: fmt.Sprintf("w%d", w), files: map[string]Ino{}, subs: map[string]*stressDir{}, mode: sIFDIR | 0o755}
	}
	other := must[Attr](t)(j.Mkdir(bg, RootIno, "other", 0o755, 0, 0))
	applyUnlinks(t, j)
	errs := make(chan error, workers+1)
	stop, stopped := make(chan struct{}), make(chan struct{})
	go func() { // transactions that fold the pending records: flushes, file setattrs
		defer close(stopped)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			f, err := j.Mknod(bg, other.Ino, fmt.Sprintf("f%d", i), 0o644, 0, 0, 0)
			if err == nil {
				j.OpenFile(f.Ino)
				if _, err = j.WriteAt(bg, f.Ino, []byte("x"), 0); err == nil {
					err = j.Fsync(bg, f.Ino)
				}
				j.ReleaseFile(f.Ino)
			}
			if err == nil {
				m := uint32(0o600)
				_, err = j.SetAttr(bg, f.Ino, SetAttr{Mode: &m})
			}
			if err != nil {
				errs <- fmt.Errorf("other: %w", err)
				return
			}
		}
	}()
	// Halfway, a kill -9: a copy of the folder taken while every worker
	// waits, under wmu and umu (no commit, no record meanwhile).
	var halfway sync.WaitGroup
	halfway.Add(workers)
	resume := make(chan struct{})
	pause := func(i int) {
		if i == ops/2 {
			halfway.Done()
			<-resume
		}
	}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := stressWorker(j, roots[w], w, ops, pause); err != nil {
				errs <- fmt.Errorf("worker %d: %w", w, err)
				pause(ops / 2) // the others wait for it
			}
		}()
	}
	halfway.Wait()
	killed := *e
	killed.t = t
	killed.opts.Dir = filepath.Join(t.TempDir(), "journal")
	j.wmu.Lock()
	// Records the kill leaves to the replay, deferred while no apply
	// can run: a file, a directory and a change of times in every tree.
	for w, r := range roots {
		for _, d := range []*stressDir{r, r.anySub()} {
			if d == nil {
				continue
			}
			j.unl.cmu.Lock()
			name := fmt.Sprintf("k%d", d.ino)
			if a, ok, err := j.ul.deferCreate(bg, d.ino, name, sIFREG|0o644, 0, 0); ok && err == nil {
				d.files[name] = a.Ino
				d.mtime = time.Time{}
			} else if err != nil {
				t.Error(err)
			}
			if a, ok, err := j.ul.deferCreate(bg, d.ino, name+"d", sIFDIR|0o755, 0, 0); ok && err == nil {
				d.subs[name+"d"] = &stressDir{ino: a.Ino, parent: d, name: name + "d", files: map[string]Ino{}, subs: map[string]*stressDir{}, mode: sIFDIR | 0o755}
				d.mtime = time.Time{}
			} else if err != nil {
				t.Error(err)
			}
			m := time.Unix(1_700_000_000+int64(w), 0)
			mode := uint32(0o750)
			if j.da.deferSet(bg, d.ino, &SetAttr{Mtime: &m, Mode: &mode}) {
				d.mtime, d.mode = m, sIFDIR|mode
			}
			j.unl.cmu.Unlock()
		}
	}
	j.unl.umu.Lock()
	pending := len(j.unl.unlRecs)
	err := os.CopyFS(killed.opts.Dir, os.DirFS(e.opts.Dir))
	j.unl.umu.Unlock()
	j.wmu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(killed.opts.Dir, "journal.db-shm"))
	t.Logf("%d records pending at the kill", pending)
	var atKill []*stressDir
	for _, r := range roots {
		atKill = append(atKill, r.clone())
	}
	close(resume)
	wg.Wait()
	close(stop)
	<-stopped
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for _, r := range roots {
		checkStressTree(t, j, r, false) // pending records and all
	}
	applyUnlinks(t, j)
	if n := j.unl.unlN.Load(); n != 0 {
		t.Fatalf("%d records pending after the apply", n)
	}
	for _, r := range roots {
		checkStressTree(t, j, r, true)
	}
	e.reopen()
	killed.open()
	defer killed.j.Close()
	applyUnlinks(t, killed.j)
	for _, r := range atKill {
		checkStressTree(t, killed.j, r, true)
	}
}

// anySub is one of d's subdirectories, nil if none.
func (d *stressDir) anySub() *stressDir {
	for _, s := range d.subs {
		return s
	}
	return nil
}

func (d *stressDir) clone() *stressDir {
	c := *d
	c.files = maps.Clone(d.files)
	c.subs = make(map[string]*stressDir, len(d.subs))
	for n, s := range d.subs {
		c.subs[n] = s.clone()
	}
	return &c
}

func stressWorker(j *Journal, root *stressDir, w, ops int, pause func(i int)) error {
	rng := rand.New(rand.NewPCG(uint64(w), 7))
	dirs := []*stressDir{root}
	pick := func() *stressDir { return dirs[rng.IntN(len(dirs))] }
	anyFile := func(d *stressDir) (string, bool) {
		for n := range d.files {
			return n, true
		}
		return "", false
	}
	check := func(d *stressDir, what string) error {
		a, err := j.GetAttr(bg, d.ino)
		if err != nil {
			return fmt.Errorf("%s: getattr of %s: %w", what, d.name, err)
		}
		if int(a.Nlink) != d.nlink() {
			return fmt.Errorf("%s: %s's link count %d, want %d", what, d.name, a.Nlink, d.nlink())
		}
		if !d.mtime.IsZero() && !a.Mtime.Equal(d.mtime) {
			return fmt.Errorf("%s: %s's mtime %v, want %v", what, d.name, a.Mtime, d.mtime)
		}
		if a.Mode != d.mode {
			return fmt.Errorf("%s: %s's mode %o, want %o", what, d.name, a.Mode, d.mode)
		}
		return nil
	}
	for i := range ops {
		pause(i)
		d := pick()
		name := fmt.Sprintf("n%d", i)
		var what string
		switch k := rng.IntN(10); {
		case k < 3:
			what = "create " + name
			a, err := j.Mknod(bg, d.ino, name, sIFREG|0o644, 0, 0, 0)
			if err != nil {
				return fmt.Errorf("%s: %w", what, err)
			}
			d.files[name], d.mtime = a.Ino, time.Time{}
			if l, err := j.Lookup(bg, d.ino, name); err != nil || l.Ino != a.Ino {
				return fmt.Errorf("%s: lookup %+v %v", what, l, err)
			}
		case k < 5:
			what = "mkdir " + name
			a, err := j.Mkdir(bg, d.ino, name, 0o755, 0, 0)
			if err != nil {
				return fmt.Errorf("%s: %w", what, err)
			}
			s := &stressDir{ino: a.Ino, parent: d, name: name, files: map[string]Ino{}, subs: map[string]*stressDir{}, mode: sIFDIR | 0o755}
			d.subs[name], d.mtime = s, time.Time{}
			dirs = append(dirs, s)
			if err := check(s, what); err != nil {
				return err
			}
		case k < 7:
			what = "setattr " + d.name
			m := time.Unix(1_600_000_000+int64(w)*1_000_000+int64(i), 0)
			mode := uint32(0o700 + rng.IntN(2)*0o55)
			if _, err := j.SetAttr(bg, d.ino, SetAttr{Atime: &m, Mtime: &m, Mode: &mode}); err != nil {
				return fmt.Errorf("%s: %w", what, err)
			}
			d.mtime, d.mode = m, sIFDIR|mode
		case k < 8:
			f, ok := anyFile(d)
			if !ok {
				continue
			}
			what = "unlink " + f
			if err := j.Unlink(bg, d.ino, f); err != nil {
				return fmt.Errorf("%s: %w", what, err)
			}
			delete(d.files, f)
			d.mtime = time.Time{}
			if _, err := j.Lookup(bg, d.ino, f); !errors.Is(err, ErrNotFound) {
				return fmt.Errorf("%s: lookup after: %v", what, err)
			}
		case k < 9:
			f, ok := anyFile(d)
			if !ok {
				continue
			}
			to := pick()
			if rng.IntN(3) == 0 {
				what = "link " + f + " as " + to.name + "/" + name
				a, err := j.Link(bg, d.files[f], to.ino, name)
				if err != nil || a.Ino != d.files[f] {
					return fmt.Errorf("%s: %+v %v", what, a, err)
				}
				to.files[name] = a.Ino
				to.mtime = time.Time{}
			} else {
				what = "rename " + f + " to " + to.name + "/" + name
				if err := j.Rename(bg, d.ino, f, to.ino, name, 0); err != nil {
					return fmt.Errorf("%s: %w", what, err)
				}
				to.files[name] = d.files[f]
				delete(d.files, f)
				d.mtime, to.mtime = time.Time{}, time.Time{}
			}
			if err := check(to, what); err != nil {
				return err
			}
		default:
			// An empty directory without subdirectories goes; else a
			// file is written and closed (a deferred close).
			var s *stressDir
			for _, c := range d.subs {
				if len(c.files) == 0 && len(c.subs) == 0 {
					s = c
					break
				}
			}
			if s != nil {
				what = "rmdir " + s.name
				if err := j.Rmdir(bg, d.ino, s.name); err != nil {
					return fmt.Errorf("%s: %w", what, err)
				}
				delete(d.subs, s.name)
				d.mtime = time.Time{}
				dirs = slices.DeleteFunc(dirs, func(x *stressDir) bool { return x == s })
				break
			}
			f, ok := anyFile(d)
			if !ok {
				continue
			}
			what = "write " + f
			ino := d.files[f]
			j.OpenFile(ino)
			_, err := j.WriteAt(bg, ino, []byte("data"), 0)
			if err == nil {
				err = j.Flush(bg, ino)
			}
			j.ReleaseFile(ino)
			if err != nil {
				return fmt.Errorf("%s: %w", what, err)
			}
		}
		if err := check(d, what); err != nil {
			return err
		}
	}
	return nil
}

// checkStressTree compares d's directory in j with the model.
func checkStressTree(t *testing.T, j *Journal, d *stressDir, db bool) {
	t.Helper()
	ents, err := j.ReadDir(bg, d.ino, 0, 100000)
	if err != nil {
		t.Fatalf("readdir %s: %v", d.name, err)
	}
	got := map[string]Ino{}
	for _, de := range ents {
		if de.Name == "." || de.Name == ".." {
			continue
		}
		got[de.Name] = de.Ino
	}
	want := map[string]Ino{}
	for n, ino := range d.files {
		want[n] = ino
	}
	for n, s := range d.subs {
		want[n] = s.ino
	}
	if !maps.Equal(got, want) {
		t.Fatalf("directory %s (%d) lists %v, want %v", d.name, d.ino, got, want)
	}
	a := must[Attr](t)(j.GetAttr(bg, d.ino))
	if int(a.Nlink) != d.nlink() || a.Mode != d.mode || !d.mtime.IsZero() && !a.Mtime.Equal(d.mtime) {
		t.Fatalf("directory %s: nlink %d mode %o mtime %v, want %d %o %v", d.name, a.Nlink, a.Mode, a.Mtime, d.nlink(), d.mode, d.mtime)
	}
	if db {
		if n := dbNlink(t, j, d.ino); n != d.nlink() {
			t.Fatalf("directory %s: the row's nlink %d, want %d", d.name, n, d.nlink())
		}
	}
	for _, s := range d.subs {
		checkStressTree(t, j, s, db)
	}
}

// TestCreatesRaceAppliesSharedDirs is TestCreatesRaceApplies with the
// workers in the same directories, which the kernel would not do (it
// serializes calls on one directory): an API caller's races. Each
// worker makes, renames, links and removes names of its own; all of
// them set the directories' modes. At the end the directories list
// every worker's names, and their link counts count every worker's
// subdirectories, after an apply and after a kill -9.
func TestCreatesRaceAppliesSharedDirs(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.UnlinkDelay = 200 * time.Microsecond })
	j := e.j
	const workers, ndirs, ops = 6, 3, 300
	var dirs [ndirs]Ino
	for i := range dirs {
		dirs[i] = must[Attr](t)(j.Mkdir(bg, RootIno, fmt.Sprintf("s%d", i), 0o755, 0, 0)).Ino
	}
	applyUnlinks(t, j)
	type entry struct {
		ino Ino
		dir bool
	}
	models := make([]map[dirName]entry, workers) // each worker's names
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		models[w] = map[dirName]entry{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			m := models[w]
			rng := rand.New(rand.NewPCG(uint64(w), 11))
			fail := func(err error) { errs <- fmt.Errorf("worker %d: %w", w, err) }
			own := func(dir bool) (dirName, bool) {
				for k, v := range m {
					if v.dir == dir {
						return k, true
					}
				}
				return dirName{}, false
			}
			for i := range ops {
				d := dirs[rng.IntN(ndirs)]
				name := fmt.Sprintf("w%dn%d", w, i)
				switch k := rng.IntN(10); {
				case k < 3:
					a, err := j.Mknod(bg, d, name, sIFREG|0o644, 0, 0, 0)
					if err != nil {
						fail(fmt.Errorf("create %s: %w", name, err))
						return
					}
					m[dirName{d, name}] = entry{ino: a.Ino}
				case k < 5:
					a, err := j.Mkdir(bg, d, name, 0o755, 0, 0)
					if err != nil {
						fail(fmt.Errorf("mkdir %s: %w", name, err))
						return
					}
					m[dirName{d, name}] = entry{ino: a.Ino, dir: true}
				case k < 7:
					mode := uint32(0o700 + rng.IntN(2)*0o55)
					mt := time.Unix(1_600_000_000+int64(i), 0)
					if _, err := j.SetAttr(bg, d, SetAttr{Mode: &mode, Mtime: &mt}); err != nil {
						fail(fmt.Errorf("setattr: %w", err))
						return
					}
				case k < 8:
					if f, ok := own(false); ok {
						if err := j.Unlink(bg, f.parent, f.name); err != nil {
							fail(fmt.Errorf("unlink %s: %w", f.name, err))
							return
						}
						delete(m, f)
					}
				case k < 9:
					if f, ok := own(rng.IntN(2) == 0); ok {
						if err := j.Rename(bg, f.parent, f.name, d, name, 0); err != nil {
							fail(fmt.Errorf("rename %s: %w", f.name, err))
							return
						}
						m[dirName{d, name}] = m[f]
						delete(m, f)
					}
				default:
					if s, ok := own(true); ok {
						if err := j.Rmdir(bg, s.parent, s.name); err != nil {
							fail(fmt.Errorf("rmdir %s: %w", s.name, err))
							return
						}
						delete(m, s)
					}
				}
				for k, v := range m {
					if rng.IntN(8) != 0 {
						continue
					}
					if a, err := j.Lookup(bg, k.parent, k.name); err != nil || a.Ino != v.ino {
						fail(fmt.Errorf("lookup %s: %+v %v, want inode %d", k.name, a, err, v.ino))
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	check := func(j *Journal) {
		t.Helper()
		applyUnlinks(t, j)
		for _, d := range dirs {
			want := map[string]Ino{}
			subs := 0
			for _, m := range models {
				for k, v := range m {
					if k.parent == d {
						want[k.name] = v.ino
						if v.dir {
							subs++
						}
					}
				}
			}
			ents := must[[]DirEntry](t)(j.ReadDir(bg, d, 0, 100000))
			got := map[string]Ino{}
			for _, de := range ents {
				if de.Name != "." && de.Name != ".." {
					got[de.Name] = de.Ino
				}
			}
			if !maps.Equal(got, want) {
				t.Fatalf("directory %d lists %d names, want %d: %v, want %v", d, len(got), len(want), got, want)
			}
			if a := must[Attr](t)(j.GetAttr(bg, d)); int(a.Nlink) != 2+subs {
				t.Fatalf("directory %d: nlink %d, want %d", d, a.Nlink, 2+subs)
			}
			if n := dbNlink(t, j, d); n != 2+subs {
				t.Fatalf("directory %d: the row's nlink %d, want %d", d, n, 2+subs)
			}
		}
	}
	check(j)
	e.killAndReopen()
	check(e.j)
	e.reopen()
}

// TestSyncCallsLetCreatesBy: a call that takes the synchronous way (a
// SetAttr of a file with nothing unflushed, a symlink, a link, a rename,
// an rmdir) waits for wmu behind the unlinker's apply, but not while it
// holds cmu: a deferred create in another directory does not wait for
// that apply with it, which is what cmu is for.
func TestSyncCallsLetCreatesBy(t *testing.T) {
	for _, c := range []struct {
		name string
		call func(j *Journal, x, f Attr) error
	}{
		{"setattr", func(j *Journal, x, f Attr) error {
			m := uint32(0o600)
			_, err := j.SetAttr(bg, f.Ino, SetAttr{Mode: &m})
			return err
		}},
		{"symlink", func(j *Journal, x, f Attr) error {
			_, err := j.Symlink(bg, x.Ino, "s", "f", 0, 0)
			return err
		}},
		{"link", func(j *Journal, x, f Attr) error {
			_, err := j.Link(bg, f.Ino, x.Ino, "g")
			return err
		}},
		{"rename", func(j *Journal, x, f Attr) error { return j.Rename(bg, x.Ino, "f", x.Ino, "h", 0) }},
		{"rmdir", func(j *Journal, x, f Attr) error { return j.Rmdir(bg, x.Ino, "e") }},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, func(o *Options) { o.UnlinkDelay = time.Hour })
			j := e.j
			x := must[Attr](t)(j.Mkdir(bg, RootIno, "x", 0o755, 0, 0))
			y := must[Attr](t)(j.Mkdir(bg, RootIno, "y", 0o755, 0, 0))
			f := must[Attr](t)(j.Mknod(bg, x.Ino, "f", sIFREG|0o644, 0, 0, 0))
			must[Attr](t)(j.Mkdir(bg, x.Ino, "e", 0o755, 0, 0))
			applyUnlinks(t, j)
			done := make(chan error, 1)
			err := whileLocked(t, &j.wmu, "a create behind a synchronous "+c.name, func() error { // as the unlinker's apply holds it
				go func() { done <- c.call(j, x, f) }()
				time.Sleep(50 * time.Millisecond) // let the call come to wmu first
				_, err := j.Mknod(bg, y.Ino, "n", sIFREG|0o644, 0, 0, 0)
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			if err := <-done; err != nil {
				t.Fatalf("the %s: %v", c.name, err)
			}
			applyUnlinks(t, j)
			var n int
			if err := j.db.QueryRow(`SELECT count(*) FROM entries WHERE parent = ? AND name = 'n'`, y.Ino).Scan(&n); err != nil || n != 1 {
				t.Fatalf("the create's entry after the apply: %d rows (%v), want 1", n, err)
			}
		})
	}
}
