package fs

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Real tools on the mount, each compared with the same tool on local
// disk. They need: coreutils, rsync, tar, git, sqlite3, go, gio
// (Debian: rsync git sqlite3 libglib2.0-bin).

// run runs a command with a timeout and fails the test on error. No
// command runs with its working directory on the mount (the child's
// chdir would need the daemon, see go-fuse fs/api.go "Deadlocks"): tools
// are told where to work with flags or sh -c 'cd ...'.
func run(t *testing.T, env []string, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out.String())
	}
	return out.String()
}

func needTool(t *testing.T, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is required under CI: %v", name, err)
		}
		t.Skipf("%s not installed: %v", name, err)
	}
}

// treeEntry is what we compare of one file: type and permissions,
// size, content hash or link target, and mtime.
type treeEntry struct {
	mode  uint32
	size  int64
	sum   string
	mtime int64
}

func readTree(t *testing.T, root string, mtimes bool) map[string]treeEntry {
	t.Helper()
	m := map[string]treeEntry{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		var st syscall.Stat_t
		if err := syscall.Lstat(p, &st); err != nil {
			return err
		}
		e := treeEntry{mode: st.Mode}
		if mtimes && st.Mode&syscall.S_IFMT != syscall.S_IFDIR {
			e.mtime = st.Mtim.Nano()
		}
		switch st.Mode & syscall.S_IFMT {
		case syscall.S_IFREG:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			e.size = int64(len(b))
			e.sum = fmt.Sprintf("%x", sha256.Sum256(b))
		case syscall.S_IFLNK:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			e.sum = target
		}
		m[rel] = e
		return nil
	})
	if err != nil {
		t.Fatalf("walk %s: %v", root, err)
	}
	return m
}

func compareTrees(t *testing.T, what, local, drive string, mtimes bool) {
	t.Helper()
	l, d := readTree(t, local, mtimes), readTree(t, drive, mtimes)
	if len(l) < 2 {
		t.Fatalf("%s: local tree %s has %d entries", what, local, len(l))
	}
	bad := 0
	for name, le := range l {
		de, ok := d[name]
		if !ok {
			t.Errorf("%s: %s missing on the drive", what, name)
		} else if le != de {
			t.Errorf("%s: %s differs: local %+v, drive %+v", what, name, le, de)
		}
		if !ok || le != de {
			if bad++; bad > 10 {
				t.Fatalf("%s: too many differences", what)
			}
		}
	}
	for name := range d {
		if _, ok := l[name]; !ok {
			t.Errorf("%s: %s only on the drive", what, name)
		}
	}
}

