package journal

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/meshdrive/meshdrive/remote"
)

// manualClock is the group committer's clock in tests: an interval ends
// when the test says so.
type manualClock chan time.Time

func (c manualClock) after(time.Duration) <-chan time.Time { return c }

// durableCount installs a durable-commit hook on j that counts durable
// commits and signals each on the returned channel (without blocking).
func durableCount(j *Journal) (*atomic.Int64, chan struct{}) {
	var n atomic.Int64
	ch := make(chan struct{}, 1)
	j.wmu.Lock()
	j.durableHook = func() {
		n.Add(1)
		select {
		case ch <- struct{}{}:
		default:
		}
	}
	j.wmu.Unlock()
	return &n, ch
}

// TestGroupCommit: the flush of a close commits without making the
// journal durable; the staging file of a block it replaced stays until
// the group commit, which the clock starts; fsync is durable at once.
func TestGroupCommit(t *testing.T) { bubble(t, testGroupCommit) }

func testGroupCommit(t *testing.T) {
	clock := make(manualClock)
	e := newEnv(t, func(o *Options) { o.after = clock.after })
	j := e.j
	e.g.down.Store(true) // nothing uploads: blocks stay staged
	a := must[Attr](t)(j.Mknod(bg, RootIno, "f", 0o644, 0, 0, 0))
	// One durable commit of everything so far, then count from there.
	if err := j.Fsync(bg, RootIno); err != nil {
		t.Fatal(err)
	}
	durables, signal := durableCount(j)
	pending := func() bool {
		j.wmu.Lock()
		defer j.wmu.Unlock()
		return j.durableGen != j.commitGen.Load()
	}

	// A block that gets a staging file (sealed > half the 64 KiB block).
	p := make([]byte, 64<<10)
	fillRand(1, p)
	j.OpenFile(a.Ino)
	defer j.ReleaseFile(a.Ino)
	must[int](t)(j.WriteAt(bg, a.Ino, p, 0))
	if err := j.Flush(bg, a.Ino); err != nil {
		t.Fatal(err)
	}
	applyUnlinks(t, j) // the close was logged: its apply is the commit
	old := j.blockIDs(t, a.Ino)[0]
	if _, err := os.Stat(j.c.stagePath(old)); err != nil {
		t.Fatalf("staging file of the flushed block: %v", err)
	}
	if durables.Load() != 0 || !pending() {
		t.Fatalf("the flush of close made a durable commit (%d), or left nothing for the group commit", durables.Load())
	}

	// Replace it: the old block's staging file waits for a durable commit.
	fillRand(2, p)
	must[int](t)(j.WriteAt(bg, a.Ino, p, 0))
	if err := j.Flush(bg, a.Ino); err != nil {
		t.Fatal(err)
	}
	applyUnlinks(t, j)
	if _, err := os.Stat(j.c.stagePath(old)); err != nil {
		t.Fatalf("staging file of a block freed by an ordinary commit was removed before a durable commit: %v", err)
	}
	if durables.Load() != 0 {
		t.Fatalf("a second flush made a durable commit")
	}

	// The interval ends: one durable commit, and the file goes.
	clock <- time.Time{}
	<-signal
	if got := durables.Load(); got != 1 {
		t.Fatalf("durable commits after one group interval: %d, want 1", got)
	}
	if pending() {
		t.Fatal("commits still not durable after the group commit")
	}
	if _, err := os.Stat(j.c.stagePath(old)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("staging file of the freed block after the group commit: %v", err)
	}

	// Fsync does not wait for the clock.
	fillRand(3, p)
	must[int](t)(j.WriteAt(bg, a.Ino, p, 0))
	if err := j.Fsync(bg, a.Ino); err != nil {
		t.Fatal(err)
	}
	if got := durables.Load(); got != 2 || pending() {
		t.Fatalf("after fsync: %d durable commits (want 2), pending %v", got, pending())
	}
	// Nothing committed since: a second fsync has nothing to do.
	if err := j.Fsync(bg, a.Ino); err != nil {
		t.Fatal(err)
	}
	if got := durables.Load(); got != 2 {
		t.Fatalf("fsync with nothing new made a durable commit (%d)", got)
	}
}

