package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// TestDaemonLogRotates: a mount's log past logKeep is moved aside when
// the next mount opens it, replacing the one moved aside before; a
// smaller one is appended to.
func TestDaemonLogRotates(t *testing.T) {
	path := filepath.Join(t.TempDir(), logFile)
	if err := os.WriteFile(path+".1", []byte("older"), 0o600); err != nil {
		t.Fatal(err)
	}
	big := bytes.Repeat([]byte("x"), logKeep+1)
	if err := os.WriteFile(path, big, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := openDaemonLog(path)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("new\n")
	f.Close()
	if b, _ := os.ReadFile(path); string(b) != "new\n" {
		t.Errorf("the log after rotation holds %d bytes; want the new line alone", len(b))
	}
	if fi, err := os.Stat(path + ".1"); err != nil || fi.Size() != int64(len(big)) {
		t.Errorf("the log moved aside: %v", err)
	}
	f, err = openDaemonLog(path)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("more\n")
	f.Close()
	if b, _ := os.ReadFile(path); string(b) != "new\nmore\n" {
		t.Errorf("a small log was not appended to: %q", b)
	}
}
