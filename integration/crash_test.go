package integration

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestCrash SIGKILLs the mount process in the middle of work and checks,
// each time, that the journal database passes its integrity check, that
// the drive mounts again, that every acknowledged byte is there (fsync'd,
// or of a file closed without fsync: a kill -9 loses no closed file) and
// that the uploader finishes (meshdrive sync returns).
func TestCrash(t *testing.T) {
	requireEnv(t, "fio")
	s := newSuite(t, "crash")
	rounds := 1
	if *long {
		rounds = 3
	}
	var kills atomic.Int64
	var verified atomic.Int64
	for r := range rounds {
		suffix := ""
		if rounds > 1 {
			suffix = fmt.Sprintf("-round%d", r+1) // not "#N": the temp dirs are named after the test
		}
		s.run(t, "fio-sync-write"+suffix, func(t *testing.T) { crashFio(t, &kills, &verified) })
		s.run(t, "upload-in-flight"+suffix, func(t *testing.T) { crashUpload(t, &kills, &verified) })
		s.run(t, "rename-storm"+suffix, func(t *testing.T) { crashRename(t, &kills, &verified) })
		s.run(t, "truncate"+suffix, func(t *testing.T) { crashTruncate(t, &kills, &verified) })
		s.run(t, "closed-files"+suffix, func(t *testing.T) { crashClosed(t, &kills, &verified) })
	}
	s.figure("SIGKILLs of the mount process survived: %d; bytes verified after the kills: %s; acknowledged bytes lost: 0 unless a subtest failed",
		kills.Load(), mib(verified.Load()))
}

// afterCrash is the common check after a SIGKILL: journal integrity on a
// copy of the database, mount again, sync returns.
func afterCrash(t *testing.T, d *drive, kills *atomic.Int64) {
	t.Helper()
	d.checkJournal(t)
	d.mount(t, nil)
	kills.Add(1)
}

// finish syncs, unmounts and checks the journal once more.
func finish(t *testing.T, d *drive) {
	t.Helper()
	start := time.Now()
	d.sync(t, 3*time.Minute)
	t.Logf("sync after the crash took %v", time.Since(start).Round(time.Millisecond))
	st := d.status(t)
	if st.Uploads.Bytes != 0 || st.Uploads.Files != 0 {
		t.Errorf("after sync the upload queue still holds %d bytes in %d files", st.Uploads.Bytes, st.Uploads.Files)
	}
	d.unmount(t)
	d.checkJournal(t)
}