// blockIDs lists ino's blocks in index order.
func (j *Journal) blockIDs(t *testing.T, ino Ino) []remote.BlockID {
	t.Helper()
	rows, err := j.db.Query(`SELECT block FROM blockmap WHERE ino = ? ORDER BY idx`, ino)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []remote.BlockID
	for rows.Next() {
		var b []byte
		if err := rows.Scan(&b); err != nil {
			t.Fatal(err)
		}
		var id remote.BlockID
		copy(id[:], b)
		out = append(out, id)
	}
	return out
}

// TestPowerCut models a power cut: the disk keeps the journal's database
// as it was at the newest durable commit (a copy taken then, under wmu)
// and the staging directory as it is at the cut (file creations and
// removals may reach the disk at any time). Random creates, writes with
// close (Flush) or fsync, truncates, renames, unlinks, directory fsyncs
// and group commits run; at each cut the copy must open (nothing
// corrupt, no staged block without its file), hold the namespace and
// data of one moment between two operations, and that moment must not
// be older than the newest fsync.
func TestPowerCut(t *testing.T) { bubble(t, testPowerCut) }

func testPowerCut(t *testing.T) {
	dir := t.TempDir()
	o, _, _ := crashOptions(dir)
	o.after = make(manualClock).after // the test runs the group commits itself (barrier)
	j, err := Open(bg, o)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()

	var done atomic.Int64 // operations returned
	var snapDB, snapWAL []byte
	// The snapshot holds every operation returned before its durable
	// commit began (startDone, snapLow) and maybe some returned while it
	// ran (up to snapDone): a close or unlink is logged without wmu.
	var snapDone, snapLow, startDone int64 = -1, -1, -1
	j.wmu.Lock()
	j.durableStartHook = func() { startDone = done.Load() }
	j.durableHook = func() {
		db, err := os.ReadFile(filepath.Join(o.Dir, "journal.db"))
		if err != nil {
			panic(err)
		}
		wal, err := os.ReadFile(filepath.Join(o.Dir, "journal.db-wal"))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			panic(err)
		}
		snapDB, snapWAL, snapDone, snapLow = db, wal, done.Load(), startDone
	}
	j.wmu.Unlock()

	// hist[c] is the drive's state after c operations returned.
	hist := []map[string][]byte{{}}
	lastFsync := 0
	rng := rand.New(rand.NewPCG(7, 7))
	ops, cuts := 400, 0
	if testing.Short() {
		ops = 150
	}
	lookup := func(name string) (Ino, bool) {
		a, err := j.Lookup(bg, RootIno, name)
		return a.Ino, err == nil
	}
	for c := 1; c <= ops; c++ {
		m := maps.Clone(hist[len(hist)-1])
		name := fmt.Sprintf("f%d", rng.IntN(crashFiles))
		ino, ok := lookup(name)
		fsynced := false
		r := rng.IntN(100)
		switch {
		case c == 1:
			// The first durable commit: the schema and root.
			err = j.Fsync(bg, RootIno)
			fsynced = true
		case !ok:
			_, err = j.Mknod(bg, RootIno, name, 0o644, 0, 0, 0)
			m[name] = []byte{}
		case r < 55:
			off := rng.Int64N(4 * crashBS)
			p := make([]byte, rng.Int64N(2*crashBS)+1)
			fillRand(uint64(c), p)
			if c%3 == 0 {
				for i := range p {
					p[i] &= 0x0f // compressible: small sealed blocks, staged as rows
				}
			}
			b := bytes.Clone(m[name])
			if end := off + int64(len(p)); end > int64(len(b)) {
				b = append(b, make([]byte, end-int64(len(b)))...)
			}
			copy(b[off:], p)
			m[name] = b
			j.OpenFile(ino)
			_, err = j.WriteAt(bg, ino, p, off)
			if err == nil && r < 35 {
				err = j.Flush(bg, ino) // close
			} else if err == nil {
				err = j.Fsync(bg, ino)
				fsynced = true
			}
			j.ReleaseFile(ino)
		case r < 65:
			size := rng.Int64N(4 * crashBS)
			b := bytes.Clone(m[name])
			if size < int64(len(b)) {
				b = b[:size]
			} else {
				b = append(b, make([]byte, size-int64(len(b)))...)
			}
			m[name] = b
			s := uint64(size)
			_, err = j.SetAttr(bg, ino, SetAttr{Size: &s})
		case r < 75:
			to := fmt.Sprintf("f%d", rng.IntN(crashFiles))
			if to != name {
				m[to] = m[name]
				delete(m, name)
				err = j.Rename(bg, RootIno, name, RootIno, to, 0)
			}
		case r < 85:
			delete(m, name)
			err = j.Unlink(bg, RootIno, name)
		case r < 92:
			err = j.Fsync(bg, RootIno) // fsync of the directory
			fsynced = true
		default:
			err = j.c.barrier(bg) // what the group committer does
		}
		if err != nil {
			t.Fatalf("op %d: %v", c, err)
		}
		hist = append(hist, m)
		done.Store(int64(c))
		if fsynced {
			lastFsync = c
		}
		if c%25 == 0 {
			powerCut(t, j, o, hist, lastFsync, &snapDB, &snapWAL, &snapLow, &snapDone)
			cuts++
		}
	}
	t.Logf("%d operations, %d power cuts", ops, cuts)
}

