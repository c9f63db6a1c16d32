package journal

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDamagedDatabaseSaysWhatToDo: a journal.db the local disk damaged
// fails the open with sqlite's word for it and what to do.
func TestDamagedDatabaseSaysWhatToDo(t *testing.T) {
	e := newEnv(t, nil)
	if err := e.j.Close(); err != nil {
		t.Fatal(err)
	}
	e.j = nil
	path := filepath.Join(e.opts.Dir, "journal.db")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path + "-wal"); err == nil {
		t.Skip("journal.db not checkpointed at Close")
	}
	if !bytes.Contains(b, []byte("CREATE TABLE inodes")) {
		t.Fatal("no schema text to damage")
	}
	b = bytes.ReplaceAll(b, []byte("CREATE TABLE inodes"), []byte("CREATE TABLX inodes"))
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	j, err := Open(bg, e.opts)
	if err == nil {
		j.Close()
		t.Fatal("a damaged journal.db opened")
	}
	if !strings.Contains(err.Error(), "malformed") || !strings.Contains(err.Error(), "meshdrive recover") {
		t.Fatalf("the error does not say what to do: %v", err)
	}
}
