package journal

import (
	"os"
	"path/filepath"
	"testing"
)

// A data dir whose name holds URI syntax must keep its database inside it.
func TestOpenDBPathWithURISyntax(t *testing.T) { bubble(t, testOpenDBPathWithURISyntax) }

func testOpenDBPathWithURISyntax(t *testing.T) {
	base := t.TempDir()
	for _, name := range []string{"a#1", "b?x=1", "c%20d", "e f"} {
		dir := filepath.Join(base, name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		db, err := openDB(t.Context(), filepath.Join(dir, "journal.db"), false)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if _, err := db.Exec("CREATE TABLE t(x)"); err != nil {
			t.Fatal(err)
		}
		db.Close()
		if _, err := os.Stat(filepath.Join(dir, "journal.db")); err != nil {
			t.Fatalf("%s: database not inside its dir: %v", name, err)
		}
	}
	ents, _ := os.ReadDir(base)
	if len(ents) != 4 {
		t.Fatalf("stray files beside the data dirs: %v", ents)
	}
}
