package remote

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/meshdrive/meshdrive/remote/shard"
)

// A probe tells whether two stores are one: an object of a random name
// put on one shows up on the other only when they share their objects
// (two spellings of a node's URL, a symlink to its directory, one bucket
// behind two endpoints). A URL cannot tell; the objects can. Probes are
// meta objects named "meta/probe-" and 32 hex digits, each deleted by the
// call that put it (one left by a killed process is a small object that
// nothing reads).
const probePrefix = "meta/probe-"

// probeCleanup bounds deleting a probe, which runs even when the
// caller's ctx has ended.
const probeCleanup = 5 * time.Second

// ProbeAnswer is one member's answer to a probe.
type ProbeAnswer struct {
	Node string
	Same bool  // the member holds the probe: it is the probed store
	Err  error // the member could not be asked (down, timed out): not known
}

// SameStore tells which members of the grid are s, a store not in the grid
// (a node about to be added), under another address: it puts a probe on
// s, asks every member for it in parallel, and deletes it from s. The
// answers come in member order. err is non-nil only when s did not take
// the probe, and then there are no answers.
func (g *Grid) SameStore(ctx context.Context, s Store) ([]ProbeAnswer, error) {
	members := g.view().all
	name, err := putProbe(ctx, s)
	if err != nil {
		return nil, err
	}
	defer deleteProbe(ctx, s, name)
	return g.askProbe(ctx, name, members), nil
}

// Alias is a member found to be the same store as an earlier one.
type Alias struct {
	Node   string `json:"node"`
	SameAs string `json:"same_as"`
}

// Aliases finds the members of the grid that are one store under two
// addresses: it puts a probe on each member in turn and asks the members
// before it, so each alias is reported once, against the first member
// it is. Every member must answer: a member that cannot take a probe or
// cannot be asked is an error, since then the answer is not known.
func (g *Grid) Aliases(ctx context.Context) ([]Alias, error) {
	members := g.view().all
	var out []Alias
	for i, m := range members[1:] {
		var answers []ProbeAnswer
		err := g.call(ctx, m, func(ctx context.Context, s Store) error {
			name, err := putProbe(ctx, s)
			if err != nil {
				return err
			}
			defer deleteProbe(ctx, s, name)
			answers = g.askProbe(ctx, name, members[:i+1])
			return nil
		})
		if err != nil {
			return out, err
		}
		for _, a := range answers {
			if a.Err != nil {
				return out, a.Err
			}
		}
		for _, a := range answers {
			if a.Same {
				out = append(out, Alias{Node: m.Name, SameAs: a.Node})
				break
			}
		}
	}
	return out, nil
}

// putProbe puts a new probe object on s and returns its name.
func putProbe(ctx context.Context, s Store) (string, error) {
	var id [16]byte
	if _, err := rand.Read(id[:]); err != nil {
		panic("remote: crypto/rand failed: " + err.Error()) // never returns an error on supported systems
	}
	name := probePrefix + hex.EncodeToString(id[:])
	payload := []byte("meshdrive probe")
	obj, err := shard.Encode(&shard.Header{Kind: shard.KindMeta, K: 1, SegmentSize: int64(len(payload)), ChunkSize: shard.MinChunkSize}, payload)
	if err != nil {
		return "", err
	}
	if err := s.Put(ctx, name, obj); err != nil {
		return "", fmt.Errorf("put a probe object: %w", err)
	}
	return name, nil
}

// deleteProbe removes probe name from s, also after ctx has ended.
func deleteProbe(ctx context.Context, s Store, name string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), probeCleanup)
	defer cancel()
	_ = s.Delete(ctx, name) // a probe left behind is harmless
}

// askProbe asks each of members, in parallel, whether it holds probe name.
func (g *Grid) askProbe(ctx context.Context, name string, members []*member) []ProbeAnswer {
	out := make([]ProbeAnswer, len(members))
	var wg sync.WaitGroup
	for i, m := range members {
		out[i].Node = m.Name
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := g.call(ctx, m, func(ctx context.Context, s Store) error {
				_, err := s.Stat(ctx, name)
				return err
			})
			switch {
			case err == nil:
				out[i].Same = true
			case !errors.Is(err, ErrNotFound):
				out[i].Err = err
			}
		}()
	}
	wg.Wait()
	return out
}
