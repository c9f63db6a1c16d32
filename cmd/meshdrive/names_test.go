package main

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"golang.org/x/sys/unix"

	"github.com/meshdrive/meshdrive/fs"
	"github.com/meshdrive/meshdrive/journal/href"
	"github.com/meshdrive/meshdrive/journal/repair"
)

// hostileNames are file names that printed raw rewrite the terminal,
// forge lines of output, or print as mojibake.
var hostileNames = []string{
	"caf\xe9.txt",                // Latin-1
	"\x1b[2J\x1b[31mred",         // clear the screen, then red
	"two\nLOST: forged line",     // a forged line
	"cr\rmeshdrive: all durable", // overwrites what came before on its line
	"it's \\ \x07",               // a bell, with ' and \ to escape
	"rtl\u202etxt.exe",           // a right-to-left override
	"nel\u0085csi\u009b2J",       // C1 controls, which some terminals obey
	"$'x'",                       // looks quoted
}

// TestShowName: printable UTF-8 names print as they are (a space, ' and
// \, U+FFFD itself, CJK spaces and emoji joiners included); any other is
// quoted as $'...' with escapes.
func TestShowName(t *testing.T) {
	for in, want := range map[string]string{
		"photo.jpg":              "photo.jpg",
		"/docs/my file (1).txt":  "/docs/my file (1).txt",
		"café.txt":               "café.txt",
		"it's a \\ back":         "it's a \\ back",
		"d\ufffdj\ufffd":         "d\ufffdj\ufffd",
		"日本語\u3000メモ":            "日本語\u3000メモ",
		"👩\u200d💻 notes":         "👩\u200d💻 notes",
		"":                       "",
		"caf\xe9.txt":            `$'caf\xe9.txt'`,
		"/d\xe9j\xe0/caf\xe9":    `$'/d\xe9j\xe0/caf\xe9'`,
		"\x1b[31mred":            `$'\x1b[31mred'`,
		"two\nlines":             `$'two\nlines'`,
		"cr\rforged":             `$'cr\rforged'`,
		"tab\there":              `$'tab\there'`,
		"it's \\ \x07":           `$'it\'s \\ \a'`,
		"del\x7f":                `$'del\x7f'`,
		"rtl\u202etxt.exe":       `$'rtl\u202etxt.exe'`,
		"nel\u0085":              `$'nel\u0085'`,
		"tag\U000e0041":          `$'tag\U000e0041'`,
		"$'x'":                   `$'$\'x\''`,
		"\xe9\xff\xc3":           `$'\xe9\xff\xc3'`,
		"caf\xc3\xa9\xe9 (copy)": `$'café\xe9 (copy)'`,
	} {
		if got := showName(in); got != want {
			t.Errorf("showName(%q) = %s; want %s", in, got, want)
		}
	}
}

// TestShowNameShell: a quoted name pasted into bash names the file again:
// $'...' gives back its bytes.
func TestShowNameShell(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Fatalf("bash is needed to check that quoted names read back: %v", err)
	}
	for _, n := range hostileNames {
		cmd := exec.Command(bash, "-c", "printf %s "+showName(n))
		cmd.Env = append(os.Environ(), "LC_ALL=C.UTF-8")
		out, err := cmd.Output()
		if err != nil || string(out) != n {
			t.Errorf("bash reads %s as %q (%v); want %q", showName(n), out, err, n)
		}
	}
}

// clean fails unless out is valid UTF-8 without control characters but
// for its line ends, and has lines lines (any number when -1).
func clean(t *testing.T, what, out string, lines int) {
	t.Helper()
	if !utf8.ValidString(out) {
		t.Errorf("%s is not UTF-8:\n%q", what, out)
	}
	for _, r := range out {
		if r != '\n' && !printableRune(r) {
			t.Errorf("%s holds %U:\n%q", what, r, out)
			break
		}
	}
	if n := strings.Count(out, "\n"); lines >= 0 && n != lines {
		t.Errorf("%s has %d lines; want %d:\n%s", what, n, lines, out)
	}
}

