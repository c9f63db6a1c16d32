package web

import (
	"mime"
	"os"
	"path/filepath"
	"testing"

	"github.com/meshdrive/meshdrive/journal/href"
)

// TestDownloadDisposition: a download's Content-Disposition names the
// file truthfully. A name that is not UTF-8 (Latin-1 "caf\xe9.txt") was
// sent with filename* of charset utf-8, caf%E9.txt, claiming UTF-8 for
// bytes that are not: it gets a plain ASCII filename= only now. A UTF-8
// name keeps its filename* and gains an ASCII filename= for clients
// without RFC 5987; a plain ASCII name's header is as it was.
func TestDownloadDisposition(t *testing.T) {
	s, mp := folderServer(t)
	for _, c := range []struct {
		name, header, saved string
	}{
		{"photo.jpg", `attachment; filename=photo.jpg`, "photo.jpg"},
		{"my file.txt", `attachment; filename="my file.txt"`, "my file.txt"},
		{"café.txt", `attachment; filename=caf_.txt; filename*=UTF-8''caf%C3%A9.txt`, "café.txt"},
		{"caf\xe9.txt", `attachment; filename=caf_.txt`, "caf_.txt"},
		{"r\xe9sum\xe9 (1).txt", `attachment; filename="r_sum_ (1).txt"`, "r_sum_ (1).txt"},
		{"esc\x1b[2J\r.txt", `attachment; filename="esc_[2J_.txt"`, "esc_[2J_.txt"},
		{"日本 \x7f.txt", `attachment; filename="__ _.txt"; filename*=UTF-8''%E6%97%A5%E6%9C%AC%20%7F.txt`, "日本 \x7f.txt"},
	} {
		if err := os.WriteFile(filepath.Join(mp, "in", c.name), []byte(c.name), 0o644); err != nil {
			t.Fatal(err)
		}
		w := serve(s, "GET", "/api/v1/files/in/"+href.Escape(c.name), nil)
		if w.Code != 200 || w.Body.String() != c.name {
			t.Fatalf("download %q: %d %q", c.name, w.Code, w.Body)
		}
		got := w.Header().Get("Content-Disposition")
		if got != c.header {
			t.Errorf("download %q: Content-Disposition %s; want %s", c.name, got, c.header)
		}
		// What a client that reads RFC 6266 saves it as (filename*
		// first, else filename).
		_, ps, err := mime.ParseMediaType(got)
		if err != nil || ps["filename"] != c.saved {
			t.Errorf("download %q: %s parses as %q (%v); want %q", c.name, got, ps["filename"], err, c.saved)
		}
	}
}
