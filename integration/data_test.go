package integration

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// content is the deterministic, incompressible content of a test file.
type content struct {
	seed uint64
	size int64
}

// reader streams the content.
func (c content) reader() io.Reader {
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], c.seed)
	return io.LimitReader(rand.NewChaCha8(key), c.size)
}

// sum is the SHA-256 of the content.
func (c content) sum() [32]byte {
	h := sha256.New()
	io.Copy(h, c.reader())
	var s [32]byte
	copy(s[:], h.Sum(nil))
	return s
}

// writeContent writes c to path, fsyncs and closes it.
func writeContent(path string, c content) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	buf := make([]byte, 1<<20)
	if _, err := io.CopyBuffer(f, c.reader(), buf); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("fsync %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", path, err)
	}
	return nil
}

// checkContent reads path and compares it with c, after dropping the
// kernel's page cache of the file so the read reaches the drive.
func checkContent(path string, c content) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
	h := sha256.New()
	n, err := io.CopyBuffer(h, f, make([]byte, 1<<20))
	if err != nil {
		return fmt.Errorf("read %s after %d bytes: %w", path, n, err)
	}
	if n != c.size {
		return fmt.Errorf("%s: %d bytes, want %d", path, n, c.size)
	}
	if !bytes.Equal(h.Sum(nil), func() []byte { s := c.sum(); return s[:] }()) {
		return fmt.Errorf("%s: content differs from what was written (sha256 mismatch)", path)
	}
	return nil
}

// fileSet is a set of test files with known content, by path relative to
// the mount.
type fileSet map[string]content

func (fs fileSet) bytes() int64 {
	var n int64
	for _, c := range fs {
		n += c.size
	}
	return n
}

// write writes every file of the set under root.
func (fs fileSet) write(t testing.TB, root string) {
	t.Helper()
	for _, rel := range fs.names() {
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatalf("%v", err)
		}
		if err := writeContent(p, fs[rel]); err != nil {
			t.Fatalf("%v", err)
		}
	}
}

// check verifies every file of the set under root and returns the bytes
// verified.
func (fs fileSet) check(t testing.TB, root string) int64 {
	t.Helper()
	var n int64
	for _, rel := range fs.names() {
		if err := checkContent(filepath.Join(root, rel), fs[rel]); err != nil {
			t.Errorf("%v", err)
			continue
		}
		n += fs[rel].size
	}
	return n
}

func (fs fileSet) names() []string {
	names := make([]string, 0, len(fs))
	for n := range fs {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// makeFiles returns count files of size bytes named prefix-N, seeded from seed.
func makeFiles(prefix string, count int, size int64, seed uint64) fileSet {
	fs := fileSet{}
	for i := range count {
		fs[fmt.Sprintf("%s-%03d", prefix, i)] = content{seed: seed*1000 + uint64(i), size: size}
	}
	return fs
}

// fioJob is one fio job given on the command line (no job file: options
// in a job file silently override later command-line ones such as
// --do_verify). args exclude --name, --directory and verify options.
type fioJob struct {
	name string
	args []string
}

// fioVerifyArgs are the verify options of every job.
var fioVerifyArgs = []string{"--verify=crc32c", "--verify_fatal=1", "--do_verify=1"}

type fioResult struct {
	out        string // combined output
	readBytes  int64  // read (verified) bytes, over all jobs
	writeBytes int64
	writeIOs   int64
}

// runFio runs a job against dir with workdir as its working directory
// (verify state files land there). extra comes last.
func runFio(ctx context.Context, workdir, dir string, job fioJob, extra ...string) (fioResult, error) {
	args := []string{"--name=" + job.name, "--directory=" + dir, "--output-format=json"}
	args = append(args, fioVerifyArgs...)
	args = append(args, job.args...)
	args = append(args, extra...)
	cmd := exec.CommandContext(ctx, "fio", args...)
	cmd.Dir = workdir
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	err := cmd.Run()
	res := fioResult{out: stderr.String() + stdout.String()}
	var parsed struct {
		Jobs []struct {
			Error int `json:"error"`
			Read  struct {
				IOBytes int64 `json:"io_bytes"`
			} `json:"read"`
			Write struct {
				IOBytes  int64 `json:"io_bytes"`
				TotalIOs int64 `json:"total_ios"`
			} `json:"write"`
		} `json:"jobs"`
	}
	if i := strings.IndexByte(stdout.String(), '{'); i >= 0 {
		if jerr := json.Unmarshal(stdout.Bytes()[i:], &parsed); jerr == nil {
			for _, j := range parsed.Jobs {
				res.readBytes += j.Read.IOBytes
				res.writeBytes += j.Write.IOBytes
				res.writeIOs += j.Write.TotalIOs
			}
		}
	}
	if err != nil {
		return res, fmt.Errorf("fio %s: %w\n%s", strings.Join(args, " "), err, fioErrors(res.out))
	}
	if strings.Contains(res.out, "verify failed") || strings.Contains(res.out, "bad magic") || strings.Contains(res.out, "verify: bad") {
		return res, fmt.Errorf("fio %s exited 0 but reported verify errors:\n%s", strings.Join(args, " "), fioErrors(res.out))
	}
	return res, nil
}

// fioErrors keeps fio's error lines (the JSON report is long).
func fioErrors(out string) string {
	var keep []string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "fio:") || strings.Contains(l, "verify") || strings.Contains(l, "error") {
			keep = append(keep, l)
		}
		if len(keep) > 20 {
			break
		}
	}
	if len(keep) == 0 {
		return lastLines(out, 10)
	}
	return strings.Join(keep, "\n")
}

// isVerifyFailure reports whether fio's output shows a data verification
// failure (as opposed to an I/O error or a usage error).
func isVerifyFailure(out string) bool {
	return strings.Contains(out, "verify failed") || strings.Contains(out, "bad magic") ||
		strings.Contains(out, "verify: bad") || strings.Contains(out, "bad header")
}

// timedRead reads the byte range [off, off+n) of path after dropping the
// page cache of that range, and returns how long it took. The read runs in
// a goroutine so a stalled FUSE read costs the caller at most limit.
func timedRead(path string, off, n int64, limit time.Duration) (time.Duration, []byte, error) {
	type result struct {
		d   time.Duration
		b   []byte
		err error
	}
	ch := make(chan result, 1)
	go func() {
		f, err := os.Open(path)
		if err != nil {
			ch <- result{err: err}
			return
		}
		defer f.Close()
		unix.Fadvise(int(f.Fd()), off, n, unix.FADV_DONTNEED)
		b := make([]byte, n)
		start := time.Now()
		m, err := f.ReadAt(b, off)
		d := time.Since(start)
		if errors.Is(err, io.EOF) && int64(m) == n {
			err = nil
		}
		ch <- result{d, b[:m], err}
	}()
	select {
	case r := <-ch:
		return r.d, r.b, r.err
	case <-time.After(limit):
		return limit, nil, fmt.Errorf("read of %s at %d stalled for more than %v", path, off, limit)
	}
}

// contentRange returns bytes [off, off+n) of c.
func (c content) contentRange(off, n int64) []byte {
	r := c.reader()
	io.CopyN(io.Discard, r, off)
	b := make([]byte, n)
	m, _ := io.ReadFull(r, b)
	return b[:m]
}

// percentile returns the p-th percentile (0..100) of ds.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(float64(len(s)-1) * p / 100)
	return s[i]
}

// mkdirAll makes the parent directories of path.
func mkdirAll(path string) error { return os.MkdirAll(filepath.Dir(path), 0o755) }
