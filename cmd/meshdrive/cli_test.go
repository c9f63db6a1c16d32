package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/meshdrive/meshdrive/remote"
	"github.com/meshdrive/meshdrive/remote/dirstore"
	"github.com/meshdrive/meshdrive/remote/keyring"
)

// TestHelp: every command answers --help on stdout with exit 0, the flags
// its synopsis names are the flags it has (all of them, unless it says
// [flags]), and README's line for it names the same flags.
func TestHelp(t *testing.T) {
	r := mustRun(t, cmdEnv(), "--help")
	for _, c := range commands() {
		if !strings.Contains(r.stdout, c.name) {
			t.Errorf("top help lacks %q", c.name)
		}
	}
	readme := readmeSynopses(t)
	cases := [][]string{{"init"}, {"mount"}, {"unmount"}, {"status"}, {"sync"}, {"cache"}, {"passwd"}, {"node", "serve"}, {"check"},
		{"node", "list"}, {"node", "add"}, {"node", "drain"}, {"node", "remove"},
		{"pin"}, {"unpin"}, {"recover"}, {"gc"}, {"snapshot"}, {"web-url"}}
	for _, c := range cases {
		r := mustRun(t, cmdEnv(), append(c, "--help")...)
		usage := "Usage: meshdrive " + strings.Join(c, " ")
		if !strings.HasPrefix(r.stdout, usage) {
			t.Errorf("%v --help: %q", c, r.stdout)
			continue
		}
		synopsis, _, _ := strings.Cut(r.stdout, "\n")
		have := map[string]bool{} // the flags --help lists
		for _, l := range strings.Split(r.stdout, "\n") {
			if strings.HasPrefix(l, "  -") {
				have[strings.Fields(l)[0][1:]] = true
			}
		}
		named := synopsisFlags(synopsis)
		for name := range named {
			if !have[name] {
				t.Errorf("%v: synopsis names --%s but the flag list lacks it", c, name)
			}
		}
		for name := range have {
			if !named[name] && !strings.Contains(synopsis, "[flags]") {
				t.Errorf("%v: synopsis %q lacks --%s", c, synopsis, name)
			}
		}
		line, ok := readme[strings.Join(c, " ")]
		if !ok {
			t.Errorf("README has no line for meshdrive %s", strings.Join(c, " "))
			continue
		}
		inReadme := synopsisFlags(line)
		for name := range have {
			if !inReadme[name] {
				t.Errorf("README's line for %v lacks --%s: %s", c, name, line)
			}
		}
		for name := range inReadme {
			if !have[name] {
				t.Errorf("README's line for %v names --%s, which it does not have: %s", c, name, line)
			}
		}
	}
	r = runBin(t, cmdEnv(), "frobnicate")
	if r.code != 2 || !strings.Contains(r.stderr, `unknown command "frobnicate"`) {
		t.Errorf("unknown command: %s", r)
	}
	r = runBin(t, cmdEnv(), "mount", "--bogus", "x")
	if r.code != 2 || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 || !strings.Contains(r.stderr, "-bogus") {
		t.Errorf("bad flag: %s", r)
	}
}

// synopsisFlags returns the names of the --flags a usage line names.
func synopsisFlags(synopsis string) map[string]bool {
	names := map[string]bool{}
	for _, f := range strings.Fields(synopsis) {
		f = strings.Trim(f, "[]`|")
		if !strings.HasPrefix(f, "--") {
			continue
		}
		name, _, _ := strings.Cut(strings.TrimPrefix(f, "--"), "=")
		names[name] = true
	}
	return names
}

// readmeSynopses returns README's command table: "node serve" -> the usage
// line in its first column (`meshdrive node serve --dir DIR ...`).
func readmeSynopses(t *testing.T) map[string]string {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	lines := map[string]string{}
	for _, row := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(row, "| `meshdrive ") {
			continue
		}
		first, _, _ := strings.Cut(strings.TrimPrefix(row, "| "), "` |")
		for _, u := range strings.Split(first, "` / `") { // pin ... / unpin ...
			u = strings.Trim(u, "`")
			words := strings.Fields(strings.TrimPrefix(u, "meshdrive "))
			name := words[0]
			if name == "node" {
				name += " " + words[1]
			}
			lines[name] = u
		}
	}
	return lines
}

