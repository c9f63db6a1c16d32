package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/meshdrive/meshdrive/fs"
	"github.com/meshdrive/meshdrive/remote"
	"github.com/meshdrive/meshdrive/remote/dirstore"
	remoteopen "github.com/meshdrive/meshdrive/remote/open"
)

// passwdDuringPut runs a passwd (once, for the whole grid) when the
// wrapped key is about to be put on its node, before that put lands.
type passwdDuringPut struct {
	remote.Store
	once *sync.Once
	run  func()
}

func (s passwdDuringPut) Put(ctx context.Context, name string, data []byte) error {
	if name == "meta/"+metaKey {
		s.once.Do(s.run)
	}
	return s.Store.Put(ctx, name, data)
}

// TestDriveMetaAfterPasswd: the mount's pass that stores the drive key
// again on a node that lost it (keepDriveMeta, every --repair-interval)
// read key.json, then put it on every node. A meshdrive passwd that ran
// in between (key.json, then every node, under the new passphrase) was
// undone on every node by that older copy: recover from any node then
// refused the new passphrase. The pass now reads key.json again after its
// put and stores the newer key when it changed.
func TestDriveMetaAfterPasswd(t *testing.T) {
	ctx := context.Background()
	dataDir := t.TempDir()
	master := make([]byte, 32)
	rand.Read(master)
	oldKey, err := remoteopen.WrapKey(master, []byte("old passphrase"), remoteopen.TestKeyParams())
	if err != nil {
		t.Fatal(err)
	}
	newKey, err := remoteopen.WrapKey(master, []byte("new passphrase"), remoteopen.TestKeyParams())
	if err != nil {
		t.Fatal(err)
	}
	kp := filepath.Join(dataDir, keyFile)
	if err := os.WriteFile(kp, oldKey, 0o600); err != nil {
		t.Fatal(err)
	}
	sealer, err := remote.NewSealer(master)
	if err != nil {
		t.Fatal(err)
	}
	var plain, hooked []remote.Member
	var passwd func()
	once := new(sync.Once)
	for i := range 3 {
		st, err := dirstore.New(t.TempDir(), dirstore.Options{})
		if err != nil {
			t.Fatal(err)
		}
		name := fmt.Sprintf("node-%d", i+1)
		plain = append(plain, remote.Member{Name: name, Store: st})
		hooked = append(hooked, remote.Member{Name: name, Store: passwdDuringPut{Store: st, once: once, run: func() { passwd() }}})
	}
	direct, err := remote.NewGrid(remote.GridOptions{K: 2, M: 1, Members: plain, Sealer: sealer})
	if err != nil {
		t.Fatal(err)
	}
	grid, err := remote.NewGrid(remote.GridOptions{K: 2, M: 1, Members: hooked, Sealer: sealer})
	if err != nil {
		t.Fatal(err)
	}
	// Two nodes hold the key under the old passphrase, node-3 (a
	// replaced disk) nothing.
	for _, m := range plain[:2] {
		g, err := remote.NewGrid(remote.GridOptions{K: 1, Members: []remote.Member{m}, Sealer: sealer})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := g.PutMeta(ctx, metaKey, oldKey); err != nil {
			t.Fatal(err)
		}
	}
	// What runPasswd does: key.json first, then every node.
	passwd = func() {
		if err := writeFileAtomic(kp, newKey, 0o600); err != nil {
			t.Error(err)
		}
		if n, err := direct.PutMeta(ctx, metaKey, newKey); err != nil || n != 3 {
			t.Errorf("passwd's put: %d nodes, %v", n, err)
		}
	}
	c := &controlServer{o: controlOptions{dataDir: dataDir, cfg: &Config{}, grid: grid, log: slog.New(slog.DiscardHandler)}}
	var rep fs.RepairReport
	c.checkDriveMeta(ctx, &rep, true)
	if rep.MetaError != "" || !rep.MetaRestored {
		t.Fatalf("the pass did not store the key on node-3: restored %v, %s", rep.MetaRestored, rep.MetaError)
	}
	for _, mc := range direct.GetMetaAll(ctx, metaKey) {
		switch {
		case mc.Err != nil:
			t.Errorf("%s: %v", mc.Node, mc.Err)
		case bytes.Equal(mc.Data, oldKey):
			t.Errorf("%s holds the key under the passphrase passwd replaced: recover from it refuses the new one", mc.Node)
		case !bytes.Equal(mc.Data, newKey):
			t.Errorf("%s holds neither key", mc.Node)
		}
	}
}
