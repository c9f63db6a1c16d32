package faulty_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/meshdrive/meshdrive/remote"
	"github.com/meshdrive/meshdrive/remote/dirstore"
	"github.com/meshdrive/meshdrive/remote/faulty"
)

// Wrap a store, make a third of its reads fail and every list slow, then
// take the node down.
func Example() {
	dir, _ := os.MkdirTemp("", "faulty-example")
	defer os.RemoveAll(dir)
	ds, _ := dirstore.New(dir, dirstore.Options{})
	s := faulty.New(ds, faulty.Options{Name: "node-3", Seed: 1})
	s.SetRules(
		faulty.Rule{Ops: faulty.OpGet, Prob: 1.0 / 3, Action: faulty.Fail, Err: remote.ErrUnavailable},
		faulty.Rule{Ops: faulty.OpList, Action: faulty.Delay, Delay: 10 * time.Millisecond},
	)
	_, err := s.List(context.Background(), "", "", 10)
	fmt.Println(err)
	s.SetDown(true)
	_, err = s.Info(context.Background())
	fmt.Println(errors.Is(err, remote.ErrUnavailable))
	// Output:
	// <nil>
	// true
}
