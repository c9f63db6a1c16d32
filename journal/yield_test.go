package journal

import (
	"bytes"
	"context"
	"testing"
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
func TestUploadYieldsToReads(t *testing.T) {
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
