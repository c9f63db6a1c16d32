package integration

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	_ "modernc.org/sqlite" // the journal's database, for integrity checks
)

// node is one `meshdrive node serve` process on 127.0.0.1. Its directory
// and address survive restarts.
type node struct {
	name    string
	dir     string
	addr    string // 127.0.0.1:PORT
	logPath string
	p       *proc // nil while stopped
	stopped bool  // SIGSTOPped
}

func (n *node) url() string { return "http://" + n.addr }

// startNodes starts count nodes, each with a directory under a fresh temp
// dir (or dirs[i] when given). They are killed at the end of t.
func startNodes(t *testing.T, count int, dirs ...string) []*node {
	t.Helper()
	base := t.TempDir()
	nodes := make([]*node, count)
	// freeAddr's port is free only until its listener closes: the kernel
	// may hand the same one out again at once (two nodes on one port made
	// init refuse the list, "given twice").
	taken := map[string]bool{}
	for i := range nodes {
		addr := freeAddr(t)
		for taken[addr] {
			addr = freeAddr(t)
		}
		taken[addr] = true
		n := &node{name: fmt.Sprintf("node-%d", i), addr: addr}
		n.dir = filepath.Join(base, n.name)
		if i < len(dirs) && dirs[i] != "" {
			n.dir = dirs[i]
		}
		n.logPath = filepath.Join(base, n.name+".log")
		if err := os.MkdirAll(n.dir, 0o755); err != nil {
			t.Fatalf("node dir: %v", err)
		}
		nodes[i] = n
		t.Cleanup(func() {
			if n.p != nil {
				n.p.kill()
			}
		})
	}
	for _, n := range nodes {
		n.start(t)
	}
	return nodes
}

// start runs the node process and waits until its port accepts.
func (n *node) start(t testing.TB) {
	t.Helper()
	if n.p != nil && !n.p.exited() {
		t.Fatalf("%s is already running", n.name)
	}
	p, err := startProc(n.name, n.logPath, nil, "node", "serve", "--dir", n.dir, "--new", "--listen", n.addr)
	if err != nil {
		t.Fatalf("%v", err)
	}
	n.p = p
	n.stopped = false
	err = waitFor(20*time.Second, n.name+" to accept on "+n.addr, func() (bool, error) {
		if p.exited() {
			return false, fmt.Errorf("%s exited: %v\n%s", n.name, p.err, p.logTail(2000))
		}
		c, err := net.DialTimeout("tcp", n.addr, time.Second)
		if err != nil {
			return false, nil
		}
		c.Close()
		return true, nil
	})
	if err != nil {
		t.Fatalf("%v", err)
	}
}

// kill SIGKILLs the node.
func (n *node) kill(t testing.TB) {
	t.Helper()
	if n.p == nil {
		t.Fatalf("%s is not running", n.name)
	}
	n.p.kill()
	n.p = nil
	n.stopped = false
}

// stop SIGSTOPs the node: it keeps its connections and answers nothing.
func (n *node) stop(t testing.TB) {
	t.Helper()
	if err := n.p.signal(syscall.SIGSTOP); err != nil {
		t.Fatalf("SIGSTOP %s: %v", n.name, err)
	}
	n.stopped = true
}

// cont SIGCONTs a stopped node.
func (n *node) cont(t testing.TB) {
	t.Helper()
	if err := n.p.signal(syscall.SIGCONT); err != nil {
		t.Fatalf("SIGCONT %s: %v", n.name, err)
	}
	n.stopped = false
}

func nodeURLs(nodes []*node) []string {
	urls := make([]string, len(nodes))
	for i, n := range nodes {
		urls[i] = n.url()
	}
	return urls
}

// shardRE matches a shard object's file name: SEGMENTID.INDEX.
var shardRE = regexp.MustCompile(`^([0-9a-f]{32})\.(\d+)$`)