// TestPasswd changes the passphrase: the old one stops working, the new one
// opens the key, the master key is the same, and every node holds the new
// wrapped key.
func TestPasswd(t *testing.T) {
	env := cmdEnv("MESHDRIVE_PASSPHRASE=old pass")
	dir, _ := newDefaultDrive(t, env)
	before, err := os.ReadFile(filepath.Join(dir, keyFile))
	if err != nil {
		t.Fatal(err)
	}
	master, err := keyring.Unwrap(before, []byte("old pass"))
	if err != nil {
		t.Fatal(err)
	}
	// A wrong passphrase: the refusal says where it came from.
	assertRefusal(t, runBin(t, cmdEnv("MESHDRIVE_PASSPHRASE=nope", "MESHDRIVE_NEW_PASSPHRASE=x"), "passwd", "--data", dir), dir, "",
		"wrong passphrase for drive at "+dir, "taken from $MESHDRIVE_PASSPHRASE", "the new one if meshdrive passwd changed it")
	wrong := filepath.Join(t.TempDir(), "pass")
	if err := os.WriteFile(wrong, []byte("nope\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	assertRefusal(t, runBin(t, cmdEnv("MESHDRIVE_PASSPHRASE=old pass", "MESHDRIVE_NEW_PASSPHRASE=x"), "passwd", "--data", dir, "--passphrase-file", wrong), dir, "",
		"read from --passphrase-file "+wrong)
	r := mustRun(t, cmdEnv("MESHDRIVE_PASSPHRASE=old pass", "MESHDRIVE_NEW_PASSPHRASE=new pass"), "passwd", "--data", dir)
	if !strings.Contains(r.stdout, "all 6 nodes") {
		t.Errorf("passwd output: %s", r.stdout)
	}
	// Not a terminal: each step and each node's answer is a plain line
	// on stderr as it happens (with 6 far nodes passwd took seconds and
	// said nothing until the end).
	for _, want := range []string{"passwd: wrapping the key under the new passphrase\n", "opening the 6 nodes\n", "6 of 6 nodes answered"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("passwd progress does not say %q:\n%s", want, r.stderr)
		}
	}
	for i := 1; i <= 6; i++ {
		if want := fmt.Sprintf("node-%d took the new key\n", i); !strings.Contains(r.stderr, want) {
			t.Errorf("passwd progress does not say %q:\n%s", want, r.stderr)
		}
	}
	after, _ := os.ReadFile(filepath.Join(dir, keyFile))
	if _, err := keyring.Unwrap(after, []byte("old pass")); err != keyring.ErrWrongPassphrase {
		t.Errorf("old passphrase on the new key: %v", err)
	}
	got, err := keyring.Unwrap(after, []byte("new pass"))
	if err != nil || string(got) != string(master) {
		t.Fatalf("new passphrase: %v (same key %v)", err, string(got) == string(master))
	}
	cfgBytes, _ := os.ReadFile(filepath.Join(dir, configFile))
	cfg, err := parseConfig(cfgBytes)
	if err != nil {
		t.Fatal(err)
	}
	sealer, err := remote.NewSealer(master)
	if err != nil {
		t.Fatal(err)
	}
	// Each node alone: a grid of that node plus five empty stores.
	for i := range cfg.Nodes {
		var members []remote.Member
		for j := range cfg.Nodes {
			d := filepath.Join(dir, cfg.Nodes[i].URL)
			if j != i {
				d = t.TempDir()
			}
			st, err := dirstore.New(d, dirstore.Options{})
			if err != nil {
				t.Fatal(err)
			}
			members = append(members, remote.Member{Name: cfg.Nodes[j].Name, Store: st})
		}
		g, err := remote.NewGrid(remote.GridOptions{K: cfg.K, M: cfg.M, Members: members, Sealer: sealer})
		if err != nil {
			t.Fatal(err)
		}
		key, err := g.GetMeta(context.Background(), metaKey)
		if err != nil || string(key) != string(after) {
			t.Errorf("node %s: meta/key %v (matches key.json: %v)", cfg.Nodes[i].Name, err, string(key) == string(after))
		}
		sc, err := g.GetMeta(context.Background(), metaConfig)
		if err != nil {
			t.Errorf("node %s: meta/config: %v", cfg.Nodes[i].Name, err)
			continue
		}
		plain, err := sealer.OpenMeta(configSealName, sc)
		if err != nil || string(plain) != string(cfgBytes) {
			t.Errorf("node %s: meta/config opens: %v, equals config.json: %v", cfg.Nodes[i].Name, err, string(plain) == string(cfgBytes))
		}
		if strings.Contains(string(sc), cfg.DriveID) {
			t.Errorf("node %s holds the config in the clear", cfg.Nodes[i].Name)
		}
	}
}

