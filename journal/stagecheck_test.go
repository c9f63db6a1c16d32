package journal

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

// TestCheckStaged: while the uploader retries its first segment (the grid
// is down), two files are staged: one in a staging file, one in a row of
// the database. A byte of each is flipped. CheckStaged finds both, names
// their files and marks nothing lost; with repair it marks both lost (as
// the uploader does). A byte of the first file's row is flipped too: the
// uploader holds a good copy of it, read before, so it is reported in
// flight and not marked lost, and its upload stores it.
func TestCheckStaged(t *testing.T) {
	bubble(t, func(t *testing.T) {
		e := newEnv(t, func(o *Options) { o.RetryMax = time.Hour })
		e.g.down.Store(true)
		rng := rand.New(rand.NewPCG(7, 7))
		write := func(name string, n int) Ino {
			f := must[Attr](t)(e.j.Mknod(bg, RootIno, name, 0o644, 0, 0, 0))
			b := make([]byte, n)
			for i := range b {
				b[i] = byte(rng.Uint32())
			}
			must[int](t)(e.j.WriteAt(bg, f.Ino, b, 0))
			if err := e.j.Fsync(bg, f.Ino); err != nil {
				t.Fatal(err)
			}
			return f.Ino
		}
		first := write("first", 100)
		time.Sleep(time.Minute) // the first segment is packed and fails
		synctest.Wait()
		if e.g.fails.Load() == 0 {
			t.Fatal("no upload failed: the test proves nothing")
		}
		// A staging file, a row (named in Latin-1: "\xe4" is not UTF-8).
		big, small := write("big", int(e.j.bs)), write("sm\xe4ll", 1000)
		synctest.Wait()

		files, _ := filepath.Glob(filepath.Join(e.j.stage, "*"))
		if len(files) != 1 {
			t.Fatalf("%d staging files, want big's: %v", len(files), files)
		}
		b := must[[]byte](t)(os.ReadFile(files[0]))
		b[len(b)/2] ^= 1
		if err := os.WriteFile(files[0], b, 0o600); err != nil {
			t.Fatal(err)
		}
		for _, ino := range []Ino{small, first} {
			var id, sealed []byte
			if err := e.j.db.QueryRow(`SELECT s.id, s.sealed FROM staged s JOIN blockmap m ON m.block = s.id WHERE m.ino = ?`, ino).Scan(&id, &sealed); err != nil {
				t.Fatal(err)
			}
			sealed[len(sealed)-3] ^= 1
			if _, err := e.j.db.Exec(`UPDATE staged SET sealed = ? WHERE id = ?`, sealed, id); err != nil {
				t.Fatal(err)
			}
		}

		var done, total int
		rep := must[*StagedCheck](t)(e.j.CheckStaged(bg, false, func(d, n int) { done, total = d, n }))
		if rep.Blocks != 3 || len(rep.Damaged) != 3 || done != 3 || total != 3 {
			t.Fatalf("check: %d blocks, %d damaged (%+v), progress %d of %d; want 3, 3, 3 of 3", rep.Blocks, len(rep.Damaged), rep.Damaged, done, total)
		}
		var named, hrefs []string
		for _, d := range rep.Damaged {
			named = append(named, fmt.Sprint(d.Paths, d.InFlight))
			hrefs = append(hrefs, fmt.Sprint(d.PathsHref))
			if d.Lost {
				t.Errorf("check without repair marked %s lost", d.Block)
			}
		}
		if got := strings.Join(named, " "); got != "[/first] true [/big] false [/sm\xe4ll] false" {
			t.Errorf("check named %q, want /first (in flight), /big, /sm\\xe4ll", got)
		}
		// The name that is not UTF-8 is named by its bytes too, for JSON.
		if got := strings.Join(hrefs, " "); got != "[] [] [/sm%E4ll]" {
			t.Errorf("check's paths_href: %q, want only /sm%%E4ll's", got)
		}
		for _, ino := range []Ino{big, small} {
			if st := must[FileStatus](t)(e.j.Status(bg, ino)); st.State == StateLost {
				t.Errorf("check without repair: file %d lost", ino)
			}
		}

		rep = must[*StagedCheck](t)(e.j.CheckStaged(bg, true, nil))
		if len(rep.Damaged) != 3 || rep.Damaged[0].Lost || !rep.Damaged[1].Lost || !rep.Damaged[2].Lost {
			t.Fatalf("check with repair: %+v", rep.Damaged)
		}
		for _, ino := range []Ino{big, small} {
			if st := must[FileStatus](t)(e.j.Status(bg, ino)); st.State != StateLost || st.LostBlocks != 1 {
				t.Errorf("after check with repair: file %d %+v, want lost", ino, st)
			}
		}
		if _, err := os.Stat(files[0]); !os.IsNotExist(err) {
			t.Errorf("the damaged staging file is still there: %v", err)
		}
		rep = must[*StagedCheck](t)(e.j.CheckStaged(bg, false, nil))
		if rep.Blocks != 1 || len(rep.Damaged) != 1 || !rep.Damaged[0].InFlight {
			t.Errorf("check after repair: %d blocks, damaged %+v; want the first file's, in flight", rep.Blocks, rep.Damaged)
		}
		// The good copy in flight is stored: the first file is whole.
		e.g.down.Store(false)
		e.j.RetryNow()
		synctest.Wait()
		if st := must[FileStatus](t)(e.j.Status(bg, first)); st.State == StateLost || st.PendingBlocks != 0 {
			t.Errorf("the first file after its upload: %+v", st)
		}
	})
}
