package main

import (
	"fmt"
	"io/fs"
	"strings"
	"syscall"
	"testing"
)

// node serve on a directory this user may not write, or on a read-only
// file system, says what to do about it, not how --dir is spelled.
func TestNodeDirError(t *testing.T) {
	for _, c := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("cannot lock the node directory: %w", &fs.PathError{Op: "open", Path: "/srv/n/.node.lock", Err: syscall.EACCES}), "give --dir a directory it can write"},
		{fmt.Errorf("dirstore: create directory /srv/n: %w", &fs.PathError{Op: "mkdir", Path: "/srv/n", Err: syscall.EROFS}), "a directory on a writable one"},
		{fmt.Errorf("dirstore: create directory /srv/f: %w", &fs.PathError{Op: "mkdir", Path: "/srv/f", Err: syscall.ENOTDIR}), "--dir takes the node's directory"},
	} {
		if got := nodeDirError(c.err).Error(); !strings.Contains(got, c.want) {
			t.Errorf("%v:\n%s\nwant it to say %q", c.err, got, c.want)
		}
	}
}
