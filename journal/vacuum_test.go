package journal

import (
	"database/sql"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

// spaceFiles makes n files of 8 KiB of random bytes each in the root:
// with the grid down their sealed bytes stay in journal.db (staged rows),
// as a copy into a drive that has not uploaded yet leaves them.
func spaceFiles(t *testing.T, j *Journal, n int) {
	t.Helper()
	p := make([]byte, 8<<10)
	for i := range n {
		a := must[Attr](t)(j.Mknod(bg, RootIno, fmt.Sprintf("f%05d", i), 0o100644, 0, 0, 0))
		j.OpenFile(a.Ino)
		fillRand(uint64(i), p)
		must[int](t)(j.WriteAt(bg, a.Ino, p, 0))
		if err := j.Flush(bg, a.Ino); err != nil {
			t.Fatal(err)
		}
		j.ReleaseFile(a.Ino)
	}
}

// spaceDelete unlinks the n files spaceFiles made and frees them.
func spaceDelete(t *testing.T, e *env, n int) {
	t.Helper()
	for i := range n {
		if err := e.j.Unlink(bg, RootIno, fmt.Sprintf("f%05d", i)); err != nil {
			t.Fatal(err)
		}
	}
	e.reap()
}

// dbPages returns journal.db's pages and free pages, WAL included.
func dbPages(t *testing.T, j *Journal) (pages, free int) {
	t.Helper()
	return queryInt(t, j, "PRAGMA page_count"), queryInt(t, j, "PRAGMA freelist_count")
}

// fileSize is the size of the file at path.
func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// TestDeletesGiveSpaceBack: files made and then deleted leave journal.db
// at about its size before them, not at its peak: the group committer
// gives the free pages back in the background, and the file on disk
// shrinks once the WAL is checkpointed.
func TestDeletesGiveSpaceBack(t *testing.T) { bubble(t, testDeletesGiveSpaceBack) }

func testDeletesGiveSpaceBack(t *testing.T) {
	e := newEnv(t, nil)
	e.g.down.Store(true) // nothing uploads: the files' bytes stay in journal.db
	path := filepath.Join(e.opts.Dir, "journal.db")
	before, _ := dbPages(t, e.j)
	const n = 2000 // about 16 MiB of sealed bytes
	spaceFiles(t, e.j, n)
	time.Sleep(time.Minute) // the group commits, and whatever else the journal does by itself
	synctest.Wait()
	peak, _ := dbPages(t, e.j)
	if peak-before < n*2 {
		t.Fatalf("journal.db grew from %d to %d pages for %d files of 8 KiB; the test needs their bytes in it", before, peak, n)
	}

	spaceDelete(t, e, n)
	time.Sleep(time.Minute) // group commit rounds: each gives back up to vacuumRound steps
	synctest.Wait()
	pages, free := dbPages(t, e.j)
	t.Logf("journal.db: %d pages before the files, %d with them, %d after their delete (%d free)", before, peak, pages, free)
	if manyFree(int64(pages), int64(free)) || pages > before+(peak-before)/4 {
		t.Fatalf("after the delete of every file journal.db has %d pages, %d of them free (%d before the files, %d with them): the space was not given back",
			pages, free, before, peak)
	}

	// On disk: Close checkpoints the WAL into the file.
	if err := e.j.Close(); err != nil {
		t.Fatal(err)
	}
	e.j = nil
	if size := fileSize(t, path); size > int64(pages)*4096 {
		t.Fatalf("journal.db is %d bytes on disk after Close; its %d pages are %d", size, pages, pages*4096)
	}
	checkDB(t, e.opts.Dir)
}

// TestNewJournalIncremental: a new journal.db is made INCREMENTAL before
// its schema, so its first Open has nothing to convert (a VACUUM).
func TestNewJournalIncremental(t *testing.T) {
	path := filepath.Join(t.TempDir(), "journal.db")
	db, err := openDB(bg, path, false)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var mode int
	if err := db.QueryRow("PRAGMA auto_vacuum").Scan(&mode); err != nil || mode != 2 {
		t.Fatalf("a new journal.db has auto_vacuum %d (%v); want 2 (INCREMENTAL)", mode, err)
	}
}

// TestOldJournalConverted: a journal made before auto_vacuum=INCREMENTAL
// (auto_vacuum=NONE, its free pages kept in the file forever) is
// converted at Open: its free pages go at once, and it is INCREMENTAL
// from then on, as a new journal.
func TestOldJournalConverted(t *testing.T) {
	e := closedWithFiles(t)
	// Free pages: a table of 16 MiB made and dropped.
	path := filepath.Join(e.opts.Dir, "journal.db")
	free := makeOld(t, path,
		"CREATE TABLE filler(b BLOB)",
		"WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i < 2000) INSERT INTO filler SELECT randomblob(8192) FROM c",
		"DROP TABLE filler")
	if free < 2000 {
		t.Fatalf("the old journal has %d free pages; the test needs many", free)
	}
	old := fileSize(t, path)

	e.open()
	if got := queryInt(t, e.j, "PRAGMA auto_vacuum"); got != 2 {
		t.Fatalf("auto_vacuum is %d after Open of an old journal, want 2 (INCREMENTAL)", got)
	}
	if size := fileSize(t, path); size > old/4 {
		t.Fatalf("journal.db is %d bytes after its conversion, %d before with %d free pages", size, old, free)
	}
	// And it is the journal it was.
	filesIntact(t, e)
}

// TestOldJournalTooBigToConvert: an old journal whose live pages are
// over convertMax is opened as it is, not rewritten inside Open: a
// VACUUM of gigabytes on a slow disk outlasts the two minutes a mount's
// parent waits, and the kill would leave it to be tried at every mount.
func TestOldJournalTooBigToConvert(t *testing.T) {
	e := closedWithFiles(t)
	path := filepath.Join(e.opts.Dir, "journal.db")
	makeOld(t, path)
	old := fileSize(t, path)
	defer func(m int64) { convertMax = m }(convertMax)
	convertMax = old / 2 // the live pages are more than this
	e.open()
	if got := queryInt(t, e.j, "PRAGMA auto_vacuum"); got != 0 {
		t.Fatalf("auto_vacuum is %d after Open of an old journal over the limit, want 0 (left as it was)", got)
	}
	filesIntact(t, e)
}

// closedWithFiles returns a closed journal (grid down) holding 100 files
// of 8 KiB made by spaceFiles.
func closedWithFiles(t *testing.T) *env {
	e := newEnv(t, func(o *Options) { o.GroupCommit = time.Hour })
	e.g.down.Store(true)
	spaceFiles(t, e.j, 100)
	if err := e.j.Close(); err != nil {
		t.Fatal(err)
	}
	e.j = nil
	return e
}

// filesIntact checks closedWithFiles' files in the reopened journal, then
// deletes them and reopens it once more.
func filesIntact(t *testing.T, e *env) {
	t.Helper()
	for i := range 100 {
		a := must[Attr](t)(e.j.Lookup(bg, RootIno, fmt.Sprintf("f%05d", i)))
		if a.Size != 8<<10 {
			t.Fatalf("f%05d: %d bytes after the reopen, want %d", i, a.Size, 8<<10)
		}
	}
	spaceDelete(t, e, 100)
	e.reopen()
}

// makeOld turns the closed journal.db at path into what an older
// meshdrive made (auto_vacuum=NONE), runs then, and returns its free
// pages.
func makeOld(t *testing.T, path string, then ...string) (free int) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1) // the pragma and the VACUUM on one connection
	qs := append([]string{"PRAGMA auto_vacuum = NONE", "VACUUM", "PRAGMA journal_mode = WAL"}, then...)
	for _, q := range append(qs, "PRAGMA wal_checkpoint(TRUNCATE)") {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	var mode int
	db.QueryRow("PRAGMA auto_vacuum").Scan(&mode)
	db.QueryRow("PRAGMA freelist_count").Scan(&free)
	if mode != 0 {
		t.Fatalf("the old journal has auto_vacuum %d; the test needs NONE (0)", mode)
	}
	return free
}

