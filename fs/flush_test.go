package fs

import (
	"context"
	"sync"
	"testing"

	"github.com/meshdrive/meshdrive/journal"
)

// stallingJournal is a fake journal that holds a WriteAt until told to go
// on, and tracks what Flush has committed: uncommitted is true from a
// write's end to the next Flush.
type stallingJournal struct {
	*fakeJournal
	entered, proceed chan struct{}

	mu          sync.Mutex
	uncommitted bool
}

func (s *stallingJournal) WriteAt(ctx context.Context, ino journal.Ino, p []byte, off int64) (int, error) {
	s.entered <- struct{}{}
	<-s.proceed
	s.mu.Lock()
	s.uncommitted = true
	s.mu.Unlock()
	return len(p), nil
}

func (s *stallingJournal) Flush(ctx context.Context, ino journal.Ino) error {
	s.mu.Lock()
	s.uncommitted = false
	s.mu.Unlock()
	return nil
}

// TestCloseCommitsWriteRacingAnotherClose: two descriptors of one file, a
// WRITE on one still on its way into the journal while the other is
// closed. That close's FLUSH commits what the journal has, without the
// write; the writer's own close must then commit it (DESIGN promise 1: a
// kill -9 after close loses nothing). It did not: the first FLUSH had
// cleared the node's dirty flag, which the WRITE set on arrival, so the
// writer's close found the file clean and committed nothing.
func TestCloseCommitsWriteRacingAnotherClose(t *testing.T) {
	j := &stallingJournal{fakeJournal: newFakeJournal(), entered: make(chan struct{}), proceed: make(chan struct{})}
	// No kernel and no mount: the node's methods are called as go-fuse
	// would call them for the two descriptors.
	n := &node{fsys: &fileSystem{j: j, log: testLogger()}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if _, errno := n.Write(context.Background(), nil, []byte("data"), 0); errno != 0 {
			t.Errorf("write: %v", errno)
		}
	}()
	<-j.entered // the WRITE is on its way into the journal
	if errno := n.Flush(context.Background(), nil); errno != 0 {
		t.Fatalf("flush of the other descriptor: %v", errno)
	}
	close(j.proceed)
	<-done
	if errno := n.Flush(context.Background(), nil); errno != 0 {
		t.Fatalf("flush of the writer's descriptor: %v", errno)
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.uncommitted {
		t.Errorf("the writer's close returned with its write not committed")
	}
}
