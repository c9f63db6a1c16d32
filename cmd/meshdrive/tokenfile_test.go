package main

import (
	"os"
	"path/filepath"
	"testing"
)

// A token file whose token no client can send (a space or a line break
// inside) is refused by node serve and init, saying how to make one; it
// was taken, and every client then failed as if the node were down.
func TestTokenFileRefusesUnsendableToken(t *testing.T) {
	base := t.TempDir()
	bad := filepath.Join(base, "token")
	if err := os.WriteFile(bad, []byte("first half\nsecond half\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(base, "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := cmdEnv("MESHDRIVE_PASSPHRASE=x")
	nd := filepath.Join(base, "node")
	assertRefusal(t, runBin(t, env, "node", "serve", "--dir", nd, "--listen", "127.0.0.1:0", "--token-file", bad), "", "",
		"token file "+bad+" holds ' ' inside the token", "head -c 32 /dev/urandom | base64")
	assertRefusal(t, runBin(t, env, "node", "serve", "--dir", nd, "--listen", "127.0.0.1:0", "--token-file", empty), "", "",
		"token file "+empty+" is empty")
	data := filepath.Join(base, "data")
	assertRefusal(t, runBin(t, env, "init", "--data", data, "--node", "http://127.0.0.1:1", "--node", "http://127.0.0.1:2",
		"--k", "1", "--m", "1", "--token-file", bad), "", "", "holds ' ' inside the token")
	if _, err := os.Stat(data); err == nil {
		t.Errorf("init with a bad token file left %s behind", data)
	}
}
