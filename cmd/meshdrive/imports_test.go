package main

import (
	"go/build"
	"strings"
	"testing"
)

// TestImportsThin keeps the command thin: it reaches the journal and the
// grid through fs and remote/open only (remote/node it serves itself).
// Files for test binaries (build tags, _test.go) do not count.
func TestImportsThin(t *testing.T) {
	p, err := build.ImportDir(".", 0)
	if err != nil {
		t.Fatal(err)
	}
	const mod = "github.com/meshdrive/meshdrive/"
	allowed := map[string]bool{mod + "remote/open": true, mod + "remote/node": true}
	sawFS := false
	for _, imp := range p.Imports {
		rest, ok := strings.CutPrefix(imp, mod)
		if !ok {
			continue
		}
		sawFS = sawFS || rest == "fs"
		for _, internal := range []string{"journal", "remote"} {
			if (rest == internal || strings.HasPrefix(rest, internal+"/")) && !allowed[imp] {
				t.Errorf("cmd/meshdrive imports %s: reach it through fs or remote/open", imp)
			}
		}
	}
	if !sawFS {
		t.Errorf("no import of %sfs among %v: the import list was not read", mod, p.Imports)
	}
}
