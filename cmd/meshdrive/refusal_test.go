package main

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// newDefaultDrive inits a drive on the embedded default grid.
func newDefaultDrive(t *testing.T, env []string) (dir, mp string) {
	t.Helper()
	base := t.TempDir()
	dir = filepath.Join(base, "data")
	mp = filepath.Join(base, "Drive")
	if err := os.Mkdir(mp, 0o755); err != nil {
		t.Fatal(err)
	}
	r := mustRun(t, env, "init", "--data", dir)
	if !strings.Contains(r.stdout, "k=4 m=2 over 6 nodes") || !strings.Contains(r.stdout, "passphrase") {
		t.Errorf("init output: %s", r.stdout)
	}
	return dir, mp
}

// TestRefusals: every refusal is one line naming the problem, a non-zero
// exit, and leaves no mount and no lock behind.
func TestRefusals(t *testing.T) {
	env := cmdEnv("MESHDRIVE_PASSPHRASE=pw1")
	dir, mp := newDefaultDrive(t, env)
	cleanupMount(t, env, dir, mp)

	t.Run("mountpoint missing", func(t *testing.T) {
		missing := filepath.Join(t.TempDir(), "nope")
		assertRefusal(t, runBin(t, env, "mount", "--data", dir, missing), dir, missing, missing, "does not exist")
	})
	t.Run("mountpoint is a file", func(t *testing.T) {
		f := filepath.Join(t.TempDir(), "file")
		os.WriteFile(f, []byte("x"), 0o644)
		assertRefusal(t, runBin(t, env, "mount", "--data", dir, f), dir, f, f, "not a directory")
	})
	t.Run("mountpoint not empty", func(t *testing.T) {
		full := t.TempDir()
		os.WriteFile(filepath.Join(full, "keep.txt"), []byte("x"), 0o644)
		for _, daemon := range []string{"--daemon=false", "--daemon"} {
			r := runBin(t, env, "mount", daemon, "--data", dir, full)
			assertRefusal(t, r, dir, full, full, "not empty", "keep.txt")
		}
	})
	t.Run("wrong passphrase", func(t *testing.T) {
		bad := cmdEnv("MESHDRIVE_PASSPHRASE=pw2")
		for _, daemon := range []string{"--daemon=false", "--daemon"} {
			r := runBin(t, bad, "mount", daemon, "--data", dir, mp)
			assertRefusal(t, r, dir, mp, "wrong passphrase for drive at "+dir+" (key check failed)")
		}
		pf := filepath.Join(t.TempDir(), "pass")
		os.WriteFile(pf, []byte("pw3\n"), 0o600)
		assertRefusal(t, runBin(t, cmdEnv(), "mount", "--passphrase-file", pf, "--data", dir, mp), dir, mp, "wrong passphrase")
	})
	t.Run("no passphrase", func(t *testing.T) {
		assertRefusal(t, runBin(t, cmdEnv(), "mount", "--data", dir, mp), dir, mp, "no passphrase", "MESHDRIVE_PASSPHRASE")
	})
	t.Run("fuse device missing", func(t *testing.T) {
		noDev := cmdEnv("MESHDRIVE_PASSPHRASE=pw1", fuseDeviceEnv+"=/nonexistent/fuse")
		for _, daemon := range []string{"--daemon=false", "--daemon"} {
			assertRefusal(t, runBin(t, noDev, "mount", daemon, "--data", dir, mp), dir, mp, "/nonexistent/fuse is missing", "modprobe fuse")
		}
	})
	t.Run("pin budget without a disk cache", func(t *testing.T) {
		r := runBin(t, env, "mount", "--cache-size", "0", "--pin-budget", "1GiB", "--data", dir, mp)
		assertRefusal(t, r, dir, mp, "--pin-budget with --cache-size 0")
		if r.code != 2 {
			t.Errorf("exit %d, want 2 (usage)", r.code)
		}
	})
	t.Run("drop-missing with read-only", func(t *testing.T) {
		// A read-only mount does not look at the staging folder, so
		// the flag would do nothing.
		r := runBin(t, env, "mount", "--read-only", "--drop-missing", "--data", dir, mp)
		assertRefusal(t, r, dir, mp, "--drop-missing with --read-only")
		if r.code != 2 {
			t.Errorf("exit %d, want 2 (usage)", r.code)
		}
	})
	t.Run("read-only with no drive", func(t *testing.T) {
		// A read-only mount makes nothing: not the default drive a
		// read-write mount would make in an empty or missing data dir.
		missing := filepath.Join(t.TempDir(), "missing")
		empty := t.TempDir()
		for _, data := range []string{missing, empty} {
			cleanupMount(t, env, data, mp) // should the mount not be refused
			for _, daemon := range []string{"--daemon", "--daemon=false"} {
				r := runBin(t, env, "mount", "--read-only", daemon, "--data", data, mp)
				assertRefusal(t, r, "", mp, "no drive at "+data, "read-only mount makes none",
					"meshdrive init --data "+data, "meshdrive recover --node URL --data "+data)
			}
		}
		if _, err := os.Stat(missing); !os.IsNotExist(err) {
			t.Errorf("the refused mount made %s (%v)", missing, err)
		}
		if ents, err := os.ReadDir(empty); err != nil || len(ents) != 0 {
			t.Errorf("the refused mount wrote into %s: %v %v", empty, ents, err)
		}
	})
	t.Run("repair-below above k+m", func(t *testing.T) {
		for _, daemon := range []string{"--daemon=false", "--daemon"} {
			r := runBin(t, env, "mount", daemon, "--repair-below", "100", "--data", dir, mp)
			assertRefusal(t, r, dir, mp, "--repair-below 100", "from 1 to 6")
			if r.code != 2 {
				t.Errorf("exit %d, want 2 (usage)", r.code)
			}
		}
		// A data dir with no drive yet gets the default drive's k+m,
		// and is not made.
		fresh := filepath.Join(t.TempDir(), "fresh")
		assertRefusal(t, runBin(t, env, "mount", "--repair-below", "7", "--data", fresh, mp), "", mp, "from 1 to 6")
		if _, err := os.Stat(fresh); err == nil {
			t.Errorf("the refused mount made %s", fresh)
		}
	})
	t.Run("corrupt config", func(t *testing.T) {
		cdir := copyDrive(t, dir)
		cp := filepath.Join(cdir, configFile)
		os.WriteFile(cp, []byte(`{"version": 1, "k": 4, "m"`), 0o600)
		assertRefusal(t, runBin(t, env, "mount", "--data", cdir, mp), cdir, mp, cp, "corrupt", "restore it")
		os.WriteFile(cp, []byte(`{"version": 7}`), 0o600)
		assertRefusal(t, runBin(t, env, "mount", "--data", cdir, mp), cdir, mp, cp, "version 7")
		assertRefusal(t, runBin(t, env, "passwd", "--data", cdir), cdir, "", cp, "corrupt")
	})
	t.Run("corrupt key", func(t *testing.T) {
		cdir := copyDrive(t, dir)
		kp := filepath.Join(cdir, keyFile)
		os.WriteFile(kp, []byte(`{"version":1,"kdf":"argon2id"}`), 0o600)
		assertRefusal(t, runBin(t, env, "mount", "--data", cdir, mp), cdir, mp, kp, "corrupt")
	})
	t.Run("no permission", func(t *testing.T) {
		if os.Geteuid() != 0 {
			t.Skip("needs root to run the binary as another user")
		}
		// A mountpoint owned by root, mode 0755, as user nobody.
		locked := t.TempDir()
		os.Chmod(filepath.Dir(locked), 0o755)
		r := runAsNobody(t, env, "mount", "--data", filepath.Join(locked, "data"), locked)
		assertRefusal(t, r, "", locked, "no permission", locked)
		// Someone else's drive: its data dir is not readable (t.TempDir is 0700).
		assertRefusal(t, runAsNobody(t, env, "passwd", "--data", dir), dir, "", "no permission to read the drive config", "--data DIR")
		assertRefusal(t, runAsNobody(t, env, "status", "--data", dir), dir, "", "no permission to reach the control socket", dir)
	})
	t.Run("no permission to the fuse device", func(t *testing.T) {
		if os.Geteuid() != 0 {
			t.Skip("needs root to run the binary as another user")
		}
		fi, err := os.Stat("/dev/fuse")
		if err != nil {
			t.Skipf("no /dev/fuse: %v", err)
		}
		if fi.Mode().Perm()&0o006 == 0o006 {
			t.Skip("/dev/fuse is open to every user here; nothing to refuse")
		}
		// Mountpoint and data dir are the user's own; only the device is not.
		base := t.TempDir()
		os.Chmod(filepath.Dir(base), 0o755)
		os.Chmod(base, 0o755)
		own := func(name string) string {
			p := filepath.Join(base, name)
			if err := os.Mkdir(p, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Chown(p, 65534, 65534); err != nil {
				t.Fatal(err)
			}
			return p
		}
		userMP, userData := own("mp"), filepath.Join(own("home"), "data")
		r := runAsNobody(t, env, "mount", "--data", userData, userMP)
		if _, err := lookFusermount(); err != nil {
			assertRefusal(t, r, "", userMP, "fusermount3 is not installed", "install fuse3")
		} else {
			assertRefusal(t, r, "", userMP, "no permission to use /dev/fuse", "ask for access")
		}
		if _, err := os.Stat(userData); !os.IsNotExist(err) {
			t.Errorf("a refused mount made the drive %s (%v)", userData, err)
		}
	})
	t.Run("init over an existing drive", func(t *testing.T) {
		before, _ := os.ReadFile(filepath.Join(dir, keyFile))
		assertRefusal(t, runBin(t, env, "init", "--data", dir), dir, "", "already exists", dir)
		after, _ := os.ReadFile(filepath.Join(dir, keyFile))
		if string(before) != string(after) {
			t.Error("init over an existing drive changed key.json")
		}
	})
	t.Run("unreachable node at init", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		dead := "http://" + ln.Addr().String()
		ln.Close()
		live := startNode(t, t.TempDir())
		ndir := filepath.Join(t.TempDir(), "data")
		args := []string{"init", "--data", ndir, "--node", live.url(), "--node", live.url() + "/", "--node", dead, "--k", "2", "--m", "1"}
		assertRefusal(t, runBin(t, env, args...), "", "", dead, "unreachable")
		if _, err := os.Stat(ndir); !os.IsNotExist(err) {
			t.Errorf("a failed init left %s behind (%v)", ndir, err)
		}
	})
	t.Run("node holds another drive", func(t *testing.T) {
		var args []string
		for range 3 {
			args = append(args, "--node", startNode(t, t.TempDir()).url())
		}
		first := filepath.Join(t.TempDir(), "data")
		mustRun(t, env, append([]string{"init", "--data", first}, args...)...)
		second := filepath.Join(t.TempDir(), "data")
		want := "--node " + args[1] + " already holds a meshdrive drive (meta/key found; also on " + args[3] + ", " + args[5] + ")"
		// Beside them, directory nodes: one missing (with its parent),
		// one an existing empty folder. The refused init leaves neither a
		// folder it made nor a mark behind, and keeps the folder it found.
		base := t.TempDir()
		missing, empty := filepath.Join(base, "new", "node"), filepath.Join(base, "empty")
		if err := os.Mkdir(empty, 0o700); err != nil {
			t.Fatal(err)
		}
		dirs := []string{"--node", missing, "--node", empty}
		assertRefusal(t, runBin(t, env, append(append([]string{"init", "--data", second}, args...), dirs...)...), "", "", want,
			"run another meshdrive node serve with its own --dir and --listen port", "its own prefix, s3://BUCKET/PREFIX")
		if _, err := os.Stat(second); !os.IsNotExist(err) {
			t.Errorf("a refused init left %s behind (%v)", second, err)
		}
		if _, err := os.Lstat(filepath.Join(base, "new")); !os.IsNotExist(err) {
			t.Errorf("a refused init left the node folder it made, %s (%v)", filepath.Join(base, "new"), err)
		}
		if ents, err := os.ReadDir(empty); err != nil || len(ents) != 0 {
			t.Errorf("a refused init left %v in the empty folder it was given (%v)", ents, err)
		}
	})
	t.Run("node holds a drive key it cannot serve", func(t *testing.T) {
		// A node whose copy of a drive's key is damaged may hold that
		// drive's only way back: init refuses it as it refuses a good
		// copy, and writes no key of its own over it.
		base := t.TempDir()
		var args []string
		for i := range 3 {
			args = append(args, "--node", filepath.Join(base, fmt.Sprintf("n%d", i)))
		}
		mustRun(t, env, append([]string{"init", "--data", filepath.Join(t.TempDir(), "data"), "--k", "2", "--m", "1"}, args...)...)
		keys, _ := filepath.Glob(filepath.Join(base, "n*", "meta", "*key*"))
		if len(keys) == 0 {
			t.Fatal("no key object on the nodes")
		}
		before := map[string][]byte{}
		for _, k := range keys {
			b, err := os.ReadFile(k)
			if err != nil {
				t.Fatal(err)
			}
			b[len(b)/2] ^= 0x55
			if err := os.WriteFile(k, b, 0o600); err != nil {
				t.Fatal(err)
			}
			before[k] = b
		}
		second := filepath.Join(t.TempDir(), "data")
		// The nodes log each damaged copy they find; the last line is
		// the refusal.
		r := runBin(t, env, append([]string{"init", "--data", second, "--k", "2", "--m", "1"}, args...)...)
		lines := strings.Split(strings.TrimRight(r.stderr, "\n"), "\n")
		last := lines[len(lines)-1]
		if r.code == 0 || !strings.Contains(last, "cannot tell whether the nodes already hold a meshdrive drive") || !strings.Contains(last, "Fix the node") {
			t.Errorf("init over nodes holding damaged key copies: %s", r)
		}
		for k, b := range before {
			if after, err := os.ReadFile(k); err != nil || !bytes.Equal(after, b) {
				t.Errorf("the refused init changed %s (%v)", k, err)
			}
		}
		if _, err := os.Stat(second); !os.IsNotExist(err) {
			t.Errorf("a refused init left %s behind (%v)", second, err)
		}
	})
	t.Run("one node twice at init", func(t *testing.T) {
		// Two spellings of one store are one node: init refuses them, and
		// leaves neither a data dir, nor the drive's key, nor a probe object.
		base := t.TempDir()
		e1, e2, e3 := filepath.Join(base, "e1"), filepath.Join(base, "e2"), filepath.Join(base, "e3")
		link := filepath.Join(base, "link")
		if err := os.Mkdir(e2, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(e2, link); err != nil {
			t.Fatal(err)
		}
		live := startNode(t, filepath.Join(base, "served"))
		_, port, _ := strings.Cut(live.addr, ":")
		for _, c := range [][2]string{
			{e1, "file://" + e1},
			{e2, link},
			{live.url(), "http://localhost:" + port + "/"},
		} {
			ndir := filepath.Join(t.TempDir(), "data")
			args := []string{"init", "--data", ndir, "--node", c[0], "--node", e3, "--node", c[1], "--k", "2", "--m", "1"}
			assertRefusal(t, runBin(t, env, args...), "", "",
				"--node "+c[1]+" is the same node as --node "+c[0]+": a probe object written to it appeared there; give another node")
			if _, err := os.Stat(ndir); !os.IsNotExist(err) {
				t.Errorf("a refused init left %s behind (%v)", ndir, err)
			}
		}
		for _, dir := range []string{e1, e2, e3, filepath.Join(base, "served")} {
			if left, _ := filepath.Glob(filepath.Join(dir, "meta", "*")); len(left) != 0 {
				t.Errorf("a refused init left %v on a node", left)
			}
		}
	})
	t.Run("not mounted", func(t *testing.T) {
		for _, args := range [][]string{{"status"}, {"status", "--json"}, {"sync"}, {"cache", "clear"}, {"status", "x"}} {
			r := runBin(t, env, append(args, "--data", dir)...)
			assertRefusal(t, r, dir, "", "drive at "+dir+" is not mounted", "meshdrive mount")
		}
	})
	t.Run("already mounted", func(t *testing.T) {
		requireFuse(t)
		mustRun(t, env, "mount", "--daemon", "--data", dir, mp)
		other := t.TempDir()
		for _, daemon := range []string{"--daemon=false", "--daemon"} {
			r := runBin(t, env, "mount", daemon, "--data", dir, other)
			assertRefusal(t, r, "", other, "already mounted at "+mp, "meshdrive unmount")
		}
		// Another drive on the same (empty-looking) mountpoint.
		dir2, _ := newDefaultDrive(t, env)
		for _, daemon := range []string{"--daemon=false", "--daemon"} {
			r := runBin(t, env, "mount", daemon, "--data", dir2, mp)
			assertRefusal(t, r, dir2, "", mp+" is already a mount point", "meshdrive unmount "+mp)
			if n := mountCount(t, mp); n != 1 {
				t.Errorf("%d mounts at %s after a refused second one, want 1", n, mp)
			}
		}
		if !mounted(mp) || lockFree(t, dir) {
			t.Error("the refused second mount disturbed the first")
		}
		mustRun(t, env, "unmount", "--data", dir, mp)
		if mounted(mp) || !lockFree(t, dir) {
			t.Errorf("after unmount: mounted %v, lock free %v", mounted(mp), lockFree(t, dir))
		}
		if _, err := os.Stat(filepath.Join(dir, controlSock)); !os.IsNotExist(err) {
			t.Errorf("control socket left behind: %v", err)
		}
	})
	t.Run("dead mount", func(t *testing.T) {
		requireFuse(t)
		mustRun(t, env, "mount", "--daemon", "--data", dir, mp)
		pid, _ := lockHolder(dir)
		if pid <= 0 {
			t.Fatal("no pid in the lock file")
		}
		syscall.Kill(pid, syscall.SIGKILL)
		// The kernel drops the flock once the process is gone.
		for deadline := time.Now().Add(10 * time.Second); !lockFree(t, dir); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("lock still held 10s after SIGKILL of the mount process")
			}
		}
		// status says what mount will want first.
		r := runBin(t, env, "status", "--data", dir)
		if r.code == 0 || !strings.Contains(r.stderr, "dead mount at "+mp) || !strings.Contains(r.stderr, "meshdrive unmount "+mp) {
			t.Fatalf("status after the mount was killed: %s", r)
		}
		r = runBin(t, env, "mount", "--data", dir, mp)
		if r.code == 0 || !strings.Contains(r.stderr, "dead mount") || !strings.Contains(r.stderr, "meshdrive unmount "+mp) {
			t.Fatalf("mount on a dead mount: %s", r)
		}
		mustRun(t, env, "unmount", "--data", dir, mp)
		if mounted(mp) {
			t.Fatal("dead mount still there after meshdrive unmount")
		}
		mustRun(t, env, "mount", "--daemon", "--data", dir, mp)
		mustRun(t, env, "unmount", "--data", dir, mp)
	})
	t.Run("unmount of nothing", func(t *testing.T) {
		empty := t.TempDir()
		assertRefusal(t, runBin(t, env, "unmount", empty), "", "", "nothing is mounted at "+empty)
	})
}

