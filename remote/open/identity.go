package open

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/meshdrive/meshdrive/remote"
	"github.com/meshdrive/meshdrive/remote/dirstore"
)

// ErrWrongNode: a node's store is not the node the drive recorded (its
// directory's mark holds another id): another grid's node, or the wrong
// disk mounted at the node's path. Calls to it fail as unavailable.
var ErrWrongNode = dirstore.ErrWrongNode

// NewNodeID returns a new random node id (dirstore.NewID).
func NewNodeID() string { return dirstore.NewID() }

// identity is a node server's store checked against the id the drive
// recorded for the node (Options.ID): before its first call, and again
// after a call fails as unavailable (the server may have been started
// again over another directory), it asks the node's Info, and a node of
// another id fails every call as unavailable, wrapping ErrWrongNode, so
// the grid counts it down and writes nothing to it. A node that reports
// no id (a server from before ids) is taken at its word. A directory
// store checks its own mark (dirstore.Options.ID).
type identity struct {
	remote.Store
	url, want string

	mu sync.Mutex // guards ok
	ok bool       // the node's Info had the id since the last unavailable call
}

// Unwrap returns the store inside (remote.Base).
func (s *identity) Unwrap() remote.Store { return s.Store }

func (s *identity) set(ok bool) {
	s.mu.Lock()
	s.ok = ok
	s.mu.Unlock()
}

// check asks the node's id unless it was seen since the last failure.
func (s *identity) check(ctx context.Context) error {
	s.mu.Lock()
	ok := s.ok
	s.mu.Unlock()
	if ok {
		return nil
	}
	_, err := s.Info(ctx)
	return err
}

// after forgets the node's id once a call fails as unavailable.
func (s *identity) after(err error) error {
	if errors.Is(err, remote.ErrUnavailable) {
		s.set(false)
	}
	return err
}

func (s *identity) Info(ctx context.Context) (remote.NodeInfo, error) {
	ni, err := s.Store.Info(ctx)
	if err != nil {
		return ni, s.after(err)
	}
	if ni.ID != "" && ni.ID != s.want {
		s.set(false)
		return remote.NodeInfo{}, fmt.Errorf("%w (%w): %s is node %s, but this drive recorded node %s at that address: "+
			"its server serves another node's directory (another grid's node, or the wrong disk mounted at its path); "+
			"serve this node's own directory there (meshdrive node serve --dir), or if the node moved, fix its address in the drive; "+
			"if the node's disk was replaced, stop its server, empty the mark in its directory (: > DIR/%s; a start without --id wrote a new id there), "+
			"start it with --id %s, then run meshdrive check --repair",
			remote.ErrUnavailable, ErrWrongNode, redact(s.url), ni.ID, s.want, dirstore.MarkName, s.want)
	}
	s.set(true)
	return ni, nil
}

func (s *identity) Put(ctx context.Context, name string, data []byte) error {
	if err := s.check(ctx); err != nil {
		return err
	}
	return s.after(s.Store.Put(ctx, name, data))
}

func (s *identity) Get(ctx context.Context, name string, off int64, p []byte) error {
	if err := s.check(ctx); err != nil {
		return err
	}
	return s.after(s.Store.Get(ctx, name, off, p))
}

func (s *identity) Stat(ctx context.Context, name string) (remote.ObjectInfo, error) {
	if err := s.check(ctx); err != nil {
		return remote.ObjectInfo{}, err
	}
	oi, err := s.Store.Stat(ctx, name)
	return oi, s.after(err)
}

func (s *identity) Delete(ctx context.Context, name string) error {
	if err := s.check(ctx); err != nil {
		return err
	}
	return s.after(s.Store.Delete(ctx, name))
}

func (s *identity) List(ctx context.Context, prefix, after string, limit int) ([]remote.ObjectInfo, error) {
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	l, err := s.Store.List(ctx, prefix, after, limit)
	return l, s.after(err)
}

// Verify lets the node check a shard itself when its store can.
func (s *identity) Verify(ctx context.Context, name string) error {
	if err := s.check(ctx); err != nil {
		return err
	}
	return s.after(verify(ctx, s.Store, name))
}