// powerCut builds the disk a power cut would leave (the database at the
// newest durable commit, the staging files as they are) in a new
// directory, opens it and checks it. The snapshot is read under wmu, so
// no durable commit (nor the staging removals after one) runs meanwhile.
func powerCut(t *testing.T, j *Journal, o Options, hist []map[string][]byte, lastFsync int, snapDB, snapWAL *[]byte, snapLow, snapDone *int64) {
	t.Helper()
	cut := filepath.Join(t.TempDir(), "journal")
	if err := os.MkdirAll(filepath.Join(cut, "staging"), 0o700); err != nil {
		t.Fatal(err)
	}
	j.wmu.Lock()
	low, k := *snapLow, *snapDone
	err := os.WriteFile(filepath.Join(cut, "journal.db"), *snapDB, 0o600)
	if err == nil && *snapWAL != nil {
		err = os.WriteFile(filepath.Join(cut, "journal.db-wal"), *snapWAL, 0o600)
	}
	if err == nil {
		err = os.CopyFS(filepath.Join(cut, "staging"), os.DirFS(filepath.Join(o.Dir, "staging")))
	}
	j.wmu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if low < 0 || low+1 < int64(lastFsync) {
		t.Fatalf("power cut after op %d: the newest durable commit began after op %d, but op %d was fsync'd", len(hist)-1, low, lastFsync)
	}
	o2 := o
	o2.Dir = cut
	j2, err := Open(bg, o2)
	if err != nil {
		t.Fatalf("power cut after op %d: the journal does not open: %v", len(hist)-1, err)
	}
	got := state(t, j2)
	if err := j2.Close(); err != nil {
		t.Fatal(err)
	}
	checkDB(t, cut)
	for c := low; c <= k+1; c++ {
		if c < int64(len(hist)) && equalState(got, hist[c]) {
			return
		}
	}
	t.Fatalf("power cut after op %d: the state is none of those after ops %d to %d\n got  %s\n want %s\n %s",
		len(hist)-1, low, k+1, describe(got), describe(hist[k]), diffState(got, hist[k]))
}

// TestUnlinkLeavesFreeingToReaper: unlink only removes the name; the
// reaper frees the inodes, their blocks and (after a durable commit)
// their staging files in the background.
func TestUnlinkLeavesFreeingToReaper(t *testing.T) { bubble(t, testUnlinkLeavesFreeingToReaper) }