// crashFio: fio writes 4 KiB blocks at random offsets with O_SYNC and
// saves its verify state when the write fails; the mount process is killed
// mid-run; after remounting, fio re-reads every write it had completed.
func crashFio(t *testing.T, kills, verified *atomic.Int64) {
	d := newDrive(t, driveOptions{})
	d.mount(t, nil)
	work := t.TempDir()
	// Two writers, 64 KiB O_SYNC writes at random offsets of their own
	// file. (Each synchronous write seals whole 4 MiB blocks in the
	// journal, so 4 KiB writes would make too few writes to be a test.)
	// The files are sparse and big enough that fio cannot finish before
	// the kill however fast the drive gets.
	job := fioJob{"crash", []string{"--rw=randwrite", "--bs=64k", "--size=512m", "--sync=1", "--numjobs=2",
		"--fallocate=truncate", "--verify_state_save=1"}}
	type result struct {
		res fioResult
		err error
	}
	ch := make(chan result, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	go func() {
		res, err := runFio(ctx, work, d.mnt, job, "--do_verify=0")
		ch <- result{res, err}
	}()
	// Let fio get going: wait until the file has taken writes, then a
	// little more at random.
	err := waitFor(time.Minute, "fio to start writing", func() (bool, error) {
		select {
		case r := <-ch:
			ch <- r
			return false, fmt.Errorf("fio ended before the kill: %v\n%s", r.err, fioErrors(r.res.out))
		default:
		}
		m, _ := filepath.Glob(d.path("crash.*"))
		return len(m) == 2, nil
	})
	if err != nil {
		t.Fatalf("%v", err)
	}
	time.Sleep(1500*time.Millisecond + rand.N(2*time.Second)) // the kill point
	d.crash(t)
	r := <-ch
	if r.err == nil {
		t.Fatalf("fio finished before the kill; make the job bigger")
	}
	if r.res.writeIOs == 0 {
		t.Fatalf("fio completed no write before the kill:\n%s", fioErrors(r.res.out))
	}
	t.Logf("fio completed %d synchronous writes before the kill", r.res.writeIOs)
	state, _ := filepath.Glob(filepath.Join(work, "*verify.state"))
	if len(state) != 2 {
		t.Fatalf("fio saved %d verify states in %s, want 2", len(state), work)
	}
	afterCrash(t, d, kills)
	vctx, vcancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer vcancel()
	res, err := runFio(vctx, work, d.mnt, job, "--verify_only", "--verify_state_load=1")
	if err != nil {
		t.Fatalf("acknowledged writes did not survive the kill: %v", err)
	}
	if res.readBytes == 0 {
		t.Fatalf("fio --verify_only --verify_state_load verified nothing:\n%s", lastLines(res.out, 20))
	}
	t.Logf("verified %s of acknowledged writes after the kill", mib(res.readBytes))
	verified.Add(res.readBytes)
	finish(t, d)
}

// crashUpload: the uploader is shipping shards to six node processes
// through proxies that pace them at 1 MiB/s each, when the mount process
// dies with shard bytes on the wire; after remounting the uploader
// finishes and every file reads back from the grid.
func crashUpload(t *testing.T, kills, verified *atomic.Int64) {
	nodes := startNodes(t, 6)
	var pxs []*countProxy
	var urls []string
	for _, n := range nodes {
		p := startCountProxy(t, n.addr, 1<<20)
		pxs = append(pxs, p)
		urls = append(urls, p.url())
	}
	sent := func() int64 {
		var n int64
		for _, p := range pxs {
			n += p.up.Load()
		}
		return n
	}
	d := newDrive(t, driveOptions{Nodes: urls, K: 4, M: 2})
	d.mount(t, nil)
	before := sent()
	files := makeFiles("upload/f", 3, 8<<20, 21)
	files.write(t, d.mnt)
	err := waitFor(time.Minute, "4 MiB of shards on the wire", func() (bool, error) {
		if sent()-before < 4<<20 {
			return false, nil
		}
		st := d.status(t)
		if st.Uploads.Bytes == 0 {
			return false, fmt.Errorf("the upload finished before the kill (status %+v)", st.Uploads)
		}
		return true, nil
	})
	if err != nil {
		t.Fatalf("%v", err)
	}
	t.Logf("killing with %s of shard bytes sent", mib(sent()-before))
	d.crash(t)
	killedAt := sent()
	afterCrash(t, d, kills)
	st := d.status(t)
	t.Logf("after remount: %s queued, %s more shard bytes sent since the kill", mib(st.Uploads.Bytes), mib(sent()-killedAt))
	d.sync(t, 3*time.Minute)
	t.Logf("the finished upload sent %s of shard bytes after the kill", mib(sent()-killedAt))
	d.unmount(t)
	d.mount(t, nil)
	d.cacheClear(t)
	verified.Add(files.check(t, d.mnt))
	finish(t, d)
}

// crashRename: four goroutines rename 200 small files between four places
// (two names in two directories) when the mount process dies. Renames are
// atomic: afterwards every file is in exactly one place, whole.
func crashRename(t *testing.T, kills, verified *atomic.Int64) {
	d := newDrive(t, driveOptions{})
	d.mount(t, nil)
	const n = 200
	places := func(i int) []string {
		return []string{
			filepath.Join("a", fmt.Sprintf("f-%03d", i)), filepath.Join("a", fmt.Sprintf("g-%03d", i)),
			filepath.Join("b", fmt.Sprintf("f-%03d", i)), filepath.Join("b", fmt.Sprintf("g-%03d", i)),
		}
	}
	body := func(i int) []byte { return bytes.Repeat([]byte(fmt.Sprintf("file %03d\n", i)), 400) }
	for _, dir := range []string{"a", "b"} {
		if err := os.Mkdir(d.path(dir), 0o755); err != nil {
			t.Fatalf("%v", err)
		}
	}
	for i := range n {
		f, err := os.Create(d.path(places(i)[0]))
		if err == nil {
			_, err = f.Write(body(i))
		}
		if err == nil {
			err = f.Sync()
		}
		if err == nil {
			err = f.Close()
		}
		if err != nil {
			t.Fatalf("create file %d: %v", i, err)
		}
	}
	var renames atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			where := map[int]int{} // id -> index in places(id); this goroutine owns ids with id%4 == g
			for {
				select {
				case <-stop:
					return
				default:
				}
				i := g + 4*rand.N(n/4)
				from := where[i]
				to := (from + 1 + rand.N(3)) % 4
				if err := os.Rename(d.path(places(i)[from]), d.path(places(i)[to])); err != nil {
					return // the mount is gone
				}
				where[i] = to
				renames.Add(1)
			}
		}()
	}
	err := waitFor(time.Minute, "500 renames", func() (bool, error) { return renames.Load() >= 500, nil })
	if err != nil {
		close(stop)
		wg.Wait()
		t.Fatalf("%v (got %d)", err, renames.Load())
	}
	d.crash(t)
	close(stop)
	wg.Wait()
	t.Logf("%d renames before the kill", renames.Load())
	afterCrash(t, d, kills)
	var found int64
	for i := range n {
		var at []string
		for _, p := range places(i) {
			b, err := os.ReadFile(d.path(p))
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			if err != nil {
				t.Errorf("read %s: %v", p, err)
				continue
			}
			if !bytes.Equal(b, body(i)) {
				t.Errorf("%s: %d bytes, content differs from file %d's", p, len(b), i)
			}
			at = append(at, p)
			found += int64(len(b))
		}
		if len(at) != 1 {
			t.Errorf("file %d is in %d places %v, want exactly 1", i, len(at), at)
		}
	}
	verified.Add(found)
	finish(t, d)
}