// copyDrive copies a drive's config, key and node dirs into a new data
// dir, to damage one without touching the original.
func copyDrive(t *testing.T, dir string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "data")
	if out, err := exec.Command("cp", "-a", dir, dst).CombinedOutput(); err != nil {
		t.Fatalf("cp -a: %v\n%s", err, out)
	}
	os.Remove(filepath.Join(dst, lockFile))
	return dst
}

// runAsNobody runs the binary as user nobody (the caller must be root).
func runAsNobody(t *testing.T, env []string, args ...string) result {
	t.Helper()
	cmd := exec.Command(meshdriveBin(t), args...)
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("meshdrive %s as nobody: %v", strings.Join(args, " "), err)
	}
	return r
}

// mountCount counts the mounts stacked at mp.
func mountCount(t *testing.T, mp string) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && unescapeMount(f[1]) == mp {
			n++
		}
	}
	return n
}

// TestRefusalsWithoutDrive: bad input to commands that need no mount
// (found by an audit of the CLI): each is one line that says what to
// do, and none leaves a file changed or a directory made.
func TestRefusalsWithoutDrive(t *testing.T) {
	env := cmdEnv("MESHDRIVE_PASSPHRASE=pw1")
	base := t.TempDir()
	file := filepath.Join(base, "important.txt")
	if err := os.WriteFile(file, []byte("keep me"), 0o644); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(base, "typo")

	// A data dir that is not a drive: not "mount it", which would make one.
	for _, cmd := range []string{"status", "sync", "gc"} {
		assertRefusal(t, runBin(t, env, cmd, "--data", missing), "", "", "no drive at "+missing, "meshdrive init --data "+missing)
		assertRefusal(t, runBin(t, env, cmd, "--data", file), "", "", file+" is not a directory")
	}
	if _, err := os.Stat(missing); err == nil {
		t.Errorf("%s was made", missing)
	}

	// Node addresses init would have taken for local directories.
	r := runBin(t, env, "init", "--data", filepath.Join(base, "d1"), "--node=", "--node", filepath.Join(base, "n1"))
	assertRefusal(t, r, "", "", "--node", "empty")
	r = runBin(t, env, "init", "--data", filepath.Join(base, "d2"), "--node", "127.0.0.1:9000", "--node", filepath.Join(base, "n2"))
	assertRefusal(t, r, "", "", "write http://127.0.0.1:9000")
	if r.code != 2 {
		t.Errorf("exit %d, want 2 (usage)", r.code)
	}
	if _, err := os.Stat("127.0.0.1:9000"); err == nil {
		os.RemoveAll("127.0.0.1:9000")
		t.Errorf("init made a directory named 127.0.0.1:9000")
	}

	// k and m of 0 given by hand are mistakes, not "the default".
	for _, c := range [][2]string{{"--k", "--k 0: a segment needs at least 1 data shard"}, {"--m", "--m 0: a drive needs at least 1 parity shard"}} {
		r := runBin(t, env, "init", "--data", filepath.Join(base, "d4"), "--node", filepath.Join(base, "n4"), "--node", filepath.Join(base, "n5"), c[0], "0")
		assertRefusal(t, r, "", "", c[1])
		if r.code != 2 {
			t.Errorf("init %s 0: exit %d, want 2 (usage)", c[0], r.code)
		}
	}

	// Negative durations.
	for flag, args := range map[string][]string{
		"--timeout":     {"sync", "--data", missing, "--timeout", "-1s"},
		"--gc-interval": {"mount", "--data", missing, "--gc-interval", "-5m", base},
		"--wait":        {"unmount", "--wait", "-1s", base},
	} {
		r := runBin(t, env, args...)
		assertRefusal(t, r, "", "", flag+" -")
		if r.code != 2 {
			t.Errorf("meshdrive %v: exit %d, want 2", args, r.code)
		}
	}

	// A passphrase file that is not there, named with its flag.
	assertRefusal(t, runBin(t, cmdEnv(), "init", "--data", filepath.Join(base, "d3"), "--passphrase-file", missing),
		"", "", "cannot read --passphrase-file "+missing, "check the path")

	// recover: a node directory that is not there is not made, and a
	// data dir that is a file is not replaced.
	assertRefusal(t, runBin(t, env, "recover", "--node", missing, "--data", filepath.Join(base, "r1")), "", "", missing, "no such directory")
	if _, err := os.Stat(missing); err == nil {
		t.Errorf("recover made the node directory %s", missing)
	}
	assertRefusal(t, runBin(t, env, "recover", "--node", base, "--data", file), "", "", file+" is a file")
	if b, err := os.ReadFile(file); err != nil || string(b) != "keep me" {
		t.Errorf("recover --data FILE: the file now reads %q, %v", b, err)
	}

	// init into a file; a node that cannot listen makes no directory; a
	// token file that is not there.
	assertRefusal(t, runBin(t, env, "init", "--data", file), "", "", file+" is a file")
	nd := filepath.Join(base, "nd")
	assertRefusal(t, runBin(t, env, "node", "serve", "--dir", nd, "--listen", "127.0.0.1:99999"), "", "", "cannot listen on 127.0.0.1:99999")
	if _, err := os.Stat(nd); err == nil {
		t.Errorf("node serve made %s before it failed to listen", nd)
	}
	assertRefusal(t, runBin(t, env, "node", "serve", "--dir", nd, "--listen", "127.0.0.1:0", "--token-file", missing), "", "",
		"cannot read --token-file "+missing)
	if b, err := os.ReadFile(file); err != nil || string(b) != "keep me" {
		t.Errorf("the file now reads %q, %v", b, err)
	}

	// One node, no --k or --m: the count of nodes is what is wrong.
	r = runBin(t, env, "init", "--data", filepath.Join(base, "d5"), "--node", filepath.Join(base, "n5"))
	assertRefusal(t, r, "", "", "at least 2 nodes", "got 1", "--node URL")
	if r.code != 2 || strings.Contains(r.stderr, "k=0") {
		t.Errorf("init with one node: %s", r)
	}

	// init --k alone keeps the documented m.
	d4 := filepath.Join(base, "d4")
	mustRun(t, env, "init", "--data", d4, "--k", "3")
	cfg, err := loadConfig(d4)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.K != 3 || cfg.M != 2 {
		t.Errorf("init --k 3: k=%d m=%d, want 3 and 2 (init --help)", cfg.K, cfg.M)
	}
}
