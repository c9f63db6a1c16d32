package journal

import (
	"bytes"
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/meshdrive/meshdrive/remote"
)

// gatedReader holds every ReadBlock until gate is closed.
type gatedReader struct {
	BlockReader
	entered chan struct{}
	gate    chan struct{}
}

func (r *gatedReader) ReadBlock(ctx context.Context, ref remote.BlockRef) ([]byte, error) {
	select {
	case r.entered <- struct{}{}:
	default:
	}
	<-r.gate
	return r.BlockReader.ReadBlock(ctx, ref)
}

// While an application waits for a block from the grid, the uploader
// holds a segment back, but only for maxYield.
func TestUploadYieldsToReads(t *testing.T) { bubble(t, testUploadYieldsToReads) }

func testUploadYieldsToReads(t *testing.T) {
	var gr *gatedReader
	e := newEnv(t, func(o *Options) {
		gr = &gatedReader{BlockReader: o.Blocks, entered: make(chan struct{}, 1), gate: make(chan struct{})}
		o.Blocks = gr
	})
	ctx := context.Background()
	a := must[Attr](t)(e.j.Mknod(ctx, RootIno, "a", 0o100644, 0, 0, 0))
	data := bytes.Repeat([]byte("read me first "), 10000)
	must[int](t)(e.j.WriteAt(ctx, a.Ino, data, 0))
	if err := e.j.Fsync(ctx, a.Ino); err != nil {
		t.Fatal(err)
	}
	if err := e.j.WaitDurable(ctx); err != nil {
		t.Fatal(err)
	}

	// An application read that waits on the grid.
	got := make([]byte, 100)
	readDone := make(chan error, 1)
	go func() {
		_, err := e.j.ReadAt(ctx, a.Ino, got, 0)
		readDone <- err
	}()
	<-gr.entered

	b := must[Attr](t)(e.j.Mknod(ctx, RootIno, "b", 0o100644, 0, 0, 0))
	must[int](t)(e.j.WriteAt(ctx, b.Ino, []byte("bulk upload"), 0))
	if err := e.j.Fsync(ctx, b.Ino); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := e.j.WaitDurable(ctx); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < maxYield {
		t.Errorf("upload went ahead of a waiting read after %v, want a yield of %v", d, maxYield)
	}

	close(gr.gate)
	if err := <-readDone; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data[:100]) {
		t.Fatalf("read %q", got)
	}
}

// While a big flush runs, the uploader holds a segment back until it ends,
// but only for maxFlushYield.
func TestUploadYieldsToBigFlushes(t *testing.T) { bubble(t, testUploadYieldsToBigFlushes) }

func testUploadYieldsToBigFlushes(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	write := func(name string) {
		t.Helper()
		a := must[Attr](t)(e.j.Mknod(ctx, RootIno, name, 0o100644, 0, 0, 0))
		must[int](t)(e.j.WriteAt(ctx, a.Ino, []byte("small file "+name), 0))
		if err := e.j.Fsync(ctx, a.Ino); err != nil {
			t.Fatal(err)
		}
	}
	// queuedAfter lets d pass on the bubble's clock and says whether the
	// upload still waits once the journal's goroutines are idle. Not
	// WaitDurable: a waiter makes the uploader skip the yield on purpose.
	queuedAfter := func(d time.Duration) bool {
		time.Sleep(d)
		synctest.Wait()
		return e.j.Stats().QueuedBlocks > 0
	}
	write("quiet")
	if queuedAfter(e.opts.IdleFlush) {
		t.Errorf("an upload with nothing to yield to still waits %v after the fsync", e.opts.IdleFlush)
	}

	// A flush that ends after hold: the upload waits for it.
	const hold = 300 * time.Millisecond
	e.j.bigFlushes.Add(1)
	done := time.AfterFunc(hold, func() { e.j.bigFlushes.Add(-1) })
	write("during")
	if !queuedAfter(hold - time.Millisecond) {
		t.Errorf("upload during a big flush of %v went ahead before the flush ended", hold)
	}
	if queuedAfter(maxFlushYield - hold) {
		t.Errorf("upload during a big flush of %v still waits %v after the flush began", hold, maxFlushYield-time.Millisecond)
	}
	done.Stop()

	// A sequential write between two of its blocks: no write-behind
	// goroutine runs, one ended just now. The upload waits behindLinger
	// for the next, then goes ahead.
	e.j.behindEnd.Store(time.Now().UnixNano())
	write("between blocks")
	if !queuedAfter(behindLinger - time.Millisecond) {
		t.Errorf("upload went ahead within %v of a write-behind's end", behindLinger)
	}
	if queuedAfter(e.opts.IdleFlush) {
		t.Errorf("upload still waits %v after the last write-behind ended", behindLinger+e.opts.IdleFlush)
	}

	// A flush that never ends: the upload goes ahead after maxFlushYield.
	e.j.bigFlushes.Store(1)
	defer e.j.bigFlushes.Store(0)
	write("endless")
	if !queuedAfter(maxFlushYield - time.Millisecond) {
		t.Errorf("upload during an endless flush went ahead before %v", maxFlushYield)
	}
	if queuedAfter(time.Minute) {
		t.Fatal("the upload did not finish in a minute")
	}

	// Someone waits for the uploader: no yield.
	a := must[Attr](t)(e.j.Mknod(ctx, RootIno, "waited", 0o100644, 0, 0, 0))
	must[int](t)(e.j.WriteAt(ctx, a.Ino, []byte("small file waited"), 0))
	start := time.Now()
	if err := e.j.WaitDurable(ctx); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d >= maxFlushYield {
		t.Errorf("WaitDurable during an endless flush took %v: the uploader yielded to it", d)
	}
}
