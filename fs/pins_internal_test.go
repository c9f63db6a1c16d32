package fs

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/meshdrive/meshdrive/journal"
	"github.com/meshdrive/meshdrive/remote"
)

// pinFiles is a journal of regular files (inodes 2, 3, ...) of 1 MiB, one
// block each, for the pinner.
type pinFiles struct {
	mu     sync.Mutex
	pinned map[journal.Ino]bool
}

func (f *pinFiles) GetAttr(_ context.Context, ino journal.Ino) (journal.Attr, error) {
	return journal.Attr{Ino: ino, Mode: syscall.S_IFREG | 0o644, Size: 1 << 20, Blocks: 2048}, nil
}

func (f *pinFiles) GetXattr(_ context.Context, ino journal.Ino, name string) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.pinned[ino] {
		return []byte("1"), nil
	}
	return nil, journal.ErrNoXattr
}

func (f *pinFiles) ReadDir(context.Context, journal.Ino, uint64, int) ([]journal.DirEntry, error) {
	return nil, nil
}

func (f *pinFiles) SetXattr(_ context.Context, ino journal.Ino, _ string, _ []byte, _ uint32) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pinned[ino] = true
	return nil
}

func (f *pinFiles) RemoveXattr(_ context.Context, ino journal.Ino, _ string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.pinned[ino] {
		return journal.ErrNoXattr
	}
	delete(f.pinned, ino)
	return nil
}

func (f *pinFiles) XattrInodes(context.Context, string) ([]journal.Ino, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []journal.Ino
	for ino := range f.pinned {
		out = append(out, ino)
	}
	return out, nil
}

func (f *pinFiles) GridRefs(_ context.Context, ino journal.Ino) ([]remote.BlockRef, error) {
	var id remote.BlockID
	id[0] = byte(ino)
	return []remote.BlockRef{{ID: id, Length: 1 << 20}}, nil
}

// slowKeep is a cache whose Keep takes a while while slow is set (a pass
// fetching), and that has nothing on disk.
type slowKeep struct{ slow chan struct{} }

func (c *slowKeep) Keep(ctx context.Context, _ remote.BlockRef) error {
	select {
	case <-c.slow:
	case <-ctx.Done():
	}
	return nil
}
func (c *slowKeep) Pin(remote.BlockID)         {}
func (c *slowKeep) Unpin(remote.BlockID)       {}
func (c *slowKeep) OnDisk(remote.BlockID) bool { return false }

// TestUnpinTotalsWhilePassRuns: the totals WaitPass gives after an unpin
// are of a pass that began after it, not of one running during it (which
// still counts the unpinned file).
func TestUnpinTotalsWhilePassRuns(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	j := &pinFiles{pinned: map[journal.Ino]bool{}}
	c := &slowKeep{slow: make(chan struct{})}
	p := NewPinner(j, c, 1<<30, nil)
	if err := p.Pin(ctx, 2); err != nil {
		t.Fatal(err)
	}
	if err := p.Pin(ctx, 3); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { p.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	// The first pass counts both and is now fetching (Keep blocks):
	// unpin one file meanwhile.
	time.Sleep(50 * time.Millisecond)
	if err := p.Unpin(ctx, 2); err != nil {
		t.Fatal(err)
	}
	go func() { time.Sleep(100 * time.Millisecond); close(c.slow) }() // the fetch ends
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	if err := p.WaitPass(wctx); err != nil {
		t.Fatal(err)
	}
	if st := p.Stats(); st.Files != 1 || st.Bytes != 1<<20 {
		t.Errorf("totals after the unpin: %d files, %d bytes; want 1 file of 1 MiB", st.Files, st.Bytes)
	}
	p.mu.Lock()
	_, still := p.files[2]
	p.mu.Unlock()
	if still {
		t.Error("the unpinned file is still counted")
	}
}

// countKeep counts Keep calls.
type countKeep struct{ n atomic.Int64 }

func (c *countKeep) Keep(context.Context, remote.BlockRef) error { c.n.Add(1); return nil }
func (c *countKeep) Pin(remote.BlockID)                          {}
func (c *countKeep) Unpin(remote.BlockID)                        {}
func (c *countKeep) OnDisk(remote.BlockID) bool                  { return false }

// TestPinsWithoutDiskTier: files pinned before the drive was mounted with
// --cache-size 0 (budget 0) are counted, not fetched, and the pass says
// why, not "could not be fetched (offline?)"; a new pin is refused.
func TestPinsWithoutDiskTier(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	j := &pinFiles{pinned: map[journal.Ino]bool{2: true}}
	c := &countKeep{}
	p := NewPinner(j, c, 0, nil)
	done := make(chan struct{})
	go func() { p.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	if err := p.WaitPass(wctx); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); p.Stats().LastPass.IsZero(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no pass ended")
		}
	}
	if st := p.Stats(); st.Files != 1 || !strings.Contains(st.LastError, "without a disk cache") {
		t.Errorf("stats %+v: want the pinned file counted and the reason it is not kept", st)
	}
	if n := c.n.Load(); n != 0 {
		t.Errorf("%d fetches with no disk tier to keep them in", n)
	}
	if err := p.Pin(ctx, 3); !errors.Is(err, ErrPinBudget) || !strings.Contains(err.Error(), "without a disk cache") {
		t.Errorf("a pin with no disk tier: %v", err)
	}
}

