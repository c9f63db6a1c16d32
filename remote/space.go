package remote

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
)

// What the grid knows of a member's free space, so placement leaves out
// a node that cannot take a shard instead of sending it the shard to be
// refused (a full node's Put fails only after the shard has crossed the
// network). It learns from every Info answer Health gets (a mount asks
// every few seconds), from each Put that fails as ErrFull, and counts
// down what it stores there since; shards on their way there count too,
// so segments placed at once do not all take the last room. What it learned expires after
// spaceTTL: then the node is tried again, so a disk freed by a person or
// by gc takes shards again even with nobody asking.
const (
	spaceTTL = time.Minute
	// spaceSlack is kept free beyond a shard's own bytes: the file
	// system's metadata, the temporary file of a Put, other writers.
	spaceSlack = 1 << 20
)

// space is a member's free space as the grid knows it. The zero value
// knows nothing (every shard fits).
type space struct {
	mu       sync.Mutex // guards the fields below
	free     int64      // bytes, as last learned less what was put since
	at       time.Time  // when free was learned; zero: not known
	inflight int64      // bytes of the Puts placed here and not answered yet
}

// learn records a node's Info answer; free < 0 (the node cannot tell,
// e.g. S3) forgets what was known.
func (s *space) learn(free int64, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if free < 0 {
		s.at = time.Time{}
		return
	}
	s.free, s.at = free, now
}

// known reports whether free is fresh enough to judge by. s.mu held.
func (s *space) known(now time.Time) bool {
	return !s.at.IsZero() && now.Sub(s.at) < spaceTTL
}

// room reports whether an object of need bytes fits on the node as far
// as the grid knows (need <= 0, or nothing known: yes), and the free
// bytes known, less the Puts in flight there (-1: not known).
func (s *space) room(need int64, now time.Time) (ok bool, free int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.known(now) {
		return true, -1
	}
	avail := s.free - s.inflight
	return need <= 0 || avail >= need+spaceSlack, max(avail, 0)
}

// claim is room, and when the object fits, counts it in flight until
// done: two segments placed at once do not both take the last room.
func (s *space) claim(need int64, now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if need > 0 && s.known(now) && s.free-s.inflight < need+spaceSlack {
		return false
	}
	s.inflight += need
	return true
}

// done ends a claim of n bytes with the Put's outcome: stored (the
// node's free space is n less), refused as full (it has none), or failed
// otherwise (nothing changed).
func (s *space) done(n int64, err error, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.inflight -= n
	switch {
	case err == nil:
		s.free -= n
	case errors.Is(err, ErrFull):
		s.free, s.at = 0, now
	}
}

// fullNote says which nodes had no room for a shard of need bytes, and
// what to do ("" when none).
func fullNote(names []string, frees []int64, need int64) string {
	if len(names) == 0 {
		return ""
	}
	var b strings.Builder
	for i, name := range names {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s (%s free)", name, sizeString(frees[i]))
	}
	verb := "have"
	if len(names) == 1 {
		verb = "has"
	}
	return fmt.Sprintf("%s %s no room for a shard of %s: add a node (meshdrive node add URL), "+
		"free space on their disks, or collect garbage (meshdrive gc)", b.String(), verb, sizeString(need))
}

// sizeString is n bytes for a person: "812 B", "3.9 MiB".
func sizeString(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	v, i := float64(n)/unit, 0
	for v >= unit && i < 4 {
		v /= unit
		i++
	}
	return fmt.Sprintf("%.1f %ciB", v, "KMGTP"[i])
}
