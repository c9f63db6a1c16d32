package web

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestNotUTF8Bodies: a name that is not UTF-8 (Latin-1 "\xe9") can be
// named in every JSON body that takes a path, by its FIELD_href (the path
// %-encoded from its bytes, as Entry.href gives it), and every answer
// that names it carries its FIELD_href. Before, the JSON bodies took text
// only: JSON has no string for the byte 0xE9 alone, so such a file could
// not be renamed, restored or checked from the web.
func TestNotUTF8Bodies(t *testing.T) {
	s, mp := folderServer(t)
	dir := filepath.Join(mp, "in", "d\xe9j\xe0")
	for _, d := range []string{dir, filepath.Join(mp, ".snapshots/s1/old\xe9")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "caf\xe9.txt"), []byte("latin-1"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// A look-alike in valid UTF-8, which the lossy path would name.
	if err := os.WriteFile(filepath.Join(mp, "in", "d\ufffdj\ufffd"), []byte("other"), 0o644); err != nil {
		t.Fatal(err)
	}
	want := func(what string, code int, got int, body []byte, v any) {
		t.Helper()
		if got != code {
			t.Fatalf("%s: %d %s; want %d", what, got, body, code)
		}
		if v != nil {
			if err := json.Unmarshal(body, v); err != nil {
				t.Fatalf("%s: %v in %s", what, err, body)
			}
		}
	}

	// The folder opens by its href; the listing names itself by its bytes.
	var l Listing
	w := serve(s, "GET", "/api/v1/list/in/d%E9j%E0", nil)
	want("list by href", 200, w.Code, w.Body.Bytes(), &l)
	if l.PathHref != "/in/d%E9j%E0" || len(l.Entries) != 1 || l.Entries[0].Href != "in/d%E9j%E0/caf%E9.txt" {
		t.Fatalf("listing of the folder: path_href %q, entries %+v", l.PathHref, l.Entries)
	}
	// A valid UTF-8 path gets no companion: its JSON is as it was.
	w = serve(s, "GET", "/api/v1/list/in", nil)
	if strings.Contains(w.Body.String(), `"path_href"`) {
		t.Errorf("listing of /in has a path_href: %s", w.Body)
	}

	// Rename by from_href and to_href.
	var e Entry
	w = serveBody(s, "POST", "/api/v1/rename", `{"from_href":"in/d%E9j%E0/caf%E9.txt","to_href":"in/d%E9j%E0/th%E9.txt"}`, nil)
	want("rename by href", 200, w.Code, w.Body.Bytes(), &e)
	if e.Href != "in/d%E9j%E0/th%E9.txt" {
		t.Errorf("renamed entry's href %q", e.Href)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "th\xe9.txt")); err != nil || string(b) != "latin-1" {
		t.Fatalf("the renamed file: %q %v", b, err)
	}
	// Refused: both forms of one path; an href that leaves the drive or
	// is not a name. Nothing moves.
	for body, code := range map[string]string{
		`{"from":"in/file.txt","from_href":"in/file.txt","to":"in/x"}`:   "bad_json",
		`{"from_href":"in/d%E9j%E0/th%E9.txt","to_href":"..%2Foutside"}`: "bad_path",
		`{"from_href":"in/d%E9j%E0/th%E9.txt","to_href":"in/a%2Fb"}`:     "bad_path",
		`{"from_href":"in/%zz","to":"in/x"}`:                             "bad_path",
		`{"from_href":"in/d%E9j%E0/th%E9.txt","to_href":".snapshots/x"}`: "bad_path",
	} {
		w := serveBody(s, "POST", "/api/v1/rename", body, nil)
		var ae apiError
		if json.Unmarshal(w.Body.Bytes(), &ae); w.Code != 400 || ae.Code != code {
			t.Errorf("rename %s: %d %s; want 400 %s", body, w.Code, w.Body, code)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "th\xe9.txt")); err != nil {
		t.Fatalf("the file after refused renames: %v", err)
	}

	// Restore a folder of the snapshot by path_href: it comes back under
	// its own bytes, and the answer says where by to_href.
	var res restoreResult
	w = serveBody(s, "POST", "/api/v1/restore", `{"snapshot":"s1","path_href":"old%E9"}`, nil)
	want("restore by path_href", 200, w.Code, w.Body.Bytes(), &res)
	if res.PathHref != "/old%E9" || res.ToHref != "/old%E9" || res.Files != 1 {
		t.Errorf("restore answer: %+v", res)
	}
	if b, err := os.ReadFile(filepath.Join(mp, "old\xe9", "caf\xe9.txt")); err != nil || string(b) != "latin-1" {
		t.Fatalf("the restored file: %q %v", b, err)
	}
	// Again, to a destination given by to_href.
	w = serveBody(s, "POST", "/api/v1/restore", `{"snapshot":"s1","path_href":"old%E9/caf%E9.txt","to_href":"in/%FF"}`, nil)
	want("restore to to_href", 200, w.Code, w.Body.Bytes(), &res)
	if res.ToHref != "/in/%FF" || res.PathHref != "/old%E9/caf%E9.txt" {
		t.Errorf("restore answer: %+v", res)
	}
	if b, err := os.ReadFile(filepath.Join(mp, "in", "\xff")); err != nil || string(b) != "latin-1" {
		t.Fatalf("the file restored to in/\\xff: %q %v", b, err)
	}
	w = serveBody(s, "POST", "/api/v1/restore", `{"snapshot":"s1","path":"old","path_href":"old%E9"}`, nil)
	if w.Code != 400 || !strings.Contains(w.Body.String(), "bad_json") {
		t.Errorf("restore with path and path_href: %d %s; want 400 bad_json", w.Code, w.Body)
	}

	// A check of the folder, named by path_href: it is there (the
	// look-alike is a file), and the check's state names it.
	var st CheckState
	w = serveBody(s, "POST", "/api/v1/check", `{"path_href":"in/d%E9j%E0"}`, nil)
	want("check by path_href", 202, w.Code, w.Body.Bytes(), &st)
	if st.PathHref != "/in/d%E9j%E0" {
		t.Errorf("check state: path %q, path_href %q", st.Path, st.PathHref)
	}

	// A symlink whose target is not UTF-8 says it by target_href.
	if err := os.Symlink("caf\xe9", filepath.Join(mp, "in", "ln")); err != nil {
		t.Fatal(err)
	}
	w = serve(s, "GET", "/api/v1/stat/in/ln", nil)
	want("stat of the symlink", 200, w.Code, w.Body.Bytes(), &e)
	if e.TargetHref != "caf%E9" {
		t.Errorf("symlink's target_href %q, want caf%%E9", e.TargetHref)
	}

	// Delete by href takes the folder, not its look-alike.
	if w := serve(s, "DELETE", "/api/v1/files/in/d%E9j%E0?recursive=1", nil); w.Code != 204 {
		t.Fatalf("delete by href: %d %s", w.Code, w.Body)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("the folder after its delete: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(mp, "in", "d\ufffdj\ufffd")); err != nil || string(b) != "other" {
		t.Errorf("the look-alike after the delete: %q %v", b, err)
	}
}