// TestForegroundSignal: a foreground mount unmounts and exits 0 on SIGINT
// and SIGTERM, and what was written before is there at the next mount.
func TestForegroundSignal(t *testing.T) {
	requireFuse(t)
	env := cmdEnv("MESHDRIVE_PASSPHRASE=pw")
	dir, mp := newDefaultDrive(t, env)
	cleanupMount(t, env, dir, mp)
	for i, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		cmd := exec.Command(meshdriveBin(t), "mount", "--data", dir, mp)
		cmd.Env = env
		stderr, err := cmd.StderrPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(stderr)
		ready := false
		for sc.Scan() {
			if strings.Contains(sc.Text(), "msg=mounted") {
				ready = true
				break
			}
		}
		if !ready {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("foreground mount never said mounted")
		}
		go func() {
			for sc.Scan() {
			}
		}()
		if !mounted(mp) {
			t.Fatal("said mounted but nothing is mounted")
		}
		name := filepath.Join(mp, "note"+string(rune('0'+i)))
		if err := os.WriteFile(name, []byte("written before "+sig.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd.Process.Signal(sig)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("exit after %v: %v", sig, err)
			}
		case <-time.After(60 * time.Second):
			cmd.Process.Kill()
			t.Fatalf("mount did not exit after %v", sig)
		}
		if mounted(mp) || !lockFree(t, dir) {
			t.Fatalf("after %v: mounted %v, lock free %v", sig, mounted(mp), lockFree(t, dir))
		}
	}
	mustRun(t, env, "mount", "--daemon", "--read-only", "--data", dir, mp)
	for i, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		b, err := os.ReadFile(filepath.Join(mp, "note"+string(rune('0'+i))))
		if err != nil || string(b) != "written before "+sig.String() {
			t.Errorf("note %d after remount: %q %v", i, b, err)
		}
	}
	if err := os.WriteFile(filepath.Join(mp, "ro"), []byte("x"), 0o644); err == nil {
		t.Error("wrote to a --read-only mount")
	}
	mustRun(t, env, "unmount", "--data", dir, mp)
}

// TestFirstMount: mount on a data dir that has never seen meshdrive makes
// the default drive, says where it lives, and mounts it.
func TestFirstMount(t *testing.T) {
	requireFuse(t)
	// Real key-derivation cost here: this is the path a new user takes.
	env := append(cmdEnv("MESHDRIVE_PASSPHRASE=first"), testKDFEnv+"=0")
	base := t.TempDir()
	dir := filepath.Join(base, "xdg", "meshdrive")
	mp := filepath.Join(base, "Drive")
	os.Mkdir(mp, 0o755)
	cleanupMount(t, env, dir, mp)
	r := mustRun(t, append(env, "XDG_DATA_HOME="+filepath.Join(base, "xdg")), "mount", "--daemon", mp)
	for _, w := range []string{"lives in " + dir, "passphrase and one node", "password manager"} {
		if !strings.Contains(r.stderr, w) {
			t.Errorf("first mount output lacks %q:\n%s", w, r.stderr)
		}
	}
	if !mounted(mp) {
		t.Fatal("not mounted")
	}
	for i := 1; i <= 6; i++ {
		if _, err := os.Stat(filepath.Join(dir, "nodes", "node-"+string(rune('0'+i)))); err != nil {
			t.Errorf("node dir %d: %v", i, err)
		}
	}
	st := statusJSON(t, env, dir)
	if st.NodesUp != 6 || st.K != 4 || st.M != 2 {
		t.Errorf("status: %+v", st)
	}
	mustRun(t, env, "unmount", "--data", dir, mp)
	// A second mount does not make a new drive or print the notice again.
	r = mustRun(t, append(env, "MESHDRIVE_DATA="+dir), "mount", "--daemon", mp)
	if strings.Contains(r.stderr, "lives in") {
		t.Errorf("second mount repeated the notice:\n%s", r.stderr)
	}
	mustRun(t, env, "unmount", "--data", dir, mp)
}

// TestNodeServeStops: SIGTERM ends a node with exit 0.
func TestNodeServeStops(t *testing.T) {
	n := startNode(t, t.TempDir())
	if err := n.stop(t, syscall.SIGTERM); err != nil {
		t.Errorf("node exit after SIGTERM: %v", err)
	}
	r := runBin(t, cmdEnv(), "node", "serve", "--dir", t.TempDir())
	if r.code != 2 || !strings.Contains(r.stderr, "--listen") {
		t.Errorf("node serve without --listen: %s", r)
	}
}

