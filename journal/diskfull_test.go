package journal

import (
	"fmt"
	"strings"
	"testing"
)

// TestDiskFullIsErrDiskFull: when the journal's disk has no room for a
// change, sqlite answers SQLITE_FULL ("database or disk is full"), made
// here with max_page_count. The change fails with ErrDiskFull, which fs
// answers as ENOSPC, not EIO: on a full disk rm and ls said
// "Input/output error", as if the drive were damaged. Nothing is lost:
// with room again the same change succeeds.
func TestDiskFullIsErrDiskFull(t *testing.T) {
	e := newEnv(t, nil)
	var pages int64
	if err := e.j.w.QueryRowContext(bg, "PRAGMA page_count").Scan(&pages); err != nil {
		t.Fatal(err)
	}
	if _, err := e.j.w.ExecContext(bg, fmt.Sprintf("PRAGMA max_page_count = %d", pages)); err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("x", 200)
	var err error
	made := 0
	for ; made < 100000; made++ {
		if _, err = e.j.Mkdir(bg, RootIno, fmt.Sprintf("d%06d-%s", made, long), 0o755, 0, 0); err != nil {
			break
		}
	}
	wantErr(t, err, ErrDiskFull)
	if _, err := e.j.w.ExecContext(bg, fmt.Sprintf("PRAGMA max_page_count = %d", 1<<30)); err != nil {
		t.Fatal(err)
	}
	name := fmt.Sprintf("d%06d-%s", made, long)
	must[Attr](t)(e.j.Mkdir(bg, RootIno, name, 0o755, 0, 0))
	ents := must[[]DirEntry](t)(e.j.ReadDir(bg, RootIno, 0, 1<<20))
	if len(ents) < made+1 {
		t.Fatalf("%d entries after %d mkdirs, want at least %d", len(ents), made+1, made+1)
	}
	e.reopen()
}
