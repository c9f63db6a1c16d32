package repair

import (
	"context"

	"github.com/meshdrive/meshdrive/remote"
)

// nodeSeen is what Observe last saw of one node.
type nodeSeen struct {
	up      bool
	objects int64 // objects it reported (while up)
	corrupt int64 // corrupt shards its scrubber has found, all passes
}

// Observe takes what the mount's health check saw of the nodes. A change
// that can leave segments short of shards, or whole again, has Run
// survey the nodes at once (one listing each; no repair), so Stats().Owed,
// which status and the metrics show, tells it then rather than at the
// next pass, up to Options.Interval later. The changes: a node went down
// or came back, a node holds half the objects it did or fewer (a disk
// replaced by an empty one, a bucket emptied; the deletes of gc and of
// old checkpoints are smaller steps, and do not cost a survey), a node's
// scrubber moved corrupt shards aside. When the background pass repairs
// is not changed by it.
func (r *Repairer) Observe(hs []remote.NodeHealth) {
	r.mu.Lock()
	changed := false
	seen := make(map[string]nodeSeen, len(hs))
	for _, h := range hs {
		s := nodeSeen{up: h.Up}
		old, known := r.seen[h.Name]
		if h.Up {
			s.objects = h.Info.Objects
			if h.Info.Scrub != nil {
				s.corrupt = h.Info.Scrub.CorruptSeen
			}
		} else {
			s.objects, s.corrupt = old.objects, old.corrupt // compared again once it is back
		}
		if known && (old.up != s.up || (s.up && old.up && (lost(old.objects, s.objects) || s.corrupt > old.corrupt))) {
			changed = true
		}
		seen[h.Name] = s
	}
	r.seen = seen
	r.mu.Unlock()
	if changed {
		select {
		case r.notice <- struct{}{}:
		default:
		}
	}
}

// lost reports whether a node that held was objects and holds now has
// lost half of them or more.
func lost(was, now int64) bool { return was > 0 && now <= was/2 }

// recount surveys the nodes again for Stats().Owed and Unrecovered,
// repairing nothing (Observe saw a change).
func (r *Repairer) recount(ctx context.Context) {
	if _, _, err := r.survey(ctx); err != nil && ctx.Err() == nil {
		r.log.Debug("repair: survey after a change of the nodes", "err", err)
	}
}