func testUnlinkLeavesFreeingToReaper(t *testing.T) {
	passes := make(chan struct{}, 1)
	e := newEnv(t, func(o *Options) {
		o.reaped = func() {
			select {
			case passes <- struct{}{}:
			default:
			}
		}
	})
	j := e.j
	e.g.down.Store(true) // every block stays staged
	const files = 150
	p := make([]byte, 64<<10) // a staging file each (sealed > half a block)
	for i := range files {
		a := must[Attr](t)(j.Mknod(bg, RootIno, fmt.Sprintf("f%d", i), 0o644, 0, 0, 0))
		fillRand(uint64(i), p)
		j.OpenFile(a.Ino)
		must[int](t)(j.WriteAt(bg, a.Ino, p, 0))
		if err := j.Flush(bg, a.Ino); err != nil {
			t.Fatal(err)
		}
		j.ReleaseFile(a.Ino)
	}
	if err := j.Fsync(bg, RootIno); err != nil {
		t.Fatal(err)
	}
	count := func(q string) int {
		var n int
		if err := j.db.QueryRow(q).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	stagingFiles := func() int {
		ents, err := os.ReadDir(j.stage)
		if err != nil {
			t.Fatal(err)
		}
		return len(ents)
	}
	if n := stagingFiles(); n != files {
		t.Fatalf("%d staging files, want %d", n, files)
	}
	for i := range files {
		if err := j.Unlink(bg, RootIno, fmt.Sprintf("f%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	applyUnlinks(t, j)
	// Every unlink kicked the reaper after its commit, so a pass follows
	// the last one: wait for passes until no orphan is left.
	for count(`SELECT count(*) FROM inodes WHERE nlink = 0`) > 0 {
		select {
		case <-passes:
		case <-time.After(time.Minute): // a failure, not a measure
			t.Fatal("the reaper did not free the unlinked files")
		}
	}
	if n := count(`SELECT count(*) FROM blocks`); n != 0 {
		t.Fatalf("%d blocks left after the reaper freed every file", n)
	}
	if n := count(`SELECT count(*) FROM blockmap`); n != 0 {
		t.Fatalf("%d block map rows left", n)
	}
	if s := j.Stats(); s.QueuedBlocks != 0 {
		t.Errorf("upload queue after the reaper: %+v", s)
	}
	// The reaper's commits are ordinary: the files wait for a durable one.
	if err := j.Fsync(bg, RootIno); err != nil {
		t.Fatal(err)
	}
	if n := stagingFiles(); n != 0 {
		t.Fatalf("%d staging files left after a durable commit", n)
	}
	e.reopen()
}

// TestRepeatWarn: a group commit that fails every interval (a full disk)
// is logged at its first failure and then once a minute with the count,
// not every second; the recovery is reported once, with the count.
func TestRepeatWarn(t *testing.T) {
	var w repeatWarn
	t0 := time.Date(2026, 12, 7, 14, 0, 0, 0, time.UTC)
	var logged []int
	for s := 0; s <= 150; s++ { // a failure a second for 150 s
		if n, ok := w.fail(t0.Add(time.Duration(s) * time.Second)); ok {
			logged = append(logged, n)
		}
	}
	if want := []int{1, 61, 121}; !slices.Equal(logged, want) {
		t.Errorf("failures logged at counts %v, want %v (the first, then one a minute)", logged, want)
	}
	n, since, ok := w.ok()
	if !ok || n != 151 || !since.Equal(t0) {
		t.Errorf("recovery: %d failures since %v, reported %v; want 151 since %v, reported", n, since, ok, t0)
	}
	if _, _, ok := w.ok(); ok {
		t.Error("a second success reported a recovery again")
	}
	if n, ok := w.fail(t0.Add(200 * time.Second)); !ok || n != 1 {
		t.Errorf("the first failure after a recovery: count %d, logged %v; want 1, logged", n, ok)
	}
}

// TestGroupCommitFailingLog: the group committer on a disk that stays full
// for 150 s (its barrier fails every second, here by a trigger that
// answers sqlite's full-disk error) warns at the first failure and then
// once a minute with the count, says what to do, and logs its recovery
// once at Info. A failure that Close cut short is no recovery: before,
// the committer's last round, whose barrier failed as Close cancelled
// it, logged "works again" on its way out.
func TestGroupCommitFailingLog(t *testing.T) { bubble(t, testGroupCommitFailingLog) }

func testGroupCommitFailingLog(t *testing.T) {
	var logged logRecords
	e := newEnv(t, func(o *Options) { o.Logger = slog.New(&logged) })
	j := e.j
	full := func(on bool) {
		t.Helper()
		q := `DROP TRIGGER IF EXISTS temp.no_room`
		if on {
			q = `CREATE TEMP TRIGGER no_room BEFORE INSERT ON main.meta WHEN NEW.key = 'sync'
				BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END`
		}
		j.wmu.Lock()
		defer j.wmu.Unlock()
		if _, err := j.w.ExecContext(bg, q); err != nil {
			t.Fatal(err)
		}
	}
	const failed, works = "journal: group commit failed", "journal: group commit works again"

	full(true)
	must[Attr](t)(j.Mkdir(bg, RootIno, "d1", 0o755, 0, 0)) // starts the interval
	time.Sleep(150*time.Second + 500*time.Millisecond)     // 150 failures, a second apart
	synctest.Wait()
	warns := logged.find(failed)
	if got := counts(warns); !slices.Equal(got, []int64{1, 61, 121}) {
		t.Fatalf("warnings at failure counts %v, want [1 61 121] (the first, then one a minute)", got)
	}
	w := warns[0]
	if w.Level != slog.LevelWarn || !strings.Contains(w.Message, "free some room") ||
		!strings.Contains(attr(w, "err").String(), "disk is full") {
		t.Errorf("warning: %v %q err=%v; want a warning that names the cause and says to free room", w.Level, w.Message, attr(w, "err"))
	}
	if len(logged.find(works)) != 0 {
		t.Fatal("a recovery was logged while the group commit still failed")
	}

	full(false)
	time.Sleep(time.Second)
	synctest.Wait()
	must[Attr](t)(j.Mkdir(bg, RootIno, "d2", 0o755, 0, 0))
	time.Sleep(2 * time.Second) // a durable commit with nothing to report
	synctest.Wait()
	oks := logged.find(works)
	if got := counts(oks); !slices.Equal(got, []int64{150}) || oks[0].Level != slog.LevelInfo {
		t.Fatalf("recoveries logged with counts %v, want one at Info with 150", got)
	}
	if len(logged.find(failed)) != 3 {
		t.Fatalf("warnings after the recovery: %d, want the 3 before it", len(logged.find(failed)))
	}

	// Failing again; then a round whose barrier fails as Close cancels
	// the committer.
	full(true)
	must[Attr](t)(j.Mkdir(bg, RootIno, "d3", 0o755, 0, 0)) // applied, and so committed, UnlinkDelay later
	time.Sleep(1500 * time.Millisecond)
	synctest.Wait()
	if got := counts(logged.find(failed)); len(got) != 4 || got[3] != 1 {
		t.Fatalf("warnings at failure counts %v, want a 4th at 1", got)
	}
	j.wmu.Lock()
	j.durableStartHook = j.cancel
	j.wmu.Unlock()
	time.Sleep(time.Second)
	<-j.groupDone
	if got := counts(logged.find(works)); len(got) != 1 {
		t.Errorf("recoveries logged %v, want only the one before: a barrier that failed as Close cancelled it logged a recovery", got)
	}
	j.wmu.Lock()
	j.durableStartHook = nil
	j.wmu.Unlock()
	full(false)
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
}

// logRecords is a slog.Handler that keeps every record, for a test to
// look at. Safe for concurrent use.
type logRecords struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (l *logRecords) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecords) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *logRecords) WithGroup(string) slog.Handler            { return l }

func (l *logRecords) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.recs = append(l.recs, r.Clone())
	return nil
}

// find returns the records whose message begins with prefix.
func (l *logRecords) find(prefix string) []slog.Record {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []slog.Record
	for _, r := range l.recs {
		if strings.HasPrefix(r.Message, prefix) {
			out = append(out, r)
		}
	}
	return out
}

// attr returns r's attribute key (the zero Value when it has none).
func attr(r slog.Record, key string) slog.Value {
	var v slog.Value
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == key {
			v = a.Value
			return false
		}
		return true
	})
	return v
}

// counts returns the "failures" attribute of each record.
func counts(recs []slog.Record) []int64 {
	var out []int64
	for _, r := range recs {
		out = append(out, attr(r, "failures").Int64())
	}
	return out
}
