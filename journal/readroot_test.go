package journal

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/meshdrive/meshdrive/remote"
	"github.com/meshdrive/meshdrive/remote/shard"
)

// rootCopies is a MetaGrid whose nodes answer GetMetaAll with fixed
// copies (ReadRoot calls nothing else).
type metaCopiesGrid struct {
	MetaGrid
	copies []remote.MetaCopy
}

func (g metaCopiesGrid) GetMetaAll(context.Context, string) []remote.MetaCopy { return g.copies }

// TestReadRootTellsUnreadFromNone: ReadRoot says which of three things
// keeps it from a root record: no node holds one (remote.ErrNoRoot), none
// of the nodes it read holds one and others could not be read (a
// *remote.NoRootError naming them), or a record failed authentication.
// A node that could not be read once made it say "no node served a valid
// root record", and recover passed that on for a drive that had simply
// never shipped its metadata.
func TestReadRootTellsUnreadFromNone(t *testing.T) {
	sealer, err := remote.NewSealer(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	other, err := remote.NewSealer(append(make([]byte, 31), 1))
	if err != nil {
		t.Fatal(err)
	}
	rec := &remote.RootRecord{Seq: 7, Created: time.Unix(1, 0),
		Head: remote.SegmentInfo{K: 1, Nodes: []string{"a"}, Size: 10, ShardSize: remote.ShardSizeFor(10, 1), ChunkSize: shard.MinChunkSize}}
	none := func(n string) remote.MetaCopy {
		return remote.MetaCopy{Node: n, Err: fmt.Errorf("node %s: %w", n, remote.ErrNotFound)}
	}
	down := func(n string) remote.MetaCopy {
		return remote.MetaCopy{Node: n, Err: fmt.Errorf("node %s: %w: no such directory", n, remote.ErrUnavailable)}
	}
	read := func(copies ...remote.MetaCopy) (*remote.RootRecord, error) {
		return ReadRoot(bg, metaCopiesGrid{copies: copies}, sealer, nil)
	}

	if _, err := read(none("a"), none("b")); !errors.Is(err, remote.ErrNoRoot) {
		t.Errorf("no node holds a record: %v, want ErrNoRoot", err)
	}
	for _, tc := range []struct {
		copies   []remote.MetaCopy
		answered int
		unread   []string
	}{
		{[]remote.MetaCopy{none("a"), down("b"), none("c")}, 2, []string{"b"}},
		{[]remote.MetaCopy{down("a"), down("b")}, 0, []string{"a", "b"}},
	} {
		_, err := read(tc.copies...)
		var nr *remote.NoRootError
		if !errors.As(err, &nr) || errors.Is(err, remote.ErrNoRoot) {
			t.Errorf("%d of %d nodes answered with none: %v, want a NoRootError", tc.answered, len(tc.copies), err)
			continue
		}
		if nr.Answered != tc.answered || fmt.Sprint(nr.Unread) != fmt.Sprint(tc.unread) || !errors.Is(err, remote.ErrUnavailable) {
			t.Errorf("NoRootError %+v, want %d answered, %v unread, the cause kept", nr, tc.answered, tc.unread)
		}
	}
	forged := remote.MetaCopy{Node: "b", Data: other.SealRoot(rec)}
	_, err = read(none("a"), forged, down("c"))
	var nr *remote.NoRootError
	if err == nil || errors.As(err, &nr) || errors.Is(err, remote.ErrNoRoot) || !strings.Contains(err.Error(), "no node served a valid root record") {
		t.Errorf("a record that fails authentication: %v, want it named as not valid", err)
	}
	good := remote.MetaCopy{Node: "b", Data: sealer.SealRoot(rec)}
	if r, err := read(none("a"), good, down("c")); err != nil || r.Seq != 7 {
		t.Errorf("one valid record among nodes down: %+v, %v", r, err)
	}
}
