package integration

import (
	"context"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/time/rate"
)

// countProxy is a TCP proxy on 127.0.0.1 that counts and paces the bytes
// a client sends upstream, so a test can see an upload on the wire and
// kill the uploader while it is there.
type countProxy struct {
	addr     string
	upstream string
	up       atomic.Int64 // bytes client -> upstream
	lim      *rate.Limiter
	ln       net.Listener
	wg       sync.WaitGroup
	mu       sync.Mutex // guards conns
	conns    map[net.Conn]struct{}
}

// startCountProxy proxies to upstream, pacing client->upstream bytes at
// bytesPerSec (0 = unpaced). It stops at the end of t.
func startCountProxy(t *testing.T, upstream string, bytesPerSec int) *countProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("proxy listen: %v", err)
	}
	p := &countProxy{addr: ln.Addr().String(), upstream: upstream, ln: ln, conns: map[net.Conn]struct{}{}}
	if bytesPerSec > 0 {
		p.lim = rate.NewLimiter(rate.Limit(bytesPerSec), 32<<10)
	}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(p.close)
	return p
}

func (p *countProxy) url() string { return "http://" + p.addr }

func (p *countProxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		u, err := net.Dial("tcp", p.upstream)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns[c], p.conns[u] = struct{}{}, struct{}{}
		p.mu.Unlock()
		p.wg.Add(2)
		go func() {
			defer p.wg.Done()
			p.pipe(u, c, true)
			u.Close()
		}()
		go func() {
			defer p.wg.Done()
			io.Copy(c, u)
			c.Close()
		}()
	}
}

// pipe copies src to dst in small pieces, counting (and pacing) them.
func (p *countProxy) pipe(dst io.Writer, src io.Reader, count bool) {
	buf := make([]byte, 16<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if p.lim != nil {
				if p.lim.WaitN(context.Background(), n) != nil {
					return
				}
			}
			if count {
				p.up.Add(int64(n))
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *countProxy) close() {
	p.ln.Close()
	p.mu.Lock()
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}
