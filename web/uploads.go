package web

import (
	"errors"
	"io"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultUploadIdle is Options.UploadIdle's default.
const DefaultUploadIdle = 60 * time.Second

// errUploadsEnded is an upload's body read after EndUploads: the drive is
// being unmounted.
var errUploadsEnded = errors.New("uploads ended: the drive is being unmounted")

// errRestoreEnded ends a restore's copy after EndUploads.
var errRestoreEnded = errors.New("restore ended: the drive is being unmounted")

// uploads are the PUTs, downloads and restores in flight, so EndUploads
// (an unmount) can end them: each holds a file of the mount and the
// mount's root open, and the mount cannot be unmounted while they do.
type uploads struct {
	mu sync.Mutex // guards m and refuseUntil
	m  map[ender]bool
	// refuseUntil: end ran for an unmount; until then new uploads and
	// restores are refused, so none opens a file between end and the
	// umount (which would then fail as busy). If the unmount fails they
	// are taken again after it.
	refuseUntil time.Time
	idle        time.Duration
}

// refuseAfterEnd is how long uploads and restores are refused after end.
const refuseAfterEnd = 30 * time.Second

// ender is one upload, download or restore in flight.
type ender interface {
	end()                      // make its reads fail from now on
	finished() <-chan struct{} // closed once it has cleaned up
}

// register adds e; the func returned (after e's files are closed)
// unregisters it and closes done. nil when an unmount is ending uploads
// (refuseUntil): then e must not start.
func (u *uploads) register(e ender, done chan struct{}) func() {
	u.mu.Lock()
	if time.Now().Before(u.refuseUntil) {
		u.mu.Unlock()
		return nil
	}
	if u.m == nil {
		u.m = map[ender]bool{}
	}
	u.m[e] = true
	u.mu.Unlock()
	return func() {
		u.mu.Lock()
		delete(u.m, e)
		u.mu.Unlock()
		close(done)
	}
}

// add registers a request's body; done (after the request's files are
// closed) unregisters it. done is nil when an unmount is ending uploads:
// the upload must be refused.
func (u *uploads) add(w http.ResponseWriter, r io.ReadCloser) (b *uploadBody, done func()) {
	b = &uploadBody{r: r, rc: http.NewResponseController(w), idle: u.idle, done: make(chan struct{})}
	return b, u.register(b, b.done)
}

// addRestore registers a restore; done (after its files are closed)
// unregisters it; nil as for add.
func (u *uploads) addRestore() (r *restoreRun, done func()) {
	r = &restoreRun{done: make(chan struct{})}
	return r, u.register(r, r.done)
}

// errDownloadEnded ends a download's reads after EndUploads.
var errDownloadEnded = errors.New("download ended: the drive is being unmounted")

// addDownload registers a download; done (after its file and the root are
// closed) unregisters it; nil as for add.
func (u *uploads) addDownload(w http.ResponseWriter) (d *downloadRun, done func()) {
	d = &downloadRun{rc: http.NewResponseController(w), done: make(chan struct{})}
	return d, u.register(d, d.done)
}

// downloadRun is a download in flight: it holds a file of the mount open.
// Once ended, its next read of the file fails with errDownloadEnded, and a
// write blocked on a slow client fails at once (the write deadline moves
// into the past), so the handler returns and closes the file.
type downloadRun struct {
	rc    *http.ResponseController
	ended atomic.Bool
	done  chan struct{}
}

func (d *downloadRun) end() {
	d.ended.Store(true)
	d.rc.SetWriteDeadline(time.Now().Add(-time.Second)) // unsupported (a recorder in tests): reads still stop
}
func (d *downloadRun) finished() <-chan struct{} { return d.done }

// restoreRun is a restore in flight: once ended, its copy stops at the
// next file or chunk (restoreChunk) with errRestoreEnded.
type restoreRun struct {
	ended atomic.Bool
	done  chan struct{}
}

func (r *restoreRun) end()                      { r.ended.Store(true) }
func (r *restoreRun) finished() <-chan struct{} { return r.done }

// end makes every upload in flight fail (its next or current read returns
// errUploadsEnded) and waits, at most wait, until those have cleaned up
// (uploads that start meanwhile are not waited for: a WaitGroup here
// could be added to while waited on). It reports how many there were.
func (u *uploads) end(wait time.Duration) int {
	u.mu.Lock()
	u.refuseUntil = time.Now().Add(refuseAfterEnd)
	ended := make([]ender, 0, len(u.m))
	for e := range u.m {
		e.end()
		ended = append(ended, e)
	}
	u.mu.Unlock()
	timeout := time.After(wait)
	for _, e := range ended {
		select {
		case <-e.finished():
		case <-timeout:
			return len(ended)
		}
	}
	return len(ended)
}

// uploadBody is an upload's request body with a deadline on progress:
// each Read moves the connection's read deadline idle into the future, so
// a body that stops arriving fails with os.ErrDeadlineExceeded after idle
// while one that keeps coming, however large and slow, is never cut off.
// end sets the deadline in the past to stop a Read blocked now.
type uploadBody struct {
	r     io.ReadCloser
	rc    *http.ResponseController
	idle  time.Duration
	ended atomic.Bool
	// stalled: the idle deadline passed (the client stopped sending).
	stalled bool
	done    chan struct{} // closed once the upload has cleaned up
}

func (b *uploadBody) Read(p []byte) (int, error) {
	if b.ended.Load() {
		return 0, errUploadsEnded
	}
	// Unsupported (a recorder in tests): no deadline, as before.
	b.rc.SetReadDeadline(time.Now().Add(b.idle))
	// end stores ended before it moves the deadline back, so either this
	// sees it or end's deadline comes after ours.
	if b.ended.Load() {
		return 0, errUploadsEnded
	}
	n, err := b.r.Read(p)
	if err != nil && b.ended.Load() {
		return n, errUploadsEnded
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		b.stalled = true
	}
	return n, err
}

func (b *uploadBody) Close() error { return b.r.Close() }

func (b *uploadBody) finished() <-chan struct{} { return b.done }

func (b *uploadBody) end() {
	b.ended.Store(true)
	b.rc.SetReadDeadline(time.Now().Add(-time.Second))
}

// EndUploads ends the uploads, downloads and restores in flight (an
// unmount is coming: their open files would keep the mount busy): an
// upload or restore answers 503 and removes its hidden file, a download
// is cut short. It waits at most wait for them and reports how many there
// were.
func (s *Server) EndUploads(wait time.Duration) int {
	n := s.ups.end(wait)
	if n > 0 {
		s.log.Info("web: uploads in flight ended for the unmount", "uploads", n)
	}
	return n
}
