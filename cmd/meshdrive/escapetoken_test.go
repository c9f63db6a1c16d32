package main

import (
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A node URL written http://TOKEN@host:port with a base64 token holding
// "/" names the node at host:port with that token, as --token-file does;
// it parsed as a host named after the token's start.
func TestEscapeToken(t *testing.T) {
	for in, want := range map[string]string{
		"http://ab/cd+ef==@127.0.0.1:7070": "http://ab%2Fcd+ef==@127.0.0.1:7070",
		"https://x/y/z@host.example:7443":  "https://x%2Fy%2Fz@host.example:7443",
		"http://ab%2Fcd@127.0.0.1:7070":    "http://ab%2Fcd@127.0.0.1:7070",
		"http://plain@127.0.0.1:7070":      "http://plain@127.0.0.1:7070",
		"http://127.0.0.1:7070":            "http://127.0.0.1:7070",
		"s3://bucket/a@b?endpoint=h:9000":  "s3://bucket/a@b?endpoint=h:9000",
		"/srv/nodes/n@1":                   "/srv/nodes/n@1",
		"http://a/b@[::1]:7070":            "http://a%2Fb@[::1]:7070",
		"http://host:7070/prefix/a@b":      "http://host:7070/prefix/a@b",
	} {
		got := escapeToken(in)
		if got != want {
			t.Errorf("escapeToken(%q) = %q, want %q", in, got, want)
		}
	}
	u, err := url.Parse(escapeToken("http://ab/cd+ef==@127.0.0.1:7070"))
	if err != nil || u.Host != "127.0.0.1:7070" || u.User.Username() != "ab/cd+ef==" {
		t.Fatalf("parsed: %+v %v; want host 127.0.0.1:7070 and token ab/cd+ef==", u, err)
	}
}

// init with two nodes named http://TOKEN@host:port, the token holding a
// "/" (its start looks like an address so a wrong parse dials loopback,
// not DNS): the drive is made, and its config has the token escaped.
func TestInitWithSlashInURLToken(t *testing.T) {
	const token = "127.0.0.1/tok+en=="
	base := t.TempDir()
	tok := filepath.Join(base, "token")
	if err := os.WriteFile(tok, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	a := startNode(t, filepath.Join(base, "a"), "--token-file", tok)
	b := startNode(t, filepath.Join(base, "b"), "--token-file", tok)
	data := filepath.Join(base, "data")
	env := cmdEnv("MESHDRIVE_PASSPHRASE=slash")
	r := runBin(t, env, "init", "--data", data, "--node", "http://"+token+"@"+a.addr, "--node", "http://"+token+"@"+b.addr, "--k", "1", "--m", "1")
	if r.code != 0 {
		t.Fatalf("init with a / in the URL's token: %s", r)
	}
	if strings.Contains(r.stdout+r.stderr, token) {
		t.Errorf("init printed the token:\n%s", r)
	}
	// recover --node takes the same form: it reaches the drive (never
	// mounted, so it has nothing to recover yet).
	r = runBin(t, env, "recover", "--data", filepath.Join(base, "data2"), "--node", "http://"+token+"@"+a.addr)
	if !strings.Contains(r.stderr, "no metadata checkpoint on the grid yet") {
		t.Fatalf("recover with a / in the URL's token did not reach the drive: %s", r)
	}
}