// diskKeep is a cache that has every block on disk, whose Keep blocks
// while hold is set (a pass still fetching).
type diskKeep struct {
	hold    atomic.Bool
	release chan struct{}
}

func (c *diskKeep) Keep(ctx context.Context, _ remote.BlockRef) error {
	if c.hold.Load() {
		select {
		case <-c.release:
		case <-ctx.Done():
		}
	}
	return nil
}
func (c *diskKeep) Pin(remote.BlockID)         {}
func (c *diskKeep) Unpin(remote.BlockID)       {}
func (c *diskKeep) OnDisk(remote.BlockID) bool { return true }

// runPinnerOfTwo runs a pinner over c with files 2 and 3 pinned, until the
// test ends (c's fetches released then), once its first pass has counted
// their two blocks.
func runPinnerOfTwo(t *testing.T, c *diskKeep) *Pinner {
	ctx, cancel := context.WithCancel(t.Context())
	p := NewPinner(&pinFiles{pinned: map[journal.Ino]bool{}}, c, 1<<30, nil)
	for _, ino := range []journal.Ino{2, 3} {
		if err := p.Pin(ctx, ino); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan struct{})
	go func() { p.Run(ctx); close(done) }()
	t.Cleanup(func() { close(c.release); cancel(); <-done })
	for deadline := time.Now().Add(10 * time.Second); p.Stats().Blocks != 2 || (!c.hold.Load() && p.Stats().LocalBlocks != 2); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("first pass: %+v, want 2 blocks (local unless fetches hold)", p.Stats())
		}
	}
	return p
}

// TestPinTotalsAgreeWhilePassFetches: the blocks on this machine are
// counted with the blocks pinned, so the totals an unpin reports never say
// more blocks are local than are pinned ("4 of 3 blocks on this machine"
// while the pass fetched).
func TestPinTotalsAgreeWhilePassFetches(t *testing.T) {
	ctx := t.Context()
	c := &diskKeep{release: make(chan struct{})}
	p := runPinnerOfTwo(t, c)
	c.hold.Store(true) // the next pass fetches for a while
	if err := p.Unpin(ctx, 2); err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	if err := p.WaitPass(wctx); err != nil {
		t.Fatal(err)
	}
	if st := p.Stats(); st.Blocks != 1 || st.LocalBlocks != 1 {
		t.Errorf("after the unpin: %d of %d blocks local; want 1 of 1", st.LocalBlocks, st.Blocks)
	}
}

// TestUnpinCountedWhilePassFetches: an unpin's totals (meshdrive unpin
// reports them) came only from a pass begun after it, and a pass begins
// only when the one before has fetched everything: while a pinned folder
// was being fetched (hours for a big one, or never offline), unpin waited
// its 10 s and reported the totals from before, the unpinned file still
// counted. WaitPass now counts at once.
func TestUnpinCountedWhilePassFetches(t *testing.T) {
	ctx := t.Context()
	c := &diskKeep{release: make(chan struct{})}
	c.hold.Store(true) // every pass fetches until the test ends
	p := runPinnerOfTwo(t, c)
	if err := p.Unpin(ctx, 2); err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	if err := p.WaitPass(wctx); err != nil {
		t.Fatalf("WaitPass while a pass fetches: %v", err)
	}
	if st := p.Stats(); st.Files != 1 || st.Blocks != 1 || st.LocalBlocks != 1 {
		t.Errorf("after the unpin: %d files, %d of %d blocks local; want 1 file, 1 of 1", st.Files, st.LocalBlocks, st.Blocks)
	}
}