// TestOldJournalOnFullDisk: the conversion of an old journal at Open
// needs free disk about its size for the WAL; on a disk with less, the
// VACUUM fails, and the journal is used as it is. The WAL that VACUUM
// grew until the disk was full is cut back, not left filling the disk
// until the journal's Close (its background checkpoints do not truncate
// it): a mount that found its disk nearly full left it full, and every
// write of dirty data then failed.
func TestOldJournalOnFullDisk(t *testing.T) {
	small := mountTmpfs(t, "16m")
	e := newEnv(t, func(o *Options) {
		o.Dir = filepath.Join(small, "journal")
		o.GroupCommit = time.Hour
	})
	e.g.down.Store(true) // the files' bytes stay in journal.db
	spaceFiles(t, e.j, 500)
	if err := e.j.Close(); err != nil {
		t.Fatal(err)
	}
	e.j = nil
	path := filepath.Join(e.opts.Dir, "journal.db")
	makeOld(t, path)
	size := fileSize(t, path)
	// Leave the disk less free space than the conversion needs.
	ballast := filepath.Join(small, "other")
	fill(t, ballast)
	const left = 1 << 20
	if err := os.Truncate(ballast, fileSize(t, ballast)-left); err != nil {
		t.Fatal(err)
	}
	if size < 2*left {
		t.Fatalf("journal.db is %d bytes; the test needs more than %d, the free disk, for its conversion to fail", size, 2*left)
	}

	e.open()
	if got := queryInt(t, e.j, "PRAGMA auto_vacuum"); got != 0 {
		t.Fatalf("auto_vacuum is %d after Open on a disk with %d bytes free for %d of journal.db; the test needs the conversion to fail", got, left, size)
	}
	if wal := fileSize(t, path+"-wal"); wal > left/2 {
		t.Errorf("journal.db-wal is %d bytes after a conversion that failed, of the %d bytes the disk had free", wal, left)
	}
	// The journal is as it was, and writes.
	for i := range 500 {
		a := must[Attr](t)(e.j.Lookup(bg, RootIno, fmt.Sprintf("f%05d", i)))
		if a.Size != 8<<10 {
			t.Fatalf("f%05d: %d bytes after Open, want %d", i, a.Size, 8<<10)
		}
	}
	os.Remove(ballast)
	e.reopen()
}

