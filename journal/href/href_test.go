package href

import (
	"encoding/json"
	"net/url"
	"slices"
	"strings"
	"testing"
)

func TestEscape(t *testing.T) {
	for in, want := range map[string]string{
		"":                 "",
		"/":                "/",
		"docs/photo.jpg":   "docs/photo.jpg",
		"/a b/100%":        "/a%20b/100%25",
		"\xe9t\xe9.txt":    "%E9t%E9.txt",
		"été/\xff":         "%C3%A9t%C3%A9/%FF",
		"q?#;,/x":          "q%3F%23%3B%2C/x",
		"/docs/\xe9/\x80x": "/docs/%E9/%80x",
	} {
		got := Escape(in)
		if got != want {
			t.Errorf("Escape(%q) = %q, want %q", in, got, want)
		}
		// Each segment gives its bytes back.
		var segs []string
		for _, s := range strings.Split(got, "/") {
			d, err := url.PathUnescape(s)
			if err != nil {
				t.Fatalf("Escape(%q) = %q: segment %q: %v", in, got, s, err)
			}
			segs = append(segs, d)
		}
		if back := strings.Join(segs, "/"); back != in {
			t.Errorf("Escape(%q) = %q, which unescapes to %q", in, got, back)
		}
	}
}

// TestCompanions: a companion only for what JSON would change, so the
// JSON of valid UTF-8 paths is what it was.
func TestCompanions(t *testing.T) {
	if got := IfNotUTF8("docs/été"); got != "" {
		t.Errorf("IfNotUTF8 of valid UTF-8 = %q, want none", got)
	}
	if got := IfNotUTF8("docs/\xe9t\xe9"); got != "docs/%E9t%E9" {
		t.Errorf("IfNotUTF8(docs/\\xe9t\\xe9) = %q", got)
	}
	if got := List([]string{"/a", "/été"}); got != nil {
		t.Errorf("List of valid UTF-8 = %q, want nil", got)
	}
	ps := []string{"/a", "/\xe9", "/\ufffd"}
	got := List(ps)
	if !slices.Equal(got, []string{"/a", "/%E9", "/%EF%BF%BD"}) {
		t.Errorf("List(%q) = %q", ps, got)
	}
	// What JSON keeps of the two: the plain strings lose the byte, the
	// companions keep it.
	b, _ := json.Marshal(struct{ P, H []string }{ps, got})
	var back struct{ P, H []string }
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back.P[1] == ps[1] || back.P[1] != back.P[2] || !slices.Equal(back.H, got) {
		t.Errorf("through JSON: %q and %q", back.P, back.H)
	}
}
