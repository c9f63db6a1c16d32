package remote

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// MemMode is what a MemStore does with calls.
type MemMode int32

// Modes of a MemStore.
const (
	MemUp   MemMode = iota
	MemDown         // every call fails at once, like a refused connection
	MemFail         // every call fails with a server error
	MemHang         // every call blocks until its ctx ends
	MemFull         // Put fails with ErrFull; reads work
)

// MemStore is an in-memory Store for tests, with a switchable failure mode
// and call counters. Exported so the remote_test package can use it.
type MemStore struct {
	mu   sync.Mutex // guards objs
	objs map[string][]byte

	mode              atomic.Int32
	Gets, Puts, Stats atomic.Int64
}

// NewMemStore returns an empty, up store.
func NewMemStore() *MemStore { return &MemStore{objs: map[string][]byte{}} }

// SetMode switches the failure mode.
func (s *MemStore) SetMode(m MemMode) { s.mode.Store(int32(m)) }

func (s *MemStore) fail(ctx context.Context, put bool) error {
	switch MemMode(s.mode.Load()) {
	case MemDown:
		return fmt.Errorf("%w: dial tcp: connection refused", ErrUnavailable)
	case MemFail:
		return errors.New("500 internal server error")
	case MemHang:
		<-ctx.Done()
		return ctx.Err()
	case MemFull:
		if put {
			return ErrFull
		}
	}
	return ctx.Err()
}

func (s *MemStore) Put(ctx context.Context, name string, data []byte) error {
	s.Puts.Add(1)
	if err := s.fail(ctx, true); err != nil {
		return err
	}
	if err := ValidName(name); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.objs[name] = append([]byte(nil), data...)
	return nil
}

func (s *MemStore) Get(ctx context.Context, name string, off int64, p []byte) error {
	s.Gets.Add(1)
	if err := s.fail(ctx, false); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.objs[name]
	if !ok {
		return fmt.Errorf("%s: %w", name, ErrNotFound)
	}
	if off < 0 || off+int64(len(p)) > int64(len(o)) {
		return fmt.Errorf("%s [%d,+%d) of %d: %w", name, off, len(p), len(o), ErrRange)
	}
	copy(p, o[off:])
	return nil
}

func (s *MemStore) Stat(ctx context.Context, name string) (ObjectInfo, error) {
	s.Stats.Add(1)
	if err := s.fail(ctx, false); err != nil {
		return ObjectInfo{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.objs[name]
	if !ok {
		return ObjectInfo{}, fmt.Errorf("%s: %w", name, ErrNotFound)
	}
	return ObjectInfo{Name: name, Size: int64(len(o)), ModTime: time.Unix(0, 0)}, nil
}

func (s *MemStore) Delete(ctx context.Context, name string) error {
	if err := s.fail(ctx, false); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.objs, name)
	return nil
}

func (s *MemStore) List(ctx context.Context, prefix, after string, limit int) ([]ObjectInfo, error) {
	if err := s.fail(ctx, false); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []ObjectInfo
	for n, o := range s.objs {
		if strings.HasPrefix(n, prefix) && n > after {
			out = append(out, ObjectInfo{Name: n, Size: int64(len(o))})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

func (s *MemStore) Info(ctx context.Context) (NodeInfo, error) {
	if err := s.fail(ctx, false); err != nil {
		return NodeInfo{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var used int64
	for _, o := range s.objs {
		used += int64(len(o))
	}
	return NodeInfo{Capacity: 1 << 30, Free: 1<<30 - used, Objects: int64(len(s.objs)), Version: "mem"}, nil
}

// Objects returns a copy of every object, by name.
func (s *MemStore) Objects() map[string][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string][]byte, len(s.objs))
	for n, o := range s.objs {
		out[n] = append([]byte(nil), o...)
	}
	return out
}

// Mutate runs fn on the stored bytes of name (to flip bits); false if missing.
func (s *MemStore) Mutate(name string, fn func([]byte)) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.objs[name]
	if ok {
		fn(o)
	}
	return ok
}
