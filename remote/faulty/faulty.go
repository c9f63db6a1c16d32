package faulty

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/meshdrive/meshdrive/remote"
)

// Op is a set of Store methods a rule applies to.
type Op uint8

// The operations. OpAll (or 0 in a Rule) means every method.
const (
	OpPut Op = 1 << iota
	OpGet
	OpStat
	OpDelete
	OpList
	OpInfo
	OpAll = OpPut | OpGet | OpStat | OpDelete | OpList | OpInfo
)

var opNames = []string{"put", "get", "stat", "delete", "list", "info"}

func (o Op) String() string {
	if o == OpAll {
		return "all"
	}
	var parts []string
	for i, n := range opNames {
		if o&(1<<i) != 0 {
			parts = append(parts, n)
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, "|")
}

// Action is what a rule does to a call it hits.
type Action uint8

const (
	// Fail returns Rule.Err (default: an ErrUnavailable) without calling
	// the inner store.
	Fail Action = iota
	// Delay waits Rule.Delay (or until ctx ends) before the call.
	Delay
	// Hang blocks until ctx ends and returns ctx's error.
	Hang
	// Corrupt flips Rule.Bytes bytes (default 1) at random positions: in
	// the bytes a Get returns, or in a copy of the data a Put passes to
	// the inner store. Other operations are not affected.
	Corrupt
)

func (a Action) String() string {
	switch a {
	case Fail:
		return "fail"
	case Delay:
		return "delay"
	case Hang:
		return "hang"
	case Corrupt:
		return "corrupt"
	}
	return fmt.Sprintf("action(%d)", a)
}

// Rule selects calls and says what to do to them.
type Rule struct {
	// Ops the rule applies to; 0 means all.
	Ops Op
	// Prefix, when set, limits the rule to object names starting with it
	// (List and Info calls, which name no object, are matched only when
	// Prefix is empty).
	Prefix string
	// Prob is the chance that a matching call is hit; 0 means 1 (every
	// matching call).
	Prob float64
	// Count, when positive, retires the rule after that many hits.
	Count  int
	Action Action
	// Err is returned by Fail (default remote.ErrUnavailable); it is
	// wrapped, so errors.Is works.
	Err error
	// Delay is the wait of Delay.
	Delay time.Duration
	// Bytes is how many bytes Corrupt flips (default 1).
	Bytes int
}

// Options configure a Store.
type Options struct {
	// Name identifies the store in injected errors (default "faulty").
	Name string
	// Seed makes the random choices (probabilities, corrupted positions)
	// repeatable. Two stores with the same seed, rules and call sequence
	// make the same choices.
	Seed uint64
	// Logger receives a debug line per injected fault. Nil discards.
	Logger *slog.Logger
}

// Stats counts calls and injected faults.
type Stats struct {
	Calls    int64 // calls made to the wrapper
	Down     int64 // calls refused because the store was down
	Failed   int64
	Delayed  int64
	Hung     int64
	Corrupts int64
}

// Store wraps a remote.Store and injects faults by rule. Rules can be
// changed at any time, also while calls are running; a call uses the rules
// in place when it starts. Safe for concurrent use.
type Store struct {
	inner remote.Store
	name  string
	log   *slog.Logger

	mu    sync.Mutex // guards the fields below
	rules []*rule
	down  bool
	rng   *rand.Rand
	stats Stats
}

type rule struct {
	Rule
	hits int
}

var _ remote.Store = (*Store)(nil)

// New wraps inner.
func New(inner remote.Store, o Options) *Store {
	if o.Name == "" {
		o.Name = "faulty"
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Store{inner: inner, name: o.Name, log: log, rng: rand.New(rand.NewPCG(o.Seed, o.Seed^0x5851f42d4c957f2d))}
}

// Inner returns the wrapped store.
func (s *Store) Inner() remote.Store { return s.inner }

func (s *Store) String() string { return "faulty " + s.name }

// SetRules replaces all rules.
func (s *Store) SetRules(rules ...Rule) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rules = s.rules[:0]
	for _, r := range rules {
		s.rules = append(s.rules, &rule{Rule: r})
	}
}

// AddRule adds a rule after the existing ones.
func (s *Store) AddRule(r Rule) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rules = append(s.rules, &rule{Rule: r})
}

// Clear removes every rule and brings the store up.
func (s *Store) Clear() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rules = nil
	s.down = false
}

// SetDown makes every call fail at once with remote.ErrUnavailable (true)
// or restores the rules (false).
func (s *Store) SetDown(down bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.down = down
}

// IsDown reports whether the store is down.
func (s *Store) IsDown() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.down
}

// Stats returns the counters so far.
func (s *Store) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// plan is what to do to one call, decided when it starts.
type plan struct {
	down    bool
	delay   time.Duration
	hang    bool
	fail    error
	corrupt []uint64 // one random draw per byte to flip
}