// shards lists the shard objects in a node directory as segment -> indexes.
func shards(dir string) (map[string][]string, error) {
	out := map[string][]string{}
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		if m := shardRE.FindStringSubmatch(d.Name()); m != nil {
			out[m[1]] = append(out[m[1]], m[2])
		}
		return nil
	})
	return out, err
}

// shardCount counts, per segment, the shards held by the given node dirs.
func shardCount(t testing.TB, dirs []string) map[string]int {
	t.Helper()
	count := map[string]int{}
	for _, d := range dirs {
		s, err := shards(d)
		if err != nil {
			t.Fatalf("list shards in %s: %v", d, err)
		}
		for seg, idx := range s {
			count[seg] += len(idx)
		}
	}
	return count
}

// drive is a meshdrive data dir and its mountpoint; the mount process is a
// child of the test (foreground `meshdrive mount`), so the test holds its
// PID and can SIGKILL it.
type drive struct {
	owner   *testing.T // cleanups are registered here
	data    string
	mnt     string
	logPath string
	env     []string // MESHDRIVE_PASSPHRASE, MESHDRIVE_DATA
	p       *proc    // the mount process, nil while unmounted
	mounts  int
}

type driveOptions struct {
	Nodes    []string // node URLs; none = the embedded default grid
	K, M     int
	Data     string   // data dir; default a fresh temp dir
	InitArgs []string // more init flags
}

// newDrive runs `meshdrive init` and returns the (unmounted) drive.
func newDrive(t *testing.T, o driveOptions) *drive {
	t.Helper()
	base := t.TempDir()
	d := &drive{owner: t, data: o.Data, mnt: filepath.Join(base, "mnt"), logPath: filepath.Join(base, "meshdrive.log")}
	if d.data == "" {
		d.data = filepath.Join(base, "data")
	}
	d.env = []string{"MESHDRIVE_PASSPHRASE=integration test passphrase", "MESHDRIVE_DATA=" + d.data}
	if err := os.MkdirAll(d.mnt, 0o755); err != nil {
		t.Fatalf("%v", err)
	}
	args := []string{"init", "--data", d.data}
	for _, u := range o.Nodes {
		args = append(args, "--node", u)
	}
	if o.K > 0 {
		args = append(args, "--k", fmt.Sprint(o.K), "--m", fmt.Sprint(o.M))
	}
	args = append(args, o.InitArgs...)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := cli(ctx, d.env, args...); err != nil {
		t.Fatalf("%v", err)
	}
	t.Cleanup(func() {
		if d.p != nil {
			d.forceUnmount(t)
		}
		if t.Failed() {
			t.Logf("mount log %s (tail):\n%s", d.logPath, fileTail(d.logPath, 6000))
		}
	})
	return d
}

// path returns the path of rel inside the mount.
func (d *drive) path(rel string) string { return filepath.Join(d.mnt, rel) }

// mount starts `meshdrive mount` in the foreground as a child and waits
// until the mountpoint shows in /proc/self/mountinfo.
func (d *drive) mount(t testing.TB, extraEnv []string, args ...string) {
	t.Helper()
	if d.p != nil {
		t.Fatalf("drive is already mounted (pid %d)", d.p.pid())
	}
	d.mounts++
	full := append([]string{"mount", "--data", d.data, "--log-level", "info"}, args...)
	full = append(full, d.mnt)
	p, err := startProc(fmt.Sprintf("mount #%d", d.mounts), d.logPath, append(append([]string{}, d.env...), extraEnv...), full...)
	if err != nil {
		t.Fatalf("%v", err)
	}
	err = waitFor(60*time.Second, "mount at "+d.mnt, func() (bool, error) {
		if isMounted(d.mnt) {
			return true, nil
		}
		if p.exited() {
			return false, fmt.Errorf("meshdrive mount exited: %v\n%s", p.err, p.logTail(3000))
		}
		return false, nil
	})
	if err != nil {
		p.kill()
		detach(d.mnt)
		t.Fatalf("%v", err)
	}
	d.p = p
}