// crashTruncate: a goroutine truncates a file down and writes it back up,
// fsyncing each time, when the mount process dies. Afterwards the file's
// first MiB (never truncated) is intact and every byte is either the
// pattern or zero; a file written before is untouched.
func crashTruncate(t *testing.T, kills, verified *atomic.Int64) {
	d := newDrive(t, driveOptions{})
	d.mount(t, nil)
	const size = 16 << 20
	pat := content{seed: 77, size: size}
	other := fileSet{"untouched": content{seed: 78, size: 4 << 20}}
	other.write(t, d.mnt)
	if err := writeContent(d.path("t.dat"), pat); err != nil {
		t.Fatalf("%v", err)
	}
	want := pat.contentRange(0, size)
	var cycles atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		f, err := os.OpenFile(d.path("t.dat"), os.O_RDWR, 0)
		if err != nil {
			return
		}
		defer f.Close()
		for {
			l := int64(1<<20) + rand.N(int64(size-1<<20))
			if f.Truncate(l) != nil {
				return
			}
			l2 := l + rand.N(size-l+1)
			if _, err := f.WriteAt(want[l:l2], l); err != nil {
				return
			}
			if f.Sync() != nil {
				return
			}
			cycles.Add(1)
		}
	}()
	err := waitFor(time.Minute, "20 truncate cycles", func() (bool, error) { return cycles.Load() >= 20, nil })
	if err != nil {
		d.crash(t)
		<-done
		t.Fatalf("%v (got %d)", err, cycles.Load())
	}
	d.crash(t)
	<-done
	t.Logf("%d truncate+write+fsync cycles before the kill", cycles.Load())
	afterCrash(t, d, kills)
	got, err := os.ReadFile(d.path("t.dat"))
	if err != nil {
		t.Fatalf("read t.dat after the kill: %v", err)
	}
	if len(got) < 1<<20 || len(got) > size {
		t.Errorf("t.dat is %d bytes, want between 1 MiB and %d", len(got), size)
	}
	if !bytes.Equal(got[:min(len(got), 1<<20)], want[:min(len(got), 1<<20)]) {
		t.Errorf("t.dat: the first MiB, never truncated, changed")
	}
	for i := range min(len(got), size) {
		if got[i] != want[i] && got[i] != 0 {
			t.Errorf("t.dat byte %d is %#x: neither the pattern (%#x) nor zero", i, got[i], want[i])
			break
		}
	}
	verified.Add(int64(len(got)) + other.check(t, d.mnt))
	finish(t, d)
}

// crashClosed: two goroutines write files of 1 byte to 600 KiB (small
// ones staged in the database, bigger ones as staging files), close them
// without fsync and delete every third one again, when the mount process
// dies. Afterwards every file whose close returned, and that was not
// deleted, is there, whole: a kill -9 loses no closed file. The file in
// flight may be there or not, whole or in part.
func crashClosed(t *testing.T, kills, verified *atomic.Int64) {
	d := newDrive(t, driveOptions{})
	d.mount(t, nil)
	body := func(g, i int) []byte {
		c := content{seed: uint64(1000*g + i), size: 1 + rand.N(int64(600<<10))}
		return c.contentRange(0, c.size)
	}
	type closed struct {
		name string
		body []byte
	}
	var mu sync.Mutex
	var kept []closed // closed, not deleted
	var count atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				name := fmt.Sprintf("c-%d-%05d", g, i)
				b := body(g, i)
				if err := os.WriteFile(d.path(name), b, 0o644); err != nil {
					return // the mount is gone
				}
				if i%3 == 2 {
					if os.Remove(d.path(name)) != nil {
						return
					}
				} else {
					mu.Lock()
					kept = append(kept, closed{name, b})
					mu.Unlock()
				}
				count.Add(1)
			}
		}()
	}
	err := waitFor(time.Minute, "300 closed files", func() (bool, error) { return count.Load() >= 300, nil })
	if err != nil {
		close(stop)
		d.crash(t)
		wg.Wait()
		t.Fatalf("%v (got %d)", err, count.Load())
	}
	d.crash(t)
	close(stop)
	wg.Wait()
	t.Logf("%d files closed (%d kept) before the kill", count.Load(), len(kept))
	afterCrash(t, d, kills)
	var found int64
	for _, c := range kept {
		b, err := os.ReadFile(d.path(c.name))
		if err != nil {
			t.Errorf("closed file %s after the kill: %v", c.name, err)
			continue
		}
		if !bytes.Equal(b, c.body) {
			t.Errorf("closed file %s: %d bytes after the kill, want %d, content differs", c.name, len(b), len(c.body))
		}
		found += int64(len(b))
	}
	verified.Add(found)
	finish(t, d)
}