// viaJSON is v as the command gets it from the mount: through JSON,
// where a byte that is not UTF-8 becomes U+FFFD and the FIELD_href
// companions keep the bytes.
func viaJSON[T any](t *testing.T, v T) T {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out T
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestPrintedNames: status's LOST line, sync's, check's files and damaged
// staged blocks, pin's lines, recover's list of lost files and restore's
// list of what it skipped name hostile files with showName, by their
// bytes (through the JSON the mount sends: by the *_href companions), and
// print no control character and no line of their own. Before, they
// printed the raw bytes (or, after JSON, U+FFFD for Latin-1).
func TestPrintedNames(t *testing.T) {
	var paths, want []string
	for _, n := range hostileNames {
		paths = append(paths, "/arch\xe9/"+n)
		want = append(want, showName("/arch\xe9/"+n))
	}
	has := func(what, out string, names []string) {
		t.Helper()
		for _, n := range names {
			if !strings.Contains(out, n) {
				t.Errorf("%s does not name %s:\n%s", what, n, out)
			}
		}
	}

	lost := &fs.LostReport{Blocks: 3, Files: int64(len(paths)), Paths: paths[:5], PathsHref: href.List(paths[:5])}
	r := viaJSON(t, statusReport{State: "lost", Lost: lost, DataDir: "/data\x1b", Mountpoint: "/mnt/Dr\rve"})
	var b strings.Builder
	printStatus(&b, &r)
	has("status", b.String(), append(want[:5:5], `$'/data\x1b'`, `$'/mnt/Dr\rve'`))
	clean(t, "status", b.String(), -1)
	if n := strings.Count(b.String(), "\n  LOST:"); n != 1 {
		t.Errorf("status has %d LOST lines; want 1:\n%s", n, b.String())
	}
	sl := viaJSON(t, syncLine{Lost: lost})
	clean(t, "sync", lostSentence(sl.Lost)+"\n", 1)
	has("sync", lostSentence(sl.Lost), want[:5])

	rep := &fs.RepairReport{Staged: &fs.StagedCheck{Blocks: 1, Damaged: []fs.StagedDamage{{Block: "b1", Paths: paths, PathsHref: href.List(paths), Error: "bad"}}}}
	for i, p := range paths {
		state := fs.FileDegraded
		if i%2 == 1 {
			state = fs.FileUnrecoverable
		}
		rep.Files = append(rep.Files, repair.FileReport{Path: p, PathHref: fs.PathHref(p), State: state})
	}
	rep = viaJSON(t, rep)
	b.Reset()
	printCheck(&b, rep, true)
	has("check", b.String(), want)
	clean(t, "check", b.String(), len(paths)+3)
	msg := stagedDamageError(rep.Staged).Error()
	has("check's error", msg, want)
	clean(t, "check's error", msg+"\n", 1)

	var reps []pinReport
	for _, p := range paths {
		reps = append(reps, pinReport{Path: p, PathHref: fs.PathHref(p), Pinned: true})
	}
	b.Reset()
	printPinReports(&b, viaJSON(t, reps), false)
	has("pin", b.String(), want)
	clean(t, "pin", b.String(), 2*len(paths))

	b.Reset()
	printRecoverLost(&b, &fs.RebuildStats{LostBlocks: 9, LostFiles: int64(len(paths)), LostPaths: paths})
	has("recover", b.String(), want)
	clean(t, "recover", b.String(), 1+len(paths))

	q := strings.Join(quoteAll("/arch\xe9", hostileNames), ", ")
	has("restore's skipped", q, want)
	clean(t, "restore's skipped", q+"\n", 1)
	if got := quoteAll("dir", []string{"sock et"}); got[0] != `"dir/sock et"` {
		t.Errorf("restore quotes a plain name as %s; want it as before, %q", got[0], "dir/sock et")
	}
}

// TestErrorLine: the one line run prints for an error escapes what would
// rewrite the terminal (an error of the mount naming the path it was
// given), and is unchanged for plain text.
func TestErrorLine(t *testing.T) {
	for in, want := range map[string]string{
		"no such file: /docs/café.txt":        "meshdrive: no such file: /docs/café.txt\n",
		"a\nb":                                "meshdrive: a; b\n",
		"/caf\xe9\x1b[2J: no such file":       `meshdrive: /caf\xe9\x1b[2J: no such file` + "\n",
		"cr\rmeshdrive: forged\x9b":           `meshdrive: cr\rmeshdrive: forged\x9b` + "\n",
		"rtl \u202e and \u009b as characters": `meshdrive: rtl \u202e and \u009b as characters` + "\n",
	} {
		var b strings.Builder
		e := &env{args: []string{"status"}, stdout: &b, stderr: &b, getenv: func(string) string { return "" }}
		if code := finish(e, errors.New(in)); code != 1 || b.String() != want {
			t.Errorf("error %q printed as %q (exit %d); want %q", in, b.String(), code, want)
		}
	}
}

// TestNamesOnRealMount: status PATH, pin, unpin, snapshot restore and an
// error of the mount print hostile names of a real mount quoted, on as
// many lines as a plain name's, and snapshot create refuses a name that
// is not printable UTF-8, saying why. Before, status PATH printed the
// raw bytes (a Latin-1 name as U+FFFD), and such snapshot names were
// taken: the web API had no way to name them.
func TestNamesOnRealMount(t *testing.T) {
	base, dir, mp, env := mountEmbedded(t, "names")
	arch := filepath.Join(mp, "arch\xe9")
	if err := os.Mkdir(arch, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, n := range append([]string{"plain.txt"}, hostileNames...) {
		if err := os.WriteFile(filepath.Join(arch, n), []byte(n), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	const sock = "sock\x1b[2J"
	if err := unix.Mknod(filepath.Join(arch, sock), unix.S_IFSOCK|0o600, 0); err != nil {
		t.Fatal(err)
	}
	for _, cmd := range [][]string{{"status"}, {"pin"}, {"unpin"}} {
		args := append(cmd, "--data", dir)
		// As many lines as a plain name's.
		want := strings.Count(mustRun(t, env, append(args, filepath.Join(arch, "plain.txt"))...).stdout, "\n")
		for _, n := range hostileNames {
			r := mustRun(t, env, append(args, filepath.Join(arch, n))...)
			clean(t, cmd[0]+" "+showName(n), r.stdout, want)
			if p := showName("/arch\xe9/" + n); !strings.Contains(r.stdout, p) {
				t.Errorf("%s %q does not name it %s:\n%s", cmd[0], n, p, r.stdout)
			}
		}
	}

	// An error of the mount naming the path it was given.
	r := runBin(t, env, "status", "--data", dir, filepath.Join(mp, "gone\x1b[2J\xe9"))
	if r.code != 1 || !strings.HasPrefix(r.stderr, `meshdrive: gone\x1b[2J\xe9: `) {
		t.Errorf("status of a missing hostile name: %s", r)
	}
	clean(t, "status's error", r.stderr, 1)

	for name, why := range map[string]string{"caf\xe9": "not UTF-8", "wipe\x1b[2J": "control or invisible character", "two\nlines": "control or invisible"} {
		r := runBin(t, env, "snapshot", "create", "--data", dir, "--name", name)
		if r.code == 0 || !strings.Contains(r.stderr, why) || !strings.Contains(r.stderr, "printable text") {
			t.Errorf("snapshot create --name %q: %s; want a refusal saying %q and what to do", name, r, why)
		}
		clean(t, "snapshot create's refusal", r.stderr, 1)
	}
	if r := mustRun(t, env, "snapshot", "list", "--data", dir); strings.Contains(r.stdout, "caf") || strings.Contains(r.stdout, "wipe") {
		t.Errorf("a refused snapshot is listed:\n%s", r.stdout)
	}

	mustRun(t, env, "snapshot", "create", "--data", dir, "--name", "names")
	out := filepath.Join(base, "out")
	if err := os.Mkdir(out, 0o755); err != nil {
		t.Fatal(err)
	}
	r = mustRun(t, env, "snapshot", "restore", "--data", dir, "names", "arch\xe9", "--to", out)
	clean(t, "restore", r.stdout, 2)
	for _, want := range []string{"restored $'arch\\xe9' from snapshot names to " + showName(filepath.Join(out, "arch\xe9")),
		"not restored", showName("arch\xe9/" + sock)} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("restore does not say %s:\n%s", want, r.stdout)
		}
	}
	for _, n := range hostileNames {
		if got, err := os.ReadFile(filepath.Join(out, "arch\xe9", n)); err != nil || string(got) != n {
			t.Errorf("restored %s: %q, %v", showName(n), got, err)
		}
	}
	mustRun(t, env, "unmount", "--data", dir, mp)
}
