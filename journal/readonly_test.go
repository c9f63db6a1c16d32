package journal

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// TestReadOnlyOpenOfNewJournal: a read-only open of a directory that holds
// no journal yet (a new drive mounted read-only first), or only the empty
// database such an open used to leave behind, shows an empty root, refuses
// writes, and a later read-write open and read-only open both work on it.
func TestReadOnlyOpenOfNewJournal(t *testing.T) { bubble(t, testReadOnlyOpenOfNewJournal) }

func testReadOnlyOpenOfNewJournal(t *testing.T) {
	ctx := context.Background()
	for _, leftover := range []bool{false, true} {
		dir := filepath.Join(t.TempDir(), "journal")
		if leftover {
			// The empty database (user_version 0) an earlier read-only open
			// made before it failed.
			if err := os.MkdirAll(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			db, err := openDB(ctx, filepath.Join(dir, "journal.db"), true)
			if err != nil {
				t.Fatal(err)
			}
			db.Close()
		}
		ro := Options{Dir: dir, Sealer: testSealer(t), BlockSize: 64 << 10, Quota: 1 << 30, ReadOnly: true}
		j, err := Open(ctx, ro)
		if err != nil {
			t.Fatalf("leftover=%v: read-only open of a new journal: %v", leftover, err)
		}
		root, err := j.GetAttr(ctx, RootIno)
		if err != nil || root.Mode&sIFDIR == 0 {
			t.Fatalf("root of a new read-only journal: %+v %v", root, err)
		}
		if ents, err := j.ReadDir(ctx, RootIno, 0, 10); err != nil || len(ents) != 0 {
			t.Fatalf("root of a new read-only journal lists %v (%v)", ents, err)
		}
		_, err = j.Mknod(ctx, RootIno, "f", 0o644, 0, 0, 0)
		wantErr(t, err, ErrReadOnly)
		if err := j.Close(); err != nil {
			t.Fatal(err)
		}

		// Read-write afterwards: the schema is the real one.
		rw := ro
		rw.ReadOnly, rw.Grid = false, newFakeGrid("")
		j, err = Open(ctx, rw)
		if err != nil {
			t.Fatalf("read-write open after a read-only one: %v", err)
		}
		if _, err := j.Mknod(ctx, RootIno, "f", 0o644, 0, 0, 0); err != nil {
			t.Fatal(err)
		}
		if err := j.Close(); err != nil {
			t.Fatal(err)
		}
		checkDB(t, dir)

		// Read-only again: sees the file, and a wrong block size is still refused.
		j, err = Open(ctx, ro)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := j.Lookup(ctx, RootIno, "f"); err != nil {
			t.Errorf("read-only reopen: %v", err)
		}
		j.Close()
		bad := ro
		bad.BlockSize = 128 << 10
		if j, err := Open(ctx, bad); err == nil {
			j.Close()
			t.Error("read-only open with another block size succeeded")
		}
	}
}
