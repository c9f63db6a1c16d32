package repair

import (
	"testing"

	"github.com/meshdrive/meshdrive/remote"
)

// TestObserveChanges: which changes between two looks at the nodes wake
// Run for a recount, and which (the small deletes of gc, new objects, the
// first look) do not.
func TestObserveChanges(t *testing.T) {
	up := func(objects, corrupt int64) remote.NodeHealth {
		h := remote.NodeHealth{Name: "node-1", Up: true, Info: remote.NodeInfo{Objects: objects}}
		if corrupt >= 0 {
			h.Info.Scrub = &remote.ScrubReport{CorruptSeen: corrupt}
		}
		return h
	}
	down := remote.NodeHealth{Name: "node-1"}
	for _, c := range []struct {
		what         string
		first, later remote.NodeHealth
		notice       bool
	}{
		{"nothing changed", up(100, -1), up(100, -1), false},
		{"objects added", up(100, -1), up(150, -1), false},
		{"a few objects deleted (gc)", up(100, -1), up(90, -1), false},
		{"half the objects gone", up(100, -1), up(50, -1), true},
		{"an empty disk", up(100, -1), up(0, -1), true},
		{"an empty node stays empty", up(0, -1), up(0, -1), false},
		{"S3 before its first count", up(-1, -1), up(-1, -1), false},
		{"the scrubber found a corrupt shard", up(100, 0), up(99, 1), true},
		{"the scrubber found nothing new", up(100, 2), up(100, 2), false},
		{"went down", up(100, -1), down, true},
		{"came back", down, up(100, -1), true},
	} {
		r := New(Options{Below: 6, Interval: 1}) // Observe needs neither grid nor journal
		r.Observe([]remote.NodeHealth{c.first})
		if len(r.notice) != 0 {
			t.Errorf("%s: the first look woke Run", c.what)
		}
		r.Observe([]remote.NodeHealth{c.later})
		if got := len(r.notice) == 1; got != c.notice {
			t.Errorf("%s: woke Run %v, want %v", c.what, got, c.notice)
		}
	}
}
