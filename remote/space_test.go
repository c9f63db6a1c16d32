package remote

import (
	"fmt"
	"testing"
	"time"
)

// TestSpaceClaim: shards placed on a node and not yet answered count
// against its free space, so two segments placed at once do not both take
// its last room; a stored shard lowers what is known free, a refusal as
// full leaves none, another failure gives the room back; what is known
// expires.
func TestSpaceClaim(t *testing.T) {
	const need = 4 << 20
	now := time.Now()
	var s space
	if !s.claim(need, now) {
		t.Fatal("a node of unknown free space refused a claim")
	}
	s.done(need, nil, now)
	s.learn(2*need+spaceSlack-1, now) // room for one shard, not two
	if !s.claim(need, now) {
		t.Fatal("the first shard does not fit")
	}
	if s.claim(need, now) {
		t.Fatal("a second shard fits while the first is in flight")
	}
	s.done(need, fmt.Errorf("node x: %w", ErrUnavailable), now)
	if !s.claim(need, now) {
		t.Fatal("the room of a failed Put was not given back")
	}
	s.done(need, nil, now)
	if ok, free := s.room(need, now); ok || free != need+spaceSlack-1 {
		t.Fatalf("after a stored shard: room %v, free %d; want none, %d", ok, free, need+spaceSlack-1)
	}
	s.learn(1<<30, now)
	if !s.claim(need, now) {
		t.Fatal("no room after learning 1 GiB free")
	}
	s.done(need, fmt.Errorf("node x: %w", ErrFull), now)
	if ok, free := s.room(1, now); ok || free != 0 {
		t.Fatalf("after a refusal as full: room %v, free %d", ok, free)
	}
	if ok, free := s.room(need, now.Add(spaceTTL)); !ok || free != -1 {
		t.Fatalf("a minute later: room %v, free %d; want the node tried again", ok, free)
	}
}