// TestMountHelper runs contrib/mount.fuse.meshdrive the way mount(8) does.
func TestMountHelper(t *testing.T) {
	requireFuse(t)
	env := cmdEnv("MESHDRIVE_PASSPHRASE=helper")
	dir, mp := newDefaultDrive(t, env)
	cleanupMount(t, env, dir, mp)
	pf := filepath.Join(t.TempDir(), "pass")
	os.WriteFile(pf, []byte("helper\n"), 0o600)
	helper, err := filepath.Abs("../../contrib/mount.fuse.meshdrive")
	if err != nil {
		t.Fatal(err)
	}
	// The passphrase comes from the option, not the environment.
	henv := append(cmdEnv(), "MESHDRIVE="+meshdriveBin(t))
	out, err := exec.Command("env", append(henv, helper, dir, mp, "-o", "rw,_netdev,bogus")...).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "unknown option bogus") || mounted(mp) {
		t.Errorf("unknown option: %v %s", err, out)
	}
	mountHelper := func(opts string) {
		t.Helper()
		cmd := exec.Command(helper, dir, mp, "-o", opts)
		cmd.Env = henv
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("mount.fuse.meshdrive -o %s: %v\n%s", opts, err, out)
		}
		if !mounted(mp) {
			t.Fatal("helper returned 0 but nothing is mounted")
		}
	}
	mountHelper("rw,nofail,_netdev,cache_size=64MiB,log_level=debug,passphrase_file=" + pf)
	if err := os.WriteFile(filepath.Join(mp, "x"), []byte("via fstab"), 0o644); err != nil {
		t.Fatal(err)
	}
	mustRun(t, env, "unmount", "--data", dir, mp)
	// Variables from env_file (S3 credentials at boot; here the
	// passphrase), and a name meshdrive does not read refused.
	ef := filepath.Join(t.TempDir(), "env")
	os.WriteFile(ef, []byte("# for the boot mount\nMESHDRIVE_PASSPHRASE=helper\nAWS_REGION=eu-west-1\nAWS_ACCESS_KEY_ID_OFFICE=a\nAWS_SECRET_ACCESS_KEY_OFFICE=b\n"), 0o600)
	mountHelper("env_file=" + ef)
	mustRun(t, env, "unmount", "--data", dir, mp)
	bad := filepath.Join(t.TempDir(), "env")
	os.WriteFile(bad, []byte("PATH=/nowhere\n"), 0o600)
	out, err = exec.Command("env", append(henv, helper, dir, mp, "-o", "env_file="+bad)...).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "PATH is not a variable meshdrive reads") || mounted(mp) {
		t.Errorf("env_file with PATH: %v %s", err, out)
	}
	os.WriteFile(bad, []byte("AWS_ACCESS_KEY_ID_A-B=x\n"), 0o600)
	out, err = exec.Command("env", append(henv, helper, dir, mp, "-o", "env_file="+bad)...).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "is not a variable name") || mounted(mp) {
		t.Errorf("env_file with a bad name: %v %s", err, out)
	}
	mountHelper("ro,passphrase_file=" + pf)
	if b, err := os.ReadFile(filepath.Join(mp, "x")); err != nil || string(b) != "via fstab" {
		t.Errorf("read back: %q %v", b, err)
	}
	if err := os.WriteFile(filepath.Join(mp, "y"), nil, 0o644); err == nil {
		t.Error("option ro did not make the mount read-only")
	}
	mustRun(t, env, "unmount", "--data", dir, mp)
}

// TestProductBinaryHasNoTestHooks builds the binary as a user gets it (no
// build tags): the test suites' environment variables do nothing there.
// MESHDRIVE_INSECURE_TEST_KDF=1 still yields a key with the default cost,
// and neither variable's name is in the binary.
func TestProductBinaryHasNoTestHooks(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "meshdrive")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	raw, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{testKDFEnv, "MESHDRIVE_TEST_CORRUPT_READS"} {
		if bytes.Contains(raw, []byte(name)) {
			t.Errorf("the product binary contains %s", name)
		}
	}
	dir := filepath.Join(t.TempDir(), "data")
	cmd := exec.Command(bin, "init", "--data", dir)
	cmd.Env = cmdEnv("MESHDRIVE_PASSPHRASE=product") // testKDFEnv=1 among them
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("init: %v\n%s", err, out)
	}
	var blob keyring.Blob
	data, err := os.ReadFile(filepath.Join(dir, keyFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &blob); err != nil {
		t.Fatal(err)
	}
	if got := blob.Params(); got != keyring.DefaultParams {
		t.Fatalf("the product binary made a key with %+v under %s=1, want %+v", got, testKDFEnv, keyring.DefaultParams)
	}
}

