package journal

import (
	"context"
	"fmt"
	"os"

	"github.com/meshdrive/meshdrive/remote"
)

// A file's life: create, write, fsync (durable on local disk), wait for the
// uploader (durable on the grid), read back.
func Example() {
	dir, _ := os.MkdirTemp("", "journal-example")
	defer os.RemoveAll(dir)
	ctx := context.Background()
	sealer, _ := remote.NewSealer(make([]byte, 32))
	grid := newFakeGrid("") // any Grid: *remote.Grid in the drive
	j, err := Open(ctx, Options{
		Dir: dir, Grid: grid, Sealer: sealer,
		Blocks: &testReader{g: grid, s: sealer}, // *cache.Cache in the drive
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer j.Close()
	f, _ := j.Mknod(ctx, RootIno, "hello.txt", 0o644, 0, 1000, 1000)
	j.OpenFile(f.Ino)
	j.WriteAt(ctx, f.Ino, []byte("hello, grid"), 0)
	j.Fsync(ctx, f.Ino)
	j.ReleaseFile(f.Ino)
	st, _ := j.Status(ctx, f.Ino)
	fmt.Println("after fsync:", st.State)
	if err := j.WaitDurable(ctx); err != nil {
		fmt.Println(err)
		return
	}
	st, _ = j.Status(ctx, f.Ino)
	fmt.Println("after WaitDurable:", st.State)
	p := make([]byte, 64)
	n, _ := j.ReadAt(ctx, f.Ino, p, 0)
	fmt.Printf("%s\n", p[:n])
	// Output:
	// after fsync: local
	// after WaitDurable: durable
	// hello, grid
}
