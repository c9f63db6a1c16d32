package dirstore_test

import (
	"testing"

	"github.com/meshdrive/meshdrive/remote"
	"github.com/meshdrive/meshdrive/remote/dirstore"
	"github.com/meshdrive/meshdrive/remote/remotetest"
)

func TestStore(t *testing.T) {
	remotetest.RunStoreTests(t, func(t *testing.T) remote.Store {
		s, err := dirstore.New(t.TempDir(), dirstore.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}