// TestMountThroughSymlink: a mountpoint given through a symlink (omlink ->
// Drive) is recorded resolved, and unmount by either name unmounts it and
// waits for the mount process.
func TestMountThroughSymlink(t *testing.T) {
	requireFuse(t)
	env := cmdEnv("MESHDRIVE_PASSPHRASE=pw1")
	dir, mp := newDefaultDrive(t, env)
	cleanupMount(t, env, dir, mp)
	link := filepath.Join(filepath.Dir(mp), "omlink")
	if err := os.Symlink("Drive", link); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ mount, unmount string }{{link + "/", link}, {mp, link}, {link, mp}} {
		r := mustRun(t, env, "mount", "--daemon", "--data", dir, c.mount)
		if !strings.Contains(r.stdout, "mounted at "+mp+" ") {
			t.Errorf("mount %s: %s", c.mount, r)
		}
		if _, holder := lockHolder(dir); holder != mp {
			t.Errorf("mount %s: the lock names %q, want %s", c.mount, holder, mp)
		}
		r = mustRun(t, env, "unmount", "--data", dir, c.unmount)
		if !strings.Contains(r.stdout, "unmounted "+mp) {
			t.Errorf("unmount %s: %s", c.unmount, r)
		}
		// unmount waited for the mount process: the lock is free now.
		if !lockFree(t, dir) {
			t.Fatalf("mount %s, unmount %s: the mount process still holds the lock after unmount returned", c.mount, c.unmount)
		}
	}
}

// TestPathInMount: a path reaching the mountpoint through a symlink is
// inside it; what follows the mountpoint is not resolved.
func TestPathInMount(t *testing.T) {
	base := t.TempDir()
	mp := filepath.Join(base, "om")
	os.MkdirAll(filepath.Join(mp, "work"), 0o755)
	os.Symlink("om", filepath.Join(base, "omlink"))
	os.Symlink(".", filepath.Join(mp, "up"))
	for _, c := range []struct{ p, want string }{
		{filepath.Join(base, "om/work/a"), "work/a"},
		{filepath.Join(base, "omlink/work/a"), "work/a"},
		{filepath.Join(base, "omlink/gone/a"), "gone/a"},
		{filepath.Join(base, "omlink/up/a"), "up/a"},
	} {
		if got, ok := pathInMount(c.p, mp); !ok || got != c.want {
			t.Errorf("pathInMount(%s) = %q, %v; want %q", c.p, got, ok, c.want)
		}
	}
	if got, ok := pathInMount(filepath.Join(base, "elsewhere/a"), mp); ok {
		t.Errorf("a path outside the mount is inside it as %q", got)
	}
}

// TestUnmountOfStoppedMount: unmount of a drive whose mount process is
// stopped (SIGSTOP: hung, or paused in a debugger) returns. A review found
// that resolving the mountpoint with stat asked the stopped daemon, and
// unmount then waited for ever.
func TestUnmountOfStoppedMount(t *testing.T) {
	requireFuse(t)
	env := cmdEnv("MESHDRIVE_PASSPHRASE=pw1")
	dir, mp := newDefaultDrive(t, env)
	cleanupMount(t, env, dir, mp)
	mustRun(t, env, "mount", "--daemon", "--data", dir, mp)
	pid, _ := lockHolder(dir)
	if pid <= 0 {
		t.Fatal("no mount process in the lock file")
	}
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	cont := func() { syscall.Kill(pid, syscall.SIGCONT) }
	defer cont()
	time.Sleep(2 * time.Second) // past the kernel's attribute cache of the root
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, meshdriveBin(t), "unmount", "--data", dir, "--wait", "1s", mp)
	cmd.Env = env
	out, _ := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("unmount of a stopped mount still running after 30 s: %s", out)
	}
	if isMounted(mp) {
		t.Errorf("still mounted after unmount: %s", out)
	}
	cont()
	for deadline := time.Now().Add(30 * time.Second); !lockFree(t, dir); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the mount process did not end after it was continued")
		}
	}
}