// decide rolls the rules for one call.
func (s *Store) decide(op Op, name string, hasName bool) plan {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats.Calls++
	var p plan
	if s.down {
		s.stats.Down++
		p.down = true
		return p
	}
	kept := s.rules[:0]
	for _, r := range s.rules {
		hit := s.matches(r, op, name, hasName) && (r.Prob <= 0 || r.Prob >= 1 || s.rng.Float64() < r.Prob)
		if hit {
			r.hits++
			switch r.Action {
			case Fail:
				if p.fail == nil {
					err := r.Err
					if err == nil {
						err = remote.ErrUnavailable
					}
					p.fail = err
					s.stats.Failed++
				}
			case Delay:
				p.delay += r.Delay
				s.stats.Delayed++
			case Hang:
				p.hang = true
				s.stats.Hung++
			case Corrupt:
				if op == OpGet || op == OpPut {
					n := max(r.Bytes, 1)
					for range n {
						p.corrupt = append(p.corrupt, s.rng.Uint64())
					}
					s.stats.Corrupts++
				}
			}
		}
		if r.Count <= 0 || r.hits < r.Count {
			kept = append(kept, r)
		}
	}
	clear(s.rules[len(kept):])
	s.rules = kept
	return p
}

func (s *Store) matches(r *rule, op Op, name string, hasName bool) bool {
	if r.Ops != 0 && r.Ops&op == 0 {
		return false
	}
	if r.Prefix != "" && (!hasName || !strings.HasPrefix(name, r.Prefix)) {
		return false
	}
	return true
}

// before applies the delay, hang and fail parts of p. A nil result means
// go on to the inner store.
func (s *Store) before(ctx context.Context, op Op, name string, p plan) error {
	if p.down {
		return fmt.Errorf("%s: %s %s: %w (node is down)", s, op, name, remote.ErrUnavailable)
	}
	if p.delay > 0 {
		s.log.Debug("faulty: delaying call", "store", s.name, "op", op.String(), "name", name, "delay", p.delay)
		t := time.NewTimer(p.delay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%s: %s %s: %w", s, op, name, ctx.Err())
		}
	}
	if p.hang {
		s.log.Debug("faulty: hanging call", "store", s.name, "op", op.String(), "name", name)
		<-ctx.Done()
		return fmt.Errorf("%s: %s %s: hung until cancelled: %w", s, op, name, ctx.Err())
	}
	if p.fail != nil {
		s.log.Debug("faulty: failing call", "store", s.name, "op", op.String(), "name", name, "err", p.fail)
		return fmt.Errorf("%s: %s %s: injected failure: %w", s, op, name, p.fail)
	}
	return nil
}

// flip inverts bytes of b at positions drawn from draws.
func flip(b []byte, draws []uint64) {
	if len(b) == 0 {
		return
	}
	for _, d := range draws {
		b[d%uint64(len(b))] ^= 0xff
	}
}

// Put stores data through the rules. With a Corrupt hit the inner store
// gets a corrupted copy; data itself is never modified.
func (s *Store) Put(ctx context.Context, name string, data []byte) error {
	p := s.decide(OpPut, name, true)
	if err := s.before(ctx, OpPut, name, p); err != nil {
		return err
	}
	if len(p.corrupt) > 0 {
		data = append([]byte(nil), data...)
		flip(data, p.corrupt)
		s.log.Debug("faulty: corrupting put", "store", s.name, "name", name)
	}
	return s.inner.Put(ctx, name, data)
}

// Get reads through the rules. With a Corrupt hit, bytes of p are flipped
// after a successful inner Get.
func (s *Store) Get(ctx context.Context, name string, off int64, buf []byte) error {
	p := s.decide(OpGet, name, true)
	if err := s.before(ctx, OpGet, name, p); err != nil {
		return err
	}
	if err := s.inner.Get(ctx, name, off, buf); err != nil {
		return err
	}
	if len(p.corrupt) > 0 {
		flip(buf, p.corrupt)
		s.log.Debug("faulty: corrupting get", "store", s.name, "name", name, "off", off, "len", len(buf))
	}
	return nil
}

// Stat goes through the rules.
func (s *Store) Stat(ctx context.Context, name string) (remote.ObjectInfo, error) {
	if err := s.before(ctx, OpStat, name, s.decide(OpStat, name, true)); err != nil {
		return remote.ObjectInfo{}, err
	}
	return s.inner.Stat(ctx, name)
}

// Delete goes through the rules.
func (s *Store) Delete(ctx context.Context, name string) error {
	if err := s.before(ctx, OpDelete, name, s.decide(OpDelete, name, true)); err != nil {
		return err
	}
	return s.inner.Delete(ctx, name)
}

// List goes through the rules.
func (s *Store) List(ctx context.Context, prefix, after string, limit int) ([]remote.ObjectInfo, error) {
	if err := s.before(ctx, OpList, "prefix "+prefix, s.decide(OpList, "", false)); err != nil {
		return nil, err
	}
	return s.inner.List(ctx, prefix, after, limit)
}

// Info goes through the rules.
func (s *Store) Info(ctx context.Context) (remote.NodeInfo, error) {
	if err := s.before(ctx, OpInfo, "", s.decide(OpInfo, "", false)); err != nil {
		return remote.NodeInfo{}, err
	}
	return s.inner.Info(ctx)
}
