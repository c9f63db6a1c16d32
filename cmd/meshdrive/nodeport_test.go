package main

import (
	"net"
	"path/filepath"
	"testing"
)

// A node serve on a port something else holds says so and what to do,
// and makes no node directory.
func TestNodeServePortInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	nd := filepath.Join(t.TempDir(), "nd")
	r := runBin(t, cmdEnv(), "node", "serve", "--dir", nd, "--listen", ln.Addr().String())
	assertRefusal(t, r, "", "", "cannot listen on "+ln.Addr().String(), "address already in use", "another --listen address")
}
