package remote

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// TestSameStore: a store that is already a member under another name is
// found, a down member is "not known", and no probe stays behind.
func TestSameStore(t *testing.T) {
	ctx := context.Background()
	tg := newTestGrid(t, 4, 2, 1, nil)
	tg.stores[3].SetMode(MemDown)
	answers, err := tg.SameStore(ctx, tg.stores[1])
	if err != nil {
		t.Fatal(err)
	}
	if len(answers) != 4 {
		t.Fatalf("%d answers for 4 members: %+v", len(answers), answers)
	}
	for i, a := range answers {
		if a.Node != tg.view().all[i].Name {
			t.Errorf("answer %d is from %s, want member order", i, a.Node)
		}
		if want := i == 1; a.Same != want {
			t.Errorf("%s: same %v, want %v", a.Node, a.Same, want)
		}
		if want := i == 3; (a.Err != nil) != want {
			t.Errorf("%s: err %v, want one: %v", a.Node, a.Err, want)
		}
	}
	answers, err = tg.SameStore(ctx, NewMemStore())
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range answers {
		if a.Same {
			t.Errorf("a new empty store is %s", a.Node)
		}
	}
	for i, s := range tg.stores {
		for name := range s.Objects() {
			if strings.HasPrefix(name, probePrefix) {
				t.Errorf("store %d kept probe %s", i, name)
			}
		}
	}

	full := NewMemStore()
	full.SetMode(MemFull)
	if _, err := tg.SameStore(ctx, full); !errors.Is(err, ErrFull) {
		t.Errorf("a store that takes no probe: %v, want ErrFull", err)
	}
}

// TestAliases: members that share one store are reported once each,
// against the first of them; a member that cannot answer is an error.
func TestAliases(t *testing.T) {
	ctx := context.Background()
	tg := newTestGrid(t, 5, 2, 1, func(o *GridOptions) {
		o.Members[3].Store = o.Members[0].Store
		o.Members[4].Store = o.Members[0].Store
	})
	got, err := tg.Aliases(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []Alias{{"node-3", "node-0"}, {"node-4", "node-0"}}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("aliases %+v, want %+v", got, want)
	}
	if n := len(tg.stores[0].Objects()); n != 0 {
		t.Errorf("%d objects left on the shared store", n)
	}

	tg = newTestGrid(t, 4, 2, 1, nil)
	if got, err := tg.Aliases(ctx); err != nil || len(got) != 0 {
		t.Errorf("distinct stores: aliases %+v, err %v", got, err)
	}
	tg.stores[2].SetMode(MemDown)
	if _, err := tg.Aliases(ctx); !errors.Is(err, ErrUnavailable) {
		t.Errorf("a member down: %v, want ErrUnavailable", err)
	}
}