// unmount runs `meshdrive unmount` and waits for the mount process to exit
// cleanly.
func (d *drive) unmount(t testing.TB) {
	t.Helper()
	if d.p == nil {
		t.Fatalf("drive is not mounted")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	out, err := cli(ctx, d.env, "unmount", "--data", d.data, d.mnt)
	if err != nil {
		d.forceUnmount(t)
		t.Fatalf("unmount: %v", err)
	}
	perr, ok := d.p.wait(60 * time.Second)
	if !ok {
		d.forceUnmount(t)
		t.Fatalf("mount process still running 60s after `meshdrive unmount` (%s)", strings.TrimSpace(out))
	}
	d.p = nil
	if perr != nil {
		t.Fatalf("mount process exited with %v after unmount:\n%s", perr, fileTail(d.logPath, 3000))
	}
	if isMounted(d.mnt) {
		detach(d.mnt)
		t.Fatalf("%s still mounted after the mount process exited", d.mnt)
	}
}

// crash SIGKILLs the mount process and detaches the dead mount.
func (d *drive) crash(t testing.TB) {
	t.Helper()
	if d.p == nil {
		t.Fatalf("drive is not mounted")
	}
	d.p.kill()
	d.p = nil
	if err := detach(d.mnt); err != nil {
		t.Fatalf("after SIGKILL of the mount process: %v", err)
	}
}

// forceUnmount is the last resort of cleanups: try unmount, then SIGKILL.
func (d *drive) forceUnmount(t testing.TB) {
	if d.p == nil {
		return
	}
	if isMounted(d.mnt) {
		syscall.Unmount(d.mnt, 0)
	}
	if _, ok := d.p.wait(30 * time.Second); !ok {
		t.Logf("mount process pid %d did not exit after unmount; SIGKILL", d.p.pid())
		d.p.kill()
	}
	d.p = nil
	if err := detach(d.mnt); err != nil {
		t.Logf("%v", err)
	}
}

// cmd runs a meshdrive subcommand against this drive.
func (d *drive) cmd(timeout time.Duration, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	full := append(append([]string{}, args...), "--data", d.data)
	return cli(ctx, d.env, full...)
}

// sync waits until everything written is grid-durable.
func (d *drive) sync(t testing.TB, timeout time.Duration) {
	t.Helper()
	start := time.Now()
	if out, err := d.cmd(timeout, "sync"); err != nil {
		t.Fatalf("sync (after %v): %v\n%s", time.Since(start).Round(time.Millisecond), err, lastLines(out, 5))
	}
}

// cacheClear drops the drive's cached blocks.
func (d *drive) cacheClear(t testing.TB) {
	t.Helper()
	if _, err := d.cmd(time.Minute, "cache", "clear"); err != nil {
		t.Fatalf("%v", err)
	}
}

// status is the part of `meshdrive status --json` the suites look at.
type status struct {
	State      string `json:"state"`
	Durable    bool   `json:"durable"`
	Online     bool   `json:"online"`
	NodesUp    int    `json:"nodes_up"`
	NodesTotal int    `json:"nodes_total"`
	Nodes      []struct {
		Name   string `json:"name"`
		URL    string `json:"url"`
		Up     bool   `json:"up"`
		Free   int64  `json:"free"`
		Shards int64  `json:"shards"`
		Full   bool   `json:"full"`
	} `json:"nodes"`
	Uploads struct {
		Files         int64  `json:"files"`
		Bytes         int64  `json:"bytes"`
		InFlightBytes int64  `json:"in_flight_bytes"`
		DoneBytes     int64  `json:"done_bytes"`
		ShippedBytes  int64  `json:"shipped_bytes"`
		Errors        int64  `json:"errors"`
		LastError     string `json:"last_error"`
		RepairOwed    int64  `json:"repair_owed"`
	} `json:"uploads"`
}

func (d *drive) status(t testing.TB) status {
	t.Helper()
	out, err := d.cmd(30*time.Second, "status", "--json")
	if err != nil {
		t.Fatalf("%v", err)
	}
	var s status
	if err := json.Unmarshal([]byte(jsonPart(out)), &s); err != nil {
		t.Fatalf("status --json does not parse: %v\n%s", err, out)
	}
	return s
}

// jsonPart drops anything before the first '{' (a warning line).
func jsonPart(s string) string {
	if i := strings.IndexByte(s, '{'); i > 0 {
		return s[i:]
	}
	return s
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// checkJournal runs PRAGMA integrity_check on a copy of each sqlite
// database under DATA/journal (a copy, so the check itself cannot recover
// or change what the next mount finds). Call it while unmounted.
func (d *drive) checkJournal(t testing.TB) {
	t.Helper()
	var dbs []string
	filepath.WalkDir(filepath.Join(d.data, "journal"), func(path string, e os.DirEntry, err error) error {
		if err == nil && !e.IsDir() && isSQLite(path) {
			dbs = append(dbs, path)
		}
		return nil
	})
	if len(dbs) == 0 {
		t.Fatalf("no sqlite database under %s", filepath.Join(d.data, "journal"))
	}
	for _, db := range dbs {
		tmp := t.TempDir()
		cp := filepath.Join(tmp, filepath.Base(db))
		for _, suffix := range []string{"", "-wal"} {
			if err := copyFile(db+suffix, cp+suffix); err != nil && !(suffix != "" && os.IsNotExist(err)) {
				t.Fatalf("copy %s: %v", db+suffix, err)
			}
		}
		conn, err := sql.Open("sqlite", cp)
		if err != nil {
			t.Fatalf("open %s: %v", cp, err)
		}
		var res string
		err = conn.QueryRow("PRAGMA integrity_check").Scan(&res)
		conn.Close()
		if err != nil {
			t.Fatalf("integrity_check of %s: %v", db, err)
		}
		if res != "ok" {
			t.Fatalf("integrity_check of %s: %s", db, res)
		}
	}
}

// isSQLite reports whether path starts with the sqlite header.
func isSQLite(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	var hdr [16]byte
	if _, err := io.ReadFull(f, hdr[:]); err != nil {
		return false
	}
	return string(hdr[:]) == "SQLite format 3\x00"
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// mountTmpfs mounts a tmpfs of the given size on a fresh directory and
// unmounts it at the end of t.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+size+",mode=0755"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("mount tmpfs: %v", err)
		}
		t.Skipf("cannot mount tmpfs: %v", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			syscall.Unmount(dir, syscall.MNT_DETACH)
		}
	})
	return dir
}

// freeBytes is the free space of the file system holding path.
func freeBytes(t testing.TB, path string) int64 {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		t.Fatalf("statfs %s: %v", path, err)
	}
	return int64(st.Bavail) * st.Bsize
}

// dataShardNodes returns the indexes of the nodes that hold data shards
// (index < k) of stored segments, the most loaded first: faults there hit
// healthy reads, which fetch data shards only.
func dataShardNodes(t testing.TB, nodes []*node, k int) []int {
	t.Helper()
	counts := make([]int, len(nodes))
	for i, n := range nodes {
		s, err := shards(n.dir)
		if err != nil {
			t.Fatalf("list shards in %s: %v", n.dir, err)
		}
		for _, idx := range s {
			for _, x := range idx {
				if v, err := strconv.Atoi(x); err == nil && v < k {
					counts[i]++
				}
			}
		}
	}
	var order []int
	for i, c := range counts {
		if c > 0 {
			order = append(order, i)
		}
	}
	sort.SliceStable(order, func(a, b int) bool { return counts[order[a]] > counts[order[b]] })
	return order
}
