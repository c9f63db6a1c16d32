package main

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/meshdrive/meshdrive/fs"
)

// A drain that moved everything off a node that is down must not tell the
// operator to run the same drain again (it fails the same way while the
// node is down): it says to start the node, or to remove it.
func TestDrainAdvice(t *testing.T) {
	down := fmt.Errorf("drain node-7: %w: node unavailable", fs.ErrDrainedNodeDown)
	got := drainAdvice(down, "node-7")
	for _, want := range []string{"start the node", "meshdrive node remove node-7"} {
		if !strings.Contains(got, want) {
			t.Errorf("drain of a down node: %q does not say %q", got, want)
		}
	}
	if got := drainAdvice(errors.New("drain node-1: 2 shards are still named on it"), "node-1"); !strings.Contains(got, "run meshdrive node drain again") {
		t.Errorf("a drain cut short: %q", got)
	}
}
