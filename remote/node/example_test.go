package node_test

import (
	"context"
	"fmt"
	"net"
	"os"

	"github.com/meshdrive/meshdrive/remote/node"
	"github.com/meshdrive/meshdrive/remote/shard"
)

// A node server on a random local port and a client storing and reading
// one shard-format object through it.
func Example() {
	dir, err := os.MkdirTemp("", "node-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	srv, err := node.NewServer(node.ServerOptions{Dir: dir, Token: "s3cret"})
	if err != nil {
		panic(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- srv.Serve(ctx, ln) }()

	c, err := node.NewClient("http://s3cret@"+ln.Addr().String(), node.ClientOptions{})
	if err != nil {
		panic(err)
	}
	obj, err := shard.Encode(&shard.Header{Kind: shard.KindMeta, K: 1}, []byte("sealed bytes"))
	if err != nil {
		panic(err)
	}
	if err := c.Put(ctx, "meta/root", obj); err != nil {
		panic(err)
	}
	h, _ := shard.Parse(obj)
	p := make([]byte, h.PayloadLen)
	if err := c.Get(ctx, "meta/root", h.Len(), p); err != nil { // payload only: one ranged GET
		panic(err)
	}
	fmt.Printf("%s\n", p)
	info, _ := c.Info(ctx)
	fmt.Println(info.Objects, info.Version)

	stop() // SIGTERM in `meshdrive node serve`: finish requests, then return
	fmt.Println(<-done)
	// Output:
	// sealed bytes
	// 1 meshdrive-node/1
	// <nil>
}