// TestVacuumOnFullDiskBacksOff: on a full disk the background give-back
// of free pages fails (its incremental_vacuum grows the WAL). It must not
// be tried again at every group commit, each time with a warning and
// each time taking the disk's last bytes for a WAL that cannot hold it:
// it warns once and waits (a minute at first, longer after each
// failure), and once the disk has room again it gives the pages back.
func TestVacuumOnFullDiskBacksOff(t *testing.T) { bubble(t, testVacuumOnFullDiskBacksOff) }

func testVacuumOnFullDiskBacksOff(t *testing.T) {
	small := mountTmpfs(t, "32m")
	ballast := filepath.Join(small, "ballast")
	logName := filepath.Join(t.TempDir(), "log")
	logf := must[*os.File](t)(os.Create(logName))
	t.Cleanup(func() { logf.Close() })
	e := newEnv(t, func(o *Options) {
		o.Dir = filepath.Join(small, "journal")
		o.Logger = slog.New(slog.NewTextHandler(logf, nil))
	})
	// 6 MiB of free pages, and a WAL of no size, so that giving them back
	// needs new disk space.
	e.j.wmu.Lock()
	for _, q := range []string{"CREATE TABLE filler(b BLOB)",
		"WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i < 1500) INSERT INTO filler SELECT randomblob(4000) FROM c",
		"DROP TABLE filler", "PRAGMA wal_checkpoint(TRUNCATE)"} {
		if _, err := e.j.w.ExecContext(bg, q); err != nil {
			e.j.wmu.Unlock()
			t.Fatalf("%s: %v", q, err)
		}
	}
	e.j.wmu.Unlock()
	if pages, free := dbPages(t, e.j); !manyFree(int64(pages), int64(free)) {
		t.Fatalf("journal.db has %d pages, %d free: the test needs many free", pages, free)
	}
	// Every commit so far durable: the group commits' barriers have
	// nothing to write (a barrier that fails retries, and warns, at every
	// group commit; not the give-back's business).
	if err := e.j.c.barrier(bg); err != nil {
		t.Fatal(err)
	}
	fill(t, ballast)
	const rounds = 20
	for range rounds { // group commits, a second apart
		e.j.c.kickGroup()
		time.Sleep(2 * time.Second)
		synctest.Wait()
	}
	log := string(must[[]byte](t)(os.ReadFile(logName)))
	if n := strings.Count(log, "cannot give free space in journal.db back"); n != 1 {
		t.Fatalf("%d group commits on a full disk warned %d times that the free pages cannot be given back, want once:\n%s", rounds, n, log)
	}
	if err := os.Remove(ballast); err != nil {
		t.Fatal(err)
	}
	for range 10 { // past the wait, which is at most two minutes
		e.j.c.kickGroup()
		time.Sleep(time.Minute)
		synctest.Wait()
	}
	if pages, free := dbPages(t, e.j); manyFree(int64(pages), int64(free)) {
		t.Fatalf("with room again journal.db has %d pages, %d free: they were not given back", pages, free)
	}
}