func TestTools(t *testing.T) {
	if testing.Short() {
		t.Skip("the tools test takes a while; run without -short")
	}
	needTool(t, "go")
	goroot := strings.TrimSpace(run(t, nil, "go", "env", "GOROOT"))
	netSrc := filepath.Join(goroot, "src", "net") // gio copies files of it
	src := netSrc
	if *long {
		src = filepath.Join(goroot, "src")
	}
	s := newStack(t, stackOptions{})
	local := t.TempDir()
	roots := map[string]string{"local": local, "drive": s.mnt}

	t.Run("cp-a", func(t *testing.T) {
		for _, r := range roots {
			run(t, nil, "cp", "-a", src, filepath.Join(r, "cp"))
		}
		compareTrees(t, "cp -a", filepath.Join(local, "cp"), filepath.Join(s.mnt, "cp"), true)
	})
	t.Run("rsync-a", func(t *testing.T) {
		needTool(t, "rsync")
		for _, r := range roots {
			run(t, nil, "rsync", "-a", src+"/", filepath.Join(r, "rsync")+"/")
		}
		compareTrees(t, "rsync -a", filepath.Join(local, "rsync"), filepath.Join(s.mnt, "rsync"), true)
		// A second run finds nothing to do on either side.
		out := run(t, nil, "rsync", "-a", "--itemize-changes", src+"/", filepath.Join(s.mnt, "rsync")+"/")
		if strings.TrimSpace(out) != "" {
			t.Errorf("second rsync onto the drive changed things:\n%.2000s", out)
		}
	})
	t.Run("tar", func(t *testing.T) {
		for _, r := range roots {
			tarball := filepath.Join(r, "src.tar")
			run(t, nil, "tar", "-C", src, "-cf", tarball, ".")
			os.Mkdir(filepath.Join(r, "untar"), 0o755)
			run(t, nil, "tar", "-C", filepath.Join(r, "untar"), "-xf", tarball)
			// Also tar from the tree copied onto this root.
			run(t, nil, "tar", "-C", filepath.Join(r, "untar"), "-cf", filepath.Join(r, "again.tar"), ".")
		}
		compareTrees(t, "tar -x", filepath.Join(local, "untar"), filepath.Join(s.mnt, "untar"), true)
		a, _ := os.ReadFile(filepath.Join(local, "again.tar"))
		b, _ := os.ReadFile(filepath.Join(s.mnt, "again.tar"))
		if len(a) == 0 || !bytes.Equal(a, b) {
			t.Errorf("tar of the extracted tree: local %d bytes, drive %d bytes, equal %v", len(a), len(b), bytes.Equal(a, b))
		}
	})
	t.Run("git", func(t *testing.T) {
		needTool(t, "git")
		env := []string{"GIT_AUTHOR_DATE=2020-01-01T00:00:00Z", "GIT_COMMITTER_DATE=2020-01-01T00:00:00Z",
			"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com",
			"GIT_CONFIG_NOSYSTEM=1", "HOME=" + t.TempDir()}
		heads := map[string]string{}
		for name, r := range roots {
			repo := filepath.Join(r, "git")
			run(t, nil, "cp", "-a", src, repo)
			run(t, env, "git", "-C", repo, "init", "-q")
			run(t, env, "git", "-C", repo, "add", "-A")
			run(t, env, "git", "-C", repo, "commit", "-qm", "import")
			heads[name] = strings.TrimSpace(run(t, env, "git", "-C", repo, "rev-parse", "HEAD"))
			run(t, env, "git", "-C", repo, "fsck", "--full", "--strict")
			if st := run(t, env, "git", "-C", repo, "status", "--porcelain"); st != "" {
				t.Errorf("%s: git status after commit:\n%s", name, st)
			}
		}
		if heads["local"] != heads["drive"] {
			t.Errorf("commit ids differ: local %s, drive %s", heads["local"], heads["drive"])
		}
	})
	t.Run("sqlite3", func(t *testing.T) {
		needTool(t, "sqlite3")
		// Every transaction creates, fsyncs and unlinks a rollback
		// journal and fsyncs the database: the slowest pattern there is.
		n := 300
		if *long {
			n = 5000
		}
		var script strings.Builder
		script.WriteString("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);\n")
		for i := 0; i < n; i++ {
			fmt.Fprintf(&script, "BEGIN; INSERT INTO t(v) VALUES ('row %d %s'); UPDATE t SET v = v || '.' WHERE id = %d; COMMIT;\n", i, strings.Repeat("x", i%300), i/2+1)
		}
		script.WriteString("PRAGMA integrity_check;\nSELECT count(*), sum(length(v)) FROM t;\n")
		sf := filepath.Join(t.TempDir(), "script.sql")
		os.WriteFile(sf, []byte(script.String()), 0o644)
		outs := map[string]string{}
		for name, r := range roots {
			outs[name] = run(t, nil, "sh", "-c", fmt.Sprintf("sqlite3 %q < %q", filepath.Join(r, "db.sqlite"), sf))
		}
		if !strings.HasPrefix(outs["drive"], "ok\n") || outs["drive"] != outs["local"] {
			t.Errorf("sqlite3: local %q, drive %q", outs["local"], outs["drive"])
		}
	})
	t.Run("go-build", func(t *testing.T) {
		needTool(t, "go")
		outs := map[string]string{}
		for name, r := range roots {
			mod := filepath.Join(r, "mod")
			os.MkdirAll(filepath.Join(mod, "greet"), 0o755)
			os.WriteFile(filepath.Join(mod, "go.mod"), []byte("module example.com/hello\n\ngo 1.22\n"), 0o644)
			os.WriteFile(filepath.Join(mod, "greet", "greet.go"), []byte("package greet\n\nfunc Hello() string { return \"hello from the drive\" }\n"), 0o644)
			os.WriteFile(filepath.Join(mod, "main.go"), []byte("package main\n\nimport (\n\t\"fmt\"\n\n\t\"example.com/hello/greet\"\n)\n\nfunc main() { fmt.Println(greet.Hello()) }\n"), 0o644)
			// The shared build cache (not on the mount) holds the
			// standard library; the module itself is compiled here.
			env := []string{"GOFLAGS=-mod=mod", "GOPROXY=off"}
			run(t, env, "go", "-C", mod, "build", "-o", filepath.Join(mod, "hello"), ".")
			run(t, env, "go", "-C", mod, "vet", "./...")
			// Through sh: exec of a binary on the mount (go-fuse api.go 1c).
			outs[name] = run(t, nil, "sh", "-c", filepath.Join(mod, "hello"))
		}
		if outs["drive"] != "hello from the drive\n" || outs["local"] != outs["drive"] {
			t.Errorf("go build: local %q, drive %q", outs["local"], outs["drive"])
		}
	})
	t.Run("gio", func(t *testing.T) {
		needTool(t, "gio")
		env := []string{"XDG_DATA_HOME=" + t.TempDir(), "GIO_USE_VFS=local", "HOME=" + t.TempDir()}
		files := []string{"net.go", "dial.go", "ip.go"}
		for _, r := range roots {
			dst := filepath.Join(r, "gio")
			os.Mkdir(dst, 0o755)
			for _, f := range files {
				run(t, env, "gio", "copy", "--preserve", filepath.Join(netSrc, f), filepath.Join(dst, f))
			}
		}
		compareTrees(t, "gio copy", filepath.Join(local, "gio"), filepath.Join(s.mnt, "gio"), true)
		// gio trash on the mount: the trash of a file outside $HOME's
		// file system is MOUNT/.Trash-UID (freedesktop trash spec).
		victim := filepath.Join(s.mnt, "gio", "ip.go")
		want, _ := os.ReadFile(victim)
		run(t, env, "gio", "trash", victim)
		if _, err := os.Lstat(victim); !os.IsNotExist(err) {
			t.Errorf("gio trash left %s: %v", victim, err)
		}
		trash := filepath.Join(s.mnt, fmt.Sprintf(".Trash-%d", os.Getuid()))
		got, err := os.ReadFile(filepath.Join(trash, "files", "ip.go"))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("trashed file in %s: %v (equal %v)", trash, err, bytes.Equal(got, want))
		}
		info, err := os.ReadFile(filepath.Join(trash, "info", "ip.go.trashinfo"))
		if err != nil || !strings.Contains(string(info), "Path=") {
			t.Errorf("trashinfo: %q %v", info, err)
		}
	})
}
