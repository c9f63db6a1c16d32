package journal

import (
	"errors"
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
