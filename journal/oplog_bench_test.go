package journal

import (
	"database/sql"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkOpLog compares the journal's operation log, the deferred
// creates and unlinks (creates.go, unlinks.go), with the simplest log one
// could put in its place: n creates, then n unlinks, in one directory,
// by this process's CPU time per operation.
//
// journal: Journal.Mknod and Journal.Unlink as they are. Each operation
// is a record appended to the unlink log with one write() (what a kill
// -9 cannot lose: the bytes are in the kernel's page cache once write
// returns) and kept in memory; the unlinker applies the records
// UnlinkDelay after the first, in transactions of unlinkerBatch records,
// each kind in a few statements whatever their number (applyCreates,
// applyUnlinkRecs). oplogJournal applies what it has not reached when
// the calls end, so the figure is the whole cost. Replay at Open and the
// reads that answer from the pending records are not exercised.
//
// logN: a record appended the same way, then the three statements an
// operation of the synchronous way (namespace.create, namespace.Unlink),
// in transactions of N operations. log1 is about what a create or unlink
// costs that the journal does not defer (deferCreate, deferUnlink say
// which), plus the record's write; log16 and log256 batch the commits
// alone.
//
// So journal against log1 is what the deferral saves an operation, and
// journal against log256 what applying many records in a few statements
// saves beyond batching the commits alone:
//
//	go test -run '^$' -bench OpLog -benchtime 1x ./journal/
//
// It reports µs of CPU per operation for the journal (journal-µs/op; the
// wall time of its calls, what their callers waited, as
// journal-wall-µs/op) and for each batch size (logN-µs/op).
func BenchmarkOpLog(b *testing.B) {
	const n = 4000
	for range b.N {
		for _, op := range []string{"create", "unlink"} {
			// The journal as it is.
			e, dir := oplogEnv(b, op, n)
			cpu, wall := oplogJournal(b, e.j, op, dir.Ino, n)
			b.ReportMetric(float64(cpu.Microseconds())/n, op+"-journal-µs/op")
			b.ReportMetric(float64(wall.Microseconds())/n, op+"-journal-wall-µs/op")

			for _, batch := range []int{1, 16, 256} {
				e, dir := oplogEnv(b, op, n)
				t0 := cpuTime()
				oplogRun(b, e.j, op, dir.Ino, n, batch)
				b.ReportMetric(float64((cpuTime()-t0).Microseconds())/n, fmt.Sprintf("%s-log%d-µs/op", op, batch))
			}
		}
	}
}

// oplogJournal does n creates or unlinks in dir the journal's way. They
// are logged, and the unlinker applies them in the background, UnlinkDelay
// after the first: the ones it has not reached when the calls end (a
// quarter or more of them) are applied here, so that the CPU time it
// returns counts the sqlite work of all n, as oplogRun's does. The wall
// time is that of the calls alone: what their callers waited.
func oplogJournal(b testing.TB, j *Journal, op string, dir Ino, n int) (cpu, wall time.Duration) {
	t0, w0 := cpuTime(), time.Now()
	for i := range n {
		name := fmt.Sprintf("f%07d", i)
		var err error
		if op == "create" {
			_, err = j.Mknod(bg, dir, name, 0o100644, 0, 0, 0)
		} else {
			err = j.Unlink(bg, dir, name)
		}
		if err != nil {
			b.Fatal(err)
		}
	}
	wall = time.Since(w0)
	applyUnlinks(b, j)
	return cpuTime() - t0, wall
}

// oplogEnv is a journal with a directory d, holding n files for unlink,
// all in the database: mkdir and mknod are deferred creates (creates.go),
// which oplogRun's statements, outside the journal's transactions, would
// not find.
func oplogEnv(b testing.TB, op string, n int, mods ...func(*Options)) (*env, Attr) {
	e := newEnv(b, func(o *Options) {
		o.IdleFlush = time.Hour
		for _, mod := range mods {
			mod(o)
		}
	})
	dir := must[Attr](b)(e.j.Mkdir(bg, RootIno, "d", 0o755, 0, 0))
	if op == "unlink" {
		for i := range n {
			must[Attr](b)(e.j.Mknod(bg, dir.Ino, fmt.Sprintf("f%07d", i), 0o100644, 0, 0, 0))
		}
	}
	applyUnlinks(b, e.j)
	return e, dir
}

// oplogRun does n creates or unlinks in dir the operation log's way:
// a record per operation written to a log file with one write(), the
// statements in one transaction per batch.
func oplogRun(b *testing.B, j *Journal, op string, dir Ino, n, batch int) {
	f, err := os.OpenFile(filepath.Join(b.TempDir(), "oplog"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	// Fail only once oplogApply has let go of wmu and its transaction:
	// the cleanup's Close waits for both.
	if err := oplogApply(j, f, op, dir, n, batch); err != nil {
		b.Fatal(err)
	}
}

// oplogApply is oplogRun's work, log records into f. It holds wmu and,
// between commits, a transaction of j.w; it returns holding neither,
// the transaction a failure left open rolled back.
func oplogApply(j *Journal, f *os.File, op string, dir Ino, n, batch int) error {
	j.wmu.Lock()
	defer j.wmu.Unlock()
	var tx *sql.Tx
	defer func() {
		if tx != nil {
			tx.Rollback()
		}
		j.commitGen.Add(1) // the caches must not keep rows read before these commits
	}()
	rec := make([]byte, 0, 64)
	for i := range n {
		name := fmt.Sprintf("f%07d", i)
		// The record: op, parent, name (and, for a create, what the
		// reply says: mode, time); one write.
		rec = binary.AppendUvarint(rec[:0], uint64(len(op)))
		rec = binary.AppendUvarint(rec, uint64(dir))
		rec = binary.AppendUvarint(rec, uint64(time.Now().UnixNano()))
		rec = append(rec, name...)
		if _, err := f.Write(rec); err != nil {
			return fmt.Errorf("oplog: write the record of %s %s: %w", op, name, err)
		}
		if tx == nil {
			var err error
			if tx, err = j.w.BeginTx(bg, nil); err != nil {
				return fmt.Errorf("oplog: begin a transaction: %w", err)
			}
		}
		if err := oplogStatements(j, tx, op, dir, name); err != nil {
			return fmt.Errorf("oplog: %s %s: %w", op, name, err)
		}
		if (i+1)%batch == 0 || i == n-1 {
			err := tx.Commit()
			tx = nil
			if err != nil {
				return fmt.Errorf("oplog: commit: %w", err)
			}
		}
	}
	return nil
}

// oplogStatements runs in tx the statements of Journal.create (op
// "create") or Journal.Unlink of name in dir.
func oplogStatements(j *Journal, tx *sql.Tx, op string, dir Ino, name string) error {
	now := nowNS()
	if op == "create" {
		if _, err := scanAttr(j.c.tqrow(bg, tx, `UPDATE inodes SET mtime = ?, ctime = ?, nlink = nlink + ? WHERE ino = ? AND mode & ? = ?
			RETURNING `+strings.ReplaceAll(attrCols, "i.", ""), now, now, 0, dir, sIFMT, sIFDIR)); err != nil {
			return err
		}
		res, err := j.c.texec(bg, tx, `INSERT INTO inodes(mode, uid, gid, rdev, nlink, size, atime, mtime, ctime)
			VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?)`, 0o100644, 0, 0, 0, 1, 0, now, now, now)
		if err != nil {
			return err
		}
		id, _ := res.LastInsertId()
		_, err = j.c.texec(bg, tx, `INSERT INTO entries(parent, name, ino) VALUES(?, ?, ?)`, dir, name, id)
		return err
	}
	var ino Ino
	if err := j.c.tqrow(bg, tx, `DELETE FROM entries WHERE parent = ? AND name = ? RETURNING ino`, dir, name).Scan(&ino); err != nil {
		return err
	}
	var mode uint32
	if err := j.c.tqrow(bg, tx, `DELETE FROM inodes WHERE ino = ?1 AND nlink = 1 AND mode & ?2 != ?3
		AND NOT EXISTS(SELECT 1 FROM blockmap WHERE ino = ?1) RETURNING mode`, ino, sIFMT, sIFDIR).Scan(&mode); err != nil {
		return err
	}
	_, err := scanAttr(j.c.tqrow(bg, tx, `UPDATE inodes SET mtime = ?1, ctime = ?1 WHERE ino = ?2
		RETURNING `+strings.ReplaceAll(attrCols, "i.", ""), now, dir))
	return err
}

// TestOpLogRunFails: a failure inside oplogRun's transaction (an unlink
// of a name that is not there) fails the benchmark, and the journal still
// closes: oplogRun rolls back and unlocks before it fails, where a
// b.Fatal with the transaction open left the journal's Close (the
// benchmark's cleanup) waiting for it for ever.
func TestOpLogRunFails(t *testing.T) {
	var ran atomic.Bool
	done := make(chan testing.BenchmarkResult, 1)
	go func() {
		done <- testing.Benchmark(func(b *testing.B) {
			e, dir := oplogEnv(b, "create", 0) // no files: the first unlink fails
			ran.Store(true)
			oplogRun(b, e.j, "unlink", dir.Ino, 1, 1)
		})
	}()
	select {
	case r := <-done:
		if !ran.Load() {
			t.Fatal("the benchmark failed before oplogRun: oplogEnv could not make its journal")
		}
		if r.N != 0 {
			t.Fatalf("oplogRun unlinked a file that is not there (%d runs); want it to fail", r.N)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("oplogRun's failure did not end within 30 s: its cleanup (the journal's Close) waits for what it left held")
	}
}

// TestOpLogRun: oplogApply's statements work on what oplogEnv makes (its
// directory, and files to unlink, were deferred creates the statements
// did not find): n creates leave n names in the directory, n unlinks none.
func TestOpLogRun(t *testing.T) {
	const n = 5
	for _, op := range []string{"create", "unlink"} {
		e, dir := oplogEnv(t, op, n)
		f, err := os.Create(filepath.Join(t.TempDir(), "oplog"))
		if err != nil {
			t.Fatal(err)
		}
		err = oplogApply(e.j, f, op, dir.Ino, n, 2)
		f.Close()
		if err != nil {
			t.Fatalf("%s: %v", op, err)
		}
		ents := must[[]DirEntry](t)(e.j.ReadDir(bg, dir.Ino, 0, 100))
		want := map[string]int{"create": n, "unlink": 0}[op]
		if len(ents) != want {
			t.Fatalf("%s: %d names in the directory after %d of them, want %d", op, len(ents), n, want)
		}
	}
}

// TestOpLogJournalAppliesAll: oplogJournal's CPU time counts the apply
// of every operation it logged, not only of those the unlinker reached
// during the calls: nothing is pending when it returns, and the database
// holds what the operations made.
func TestOpLogJournalAppliesAll(t *testing.T) {
	const n = 5
	for _, op := range []string{"create", "unlink"} {
		// The unlinker waits an hour: without oplogJournal's own apply
		// every operation would still be pending.
		e, dir := oplogEnv(t, op, n, func(o *Options) { o.UnlinkDelay = time.Hour })
		oplogJournal(t, e.j, op, dir.Ino, n)
		if p := e.j.unl.unlN.Load(); p != 0 {
			t.Fatalf("%s: %d of %d operations still pending when oplogJournal returns: its CPU time left out their apply", op, p, n)
		}
		var rows int
		if err := e.j.db.QueryRowContext(bg, `SELECT count(*) FROM entries WHERE parent = ?`, dir.Ino).Scan(&rows); err != nil {
			t.Fatal(err)
		}
		want := map[string]int{"create": n, "unlink": 0}[op]
		if rows != want {
			t.Fatalf("%s: %d entries in the database after %d of them, want %d", op, rows, n, want)
		}
	}
}
