package web

import (
	"path"
	"strings"
	"testing"
)

func TestDecodePath(t *testing.T) {
	ok := map[string]string{
		"":                "",
		"/":               "",
		"a":               "a",
		"a/b/":            "a/b",
		"a//b":            "a/b",
		"a%20b/c%25d":     "a b/c%d",
		"%C3%A9t%C3%A9":   "été",
		"...":             "...",
		"a/.hidden":       "a/.hidden",
		"x/.snapshots":    "x/.snapshots",
		"back%5Cslash":    `back\slash`,
		"q%3Fmark%23hash": "q?mark#hash",
	}
	for in, want := range ok {
		got, err := DecodePath(in)
		if err != nil || got != want {
			t.Errorf("DecodePath(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"..", "a/..", "a/../b", "%2E%2E", "a/%2e%2e/b", ".", "a/./b",
		"a%2Fb", "a%2fb", "%2F", "..%2F..%2Fetc", "a%00b", "%zz", "a%", ".snapshots", ".snapshots/x", "%2Esnapshots"} {
		if got, err := DecodePath(in); err == nil {
			t.Errorf("DecodePath(%q) = %q, want a refusal", in, got)
		}
	}
}

// checkRel asserts what every accepted path must be: relative, clean, no
// "..", no NUL, not in .snapshots.
func checkRel(t *testing.T, in, got string) {
	t.Helper()
	if got == "" {
		return
	}
	if strings.HasPrefix(got, "/") || path.Clean(got) != got || strings.Contains(got, "\x00") {
		t.Fatalf("%q decoded to %q: not a clean relative path", in, got)
	}
	for _, s := range strings.Split(got, "/") {
		if s == ".." || s == "." || s == "" {
			t.Fatalf("%q decoded to %q: segment %q", in, got, s)
		}
	}
	if got == snapshotsDir || strings.HasPrefix(got, snapshotsDir+"/") {
		t.Fatalf("%q decoded to %q: inside .snapshots", in, got)
	}
}

func FuzzDecodePath(f *testing.F) {
	for _, s := range []string{"a/b", "..%2F", "%2e%2e/x", "a%2Fb", "%", "é/%C3%A9", ".snapshots/a", "a//./b", "/a/b", "../x", "a\x00b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		// cleanRel takes the paths of JSON bodies, unescaped.
		if got, err := cleanRel(in); err == nil {
			checkRel(t, in, got)
		}
		got, err := DecodePath(in)
		if err != nil {
			return
		}
		checkRel(t, in, got)
		if got2, err := cleanRel(got); err != nil || got2 != got {
			t.Fatalf("DecodePath(%q) = %q, which cleanRel turns into %q, %v", in, got, got2, err)
		}
	})
}
