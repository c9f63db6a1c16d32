package node

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/meshdrive/meshdrive/remote"
	"github.com/meshdrive/meshdrive/remote/dirstore"
)

// Quarantiner is a store that can move a corrupt object aside
// (dirstore.Store does).
type Quarantiner interface {
	Quarantine(ctx context.Context, name string) error
}

// scrubIdle is the pause between passes over an empty store.
const scrubIdle = 10 * time.Second

// maxCorruptNames bounds the names a scrub report keeps.
const maxCorruptNames = 1000

// scrubber reads every object of a store at a bounded rate, verifies it
// and moves the corrupt ones aside.
type scrubber struct {
	store remote.Store
	v     remote.Verifier
	q     Quarantiner // nil: corrupt objects are only reported
	lim   *rate.Limiter
	log   *slog.Logger

	mu  sync.Mutex // guards rep
	rep remote.ScrubReport
}

func newScrubber(st remote.Store, bytesPerSec int64, log *slog.Logger) (*scrubber, error) {
	v, ok := st.(remote.Verifier)
	if !ok {
		return nil, errors.New("node: the store cannot verify objects in place; scrub needs a directory store")
	}
	q, _ := st.(Quarantiner)
	burst := int(min(max(bytesPerSec, 1<<20), 1<<30))
	return &scrubber{store: st, v: v, q: q, lim: rate.NewLimiter(rate.Limit(bytesPerSec), burst), log: log}, nil
}

func (s *scrubber) report() *remote.ScrubReport {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.rep
	r.Corrupt = append([]string{}, s.rep.Corrupt...)
	return &r
}

// run scrubs pass after pass until ctx ends.
func (s *scrubber) run(ctx context.Context) {
	for ctx.Err() == nil {
		n, err := s.pass(ctx)
		if err != nil {
			if ctx.Err() == nil {
				s.log.Warn("node: scrub pass stopped; starting over", "err", err)
			}
		} else {
			s.mu.Lock()
			s.rep.Passes++
			s.rep.LastPass = time.Now().UTC()
			s.mu.Unlock()
		}
		if n == 0 || err != nil {
			t := time.NewTimer(scrubIdle)
			select {
			case <-ctx.Done():
			case <-t.C:
			}
			t.Stop()
		}
	}
}

// pass verifies every object once and returns how many it checked.
func (s *scrubber) pass(ctx context.Context) (int, error) {
	after, n := "", 0
	for {
		objs, err := s.store.List(ctx, "", after, 1000)
		if err != nil {
			return n, err
		}
		if len(objs) == 0 {
			return n, nil
		}
		for _, o := range objs {
			after = o.Name
			for left := o.Size; left > 0; left -= int64(s.lim.Burst()) {
				if err := s.lim.WaitN(ctx, int(min(left, int64(s.lim.Burst())))); err != nil {
					return n, err
				}
			}
			err := s.v.Verify(ctx, o.Name)
			n++
			s.mu.Lock()
			s.rep.Checked++
			s.rep.Bytes += o.Size
			s.mu.Unlock()
			switch {
			case err == nil, errors.Is(err, remote.ErrNotFound):
			case errors.Is(err, remote.ErrCorrupt):
				s.corrupt(ctx, o.Name, err)
			case ctx.Err() != nil:
				return n, ctx.Err()
			default:
				s.log.Warn("node: scrub could not read an object", "name", o.Name, "err", err)
			}
		}
	}
}

func (s *scrubber) corrupt(ctx context.Context, name string, cause error) {
	moved := "left in place (this store cannot move it aside)"
	if s.q != nil {
		err := s.q.Quarantine(ctx, name)
		if errors.Is(err, dirstore.ErrReplaced) {
			s.log.Info("node: scrub found a corrupt object that a good copy has replaced since", "name", name)
			return
		}
		if err != nil {
			moved = "could not be moved aside: " + err.Error()
		} else {
			moved = "moved aside; repair from the drive regenerates it"
		}
	}
	s.log.Warn("node: scrub found a corrupt object", "name", name, "what", moved, "err", cause)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rep.CorruptSeen++
	s.rep.Corrupt = append(s.rep.Corrupt, name)
	if len(s.rep.Corrupt) > maxCorruptNames {
		s.rep.Corrupt = s.rep.Corrupt[len(s.rep.Corrupt)-maxCorruptNames:]
	}
}
