package node

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/meshdrive/meshdrive/remote"
	"github.com/meshdrive/meshdrive/remote/dirstore"
	"github.com/meshdrive/meshdrive/remote/shard"
)

// Version is the default NodeInfo.Version a server reports.
const Version = "meshdrive-node/1"

// DefaultMaxObject is the largest object a server takes by default:
// a 64 MiB payload and its largest header. A drive's objects are at most
// a segment (16 MiB) or a metadata object (16 MiB) and their headers;
// ServerOptions.MaxObject (node serve --max-object) raises it, up to
// what the shard format allows.
const DefaultMaxObject = defaultMaxPayload + shard.FixedLen + 8*(defaultMaxPayload/shard.MinChunkSize)

const defaultMaxPayload = 64 << 20

// FixedMaxHeader is the header length of the largest shard object.
const FixedMaxHeader = shard.FixedLen + 8*(shard.MaxPayloadLen/shard.MinChunkSize)

// MaxObjectFor is the object limit that takes payloads of up to payload
// bytes with their largest headers.
func MaxObjectFor(payload int64) int64 {
	return payload + shard.HeaderLen(payload, shard.MinChunkSize)
}

// MaxObjectLimit is the most ServerOptions.MaxObject can be: the largest
// payload the shard format allows and its largest header.
const MaxObjectLimit = shard.MaxPayloadLen + FixedMaxHeader

// DefaultUploadBudget bounds the bytes of the uploads a server holds in
// memory at once; one more is answered 503 (the client tries again).
// One upload is always let in, whatever its size.
const DefaultUploadBudget = 256 << 20

// Uploads must arrive at uploadMinRate bytes a second after an allowance
// of uploadGrace, or the connection is cut: a client that stalls does not
// hold its share of the budget for ever.
var (
	uploadGrace   = 60 * time.Second
	uploadMinRate = int64(32 << 10)
)

// DefaultShutdownTimeout bounds how long Serve waits for requests in
// flight after its context is cancelled.
const DefaultShutdownTimeout = 30 * time.Second

// streamPiece is the size of the pieces a large GET is read and verified
// in; ranges up to 2*streamPiece are served from one buffer.
const streamPiece = 4 << 20

// DirOptions are dirstore.Options, named here for callers that reach the
// store only through the node (cmd/meshdrive's node serve).
type DirOptions = dirstore.Options

// ErrNoDir is dirstore.ErrNoDir: NewServer's error wraps it when
// DirOptions.MustExist is set and Dir is missing, or empty without
// MarkName (a disk's mount point with the disk not mounted).
var ErrNoDir = dirstore.ErrNoDir

// MarkName is dirstore.MarkName, the file every node directory carries.
const MarkName = dirstore.MarkName

// ServerOptions configure a Server.
type ServerOptions struct {
	// Dir is the directory objects are kept in (a dirstore). Required
	// unless Store is set.
	Dir string
	// Token, when not empty, is required as "Authorization: Bearer TOKEN"
	// on every request.
	Token string
	// Logger receives request errors and lifecycle messages. Nil discards.
	Logger *slog.Logger
	// MaxObject bounds an uploaded object's size (default DefaultMaxObject,
	// at most MaxObjectLimit).
	MaxObject int64
	// UploadBudget bounds the bytes of uploads held in memory at once
	// (default DefaultUploadBudget).
	UploadBudget int64
	// Version is reported by /v1/info (default Version).
	Version string
	// ShutdownTimeout bounds the wait for requests in flight when Serve's
	// context ends (default DefaultShutdownTimeout).
	ShutdownTimeout time.Duration
	// DirOptions configure the dirstore opened in Dir.
	DirOptions DirOptions
	// Store, when set, is served instead of a dirstore in Dir (tests and
	// wrappers such as remote/faulty).
	Store remote.Store
	// ScrubRate, when positive, makes Serve verify every stored object
	// again and again at about this many bytes per second, move the
	// corrupt ones aside and report them in /v1/info. The store must be a
	// remote.Verifier (a dirstore is).
	ScrubRate int64
	// Observe, when set, is told of every request: its operation (put,
	// get, delete, list, verify, info, metrics, other), the status
	// answered and how long it took.
	Observe func(op string, status int, d time.Duration)
	// Metrics, when set, is served on GET /metrics (behind the token).
	Metrics http.Handler
}

// Server serves one remote.Store over the node HTTP API.
type Server struct {
	store     remote.Store
	tokenSum  [32]byte
	hasToken  bool
	log       *slog.Logger
	maxObject int64
	budget    int64
	upMu      sync.Mutex // guards upBytes
	upBytes   int64      // bytes of the uploads being read now
	version   string
	shutdown  time.Duration
	pieces    sync.Pool // *[]byte of streamPiece bytes, for large GETs
	scrub     *scrubber // nil without ScrubRate
	observe   func(op string, status int, d time.Duration)
	metrics   http.Handler
}

// NewServer opens the store and returns a server for it.
func NewServer(o ServerOptions) (*Server, error) {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	st := o.Store
	if st == nil {
		if o.Dir == "" {
			return nil, errors.New("node: ServerOptions.Dir is empty; give the directory to keep shards in (--dir)")
		}
		dopts := o.DirOptions
		if dopts.Logger == nil {
			dopts.Logger = log
		}
		ds, err := dirstore.New(o.Dir, dopts)
		if err != nil {
			return nil, fmt.Errorf("node: %w", err)
		}
		st = ds
	}
	s := &Server{
		store:     st,
		log:       log,
		maxObject: o.MaxObject,
		version:   o.Version,
		shutdown:  o.ShutdownTimeout,
		observe:   o.Observe,
		metrics:   o.Metrics,
	}
	if s.maxObject <= 0 {
		s.maxObject = DefaultMaxObject
	}
	if s.maxObject > MaxObjectLimit {
		return nil, fmt.Errorf("node: an object limit of %d bytes is more than the shard format allows (%d); choose a smaller --max-object", s.maxObject, int64(MaxObjectLimit))
	}
	s.budget = o.UploadBudget
	if s.budget <= 0 {
		s.budget = DefaultUploadBudget
	}
	if s.version == "" {
		s.version = Version
	}
	if s.shutdown <= 0 {
		s.shutdown = DefaultShutdownTimeout
	}
	if o.Token != "" {
		s.tokenSum = sha256.Sum256([]byte(o.Token))
		s.hasToken = true
	}
	s.pieces.New = func() any { b := make([]byte, streamPiece); return &b }
	if o.ScrubRate > 0 {
		sc, err := newScrubber(st, o.ScrubRate, log)
		if err != nil {
			return nil, err
		}
		s.scrub = sc
	}
	return s, nil
}

// Handler returns the HTTP handler of the node API.
func (s *Server) Handler() http.Handler {
	if s.observe == nil {
		return http.HandlerFunc(s.serveHTTP)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t0 := time.Now()
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		s.serveHTTP(sw, r)
		s.observe(opOf(r), sw.status, time.Since(t0))
	})
}

// statusWriter remembers the status a handler answered.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// opOf names the operation of a request, for Observe.
func opOf(r *http.Request) string {
	switch p := r.URL.Path; {
	case strings.HasPrefix(p, objectPath):
		switch r.Method {
		case http.MethodPut:
			return "put"
		case http.MethodGet, http.MethodHead:
			return "get"
		case http.MethodDelete:
			return "delete"
		}
		return "other"
	case strings.HasPrefix(p, verifyPath):
		return "verify"
	case p == listPath:
		return "list"
	case p == infoPath:
		return "info"
	case p == metricsPath:
		return "metrics"
	}
	return "other"
}

// metricsPath serves ServerOptions.Metrics.
const metricsPath = "/metrics"

// Info is what /v1/info answers: the store's capacity and objects, this
// server's version and its scrubber's report.
func (s *Server) Info(ctx context.Context) (remote.NodeInfo, error) {
	ni, err := s.store.Info(ctx)
	if err != nil {
		return ni, err
	}
	ni.Version = s.version
	if s.scrub != nil {
		ni.Scrub = s.scrub.report()
	}
	return ni, nil
}

// Serve answers requests on ln until ctx is cancelled, then shuts down
// gracefully: it stops accepting, lets requests in flight finish (bounded
// by ShutdownTimeout) and returns nil. Any other failure is returned. For
// TLS pass a tls.NewListener.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	hs := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	if s.scrub != nil {
		sctx, stop := context.WithCancel(ctx)
		defer stop()
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.scrub.run(sctx)
		}()
		defer wg.Wait() // after stop: the scrubber ends with the server
	}
	s.log.Info("node: serving", "addr", ln.Addr().String())
	select {
	case err := <-errc:
		return fmt.Errorf("node: serve on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	s.log.Info("node: shutting down, finishing requests in flight", "addr", ln.Addr().String())
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.shutdown)
	defer cancel()
	err := hs.Shutdown(sctx)
	<-errc // http.ErrServerClosed once Shutdown began
	if err != nil {
		_ = hs.Close()
		return fmt.Errorf("node: shutdown on %s: requests still running after %v: %w", ln.Addr(), s.shutdown, err)
	}
	return nil
}

// ListenAndServe listens on addr (host:port) and calls Serve.
func (s *Server) ListenAndServe(ctx context.Context, addr string) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("node: listen on %s: %w", addr, err)
	}
	return s.Serve(ctx, ln)
}

func (s *Server) authorized(r *http.Request) bool {
	if !s.hasToken {
		return true
	}
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return false
	}
	sum := sha256.Sum256([]byte(tok))
	return subtle.ConstantTimeCompare(sum[:], s.tokenSum[:]) == 1
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if !s.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="meshdrive-node"`)
		s.fail(w, r, http.StatusUnauthorized, codeUnauthorized, "missing or wrong access token (send Authorization: Bearer TOKEN with the node's token)")
		return
	}
	p := r.URL.Path
	switch {
	case strings.HasPrefix(p, objectPath):
		name := p[len(objectPath):]
		if err := remote.ValidName(name); err != nil {
			s.fail(w, r, http.StatusBadRequest, codeInvalidName, err.Error())
			return
		}
		switch r.Method {
		case http.MethodPut:
			s.put(w, r, name)
		case http.MethodGet, http.MethodHead:
			s.get(w, r, name)
		case http.MethodDelete:
			s.delete(w, r, name)
		default:
			w.Header().Set("Allow", "GET, HEAD, PUT, DELETE")
			s.fail(w, r, http.StatusMethodNotAllowed, codeMethod, "method "+r.Method+" not allowed on objects")
		}
	case p == listPath:
		if r.Method != http.MethodGet {
			w.Header().Set("Allow", "GET")
			s.fail(w, r, http.StatusMethodNotAllowed, codeMethod, "method "+r.Method+" not allowed on "+listPath)
			return
		}
		s.list(w, r)
	case strings.HasPrefix(p, verifyPath):
		name := p[len(verifyPath):]
		if err := remote.ValidName(name); err != nil {
			s.fail(w, r, http.StatusBadRequest, codeInvalidName, err.Error())
			return
		}
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", "POST")
			s.fail(w, r, http.StatusMethodNotAllowed, codeMethod, "method "+r.Method+" not allowed on "+verifyPath)
			return
		}
		s.verify(w, r, name)
	case p == metricsPath && s.metrics != nil && r.Method == http.MethodGet:
		s.metrics.ServeHTTP(w, r)
	case p == infoPath:
		if r.Method != http.MethodGet {
			w.Header().Set("Allow", "GET")
			s.fail(w, r, http.StatusMethodNotAllowed, codeMethod, "method "+r.Method+" not allowed on "+infoPath)
			return
		}
		s.info(w, r)
	default:
		s.fail(w, r, http.StatusNotFound, codeBadRequest, "no such endpoint "+strconv.Quote(p)+" (the API is /v1/o/NAME, /v1/verify/NAME, /v1/list, /v1/info)")
	}
}

// fail writes a JSON error body.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, status int, code, msg string) {
	level := slog.LevelDebug
	if status >= 500 {
		level = slog.LevelWarn
	}
	s.log.Log(r.Context(), level, "node: request failed", "method", r.Method, "path", r.URL.Path, "status", status, "err", msg)
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Del("Content-Length")
	w.WriteHeader(status)
	if r.Method == http.MethodHead {
		return
	}
	_ = json.NewEncoder(w).Encode(apiError{Code: code, Error: msg})
}

// storeFail answers the error of a store call.
func (s *Server) storeFail(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, remote.ErrInvalidName):
		s.fail(w, r, http.StatusBadRequest, codeInvalidName, err.Error())
	case errors.Is(err, remote.ErrNotFound):
		s.fail(w, r, http.StatusNotFound, codeNotFound, err.Error())
	case errors.Is(err, remote.ErrRange):
		s.fail(w, r, http.StatusRequestedRangeNotSatisfiable, codeRange, err.Error())
	case errors.Is(err, remote.ErrCorrupt):
		status := http.StatusConflict // a stored object failed its checksum
		if r.Method == http.MethodPut {
			status = http.StatusUnprocessableEntity // the upload itself is bad
		}
		s.fail(w, r, status, codeCorrupt, err.Error())
	case errors.Is(err, remote.ErrFull):
		s.fail(w, r, http.StatusInsufficientStorage, codeFull, err.Error())
	case errors.Is(err, remote.ErrUnauthorized):
		s.fail(w, r, http.StatusForbidden, codeUnauthorized, err.Error())
	case errors.Is(err, remote.ErrUnavailable):
		s.fail(w, r, http.StatusServiceUnavailable, codeInternal, err.Error())
	case r.Context().Err() != nil:
		s.log.Debug("node: client went away", "method", r.Method, "path", r.URL.Path, "err", err)
		s.fail(w, r, 499, codeInternal, "request cancelled: "+err.Error())
	default:
		s.fail(w, r, http.StatusInternalServerError, codeInternal, err.Error())
	}
}

// put reads the whole body and stores it; the store verifies it before
// anything is written. The object's fixed header comes first and says
// how long the object is: a body that is not an object, is longer than
// MaxObject or is not as long as its header says is refused before a
// buffer of its size is made, and the bytes of uploads in memory at once
// are bounded (UploadBudget).
func (s *Server) put(w http.ResponseWriter, r *http.Request, name string) {
	tooLarge := func(n int64) {
		s.fail(w, r, http.StatusRequestEntityTooLarge, codeTooLarge,
			fmt.Sprintf("object of %d bytes is larger than this node's limit of %d; raise it with meshdrive node serve --max-object", n, s.maxObject))
	}
	if r.ContentLength > s.maxObject {
		tooLarge(r.ContentLength)
		return
	}
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Now().Add(uploadGrace)) // not every ResponseWriter can
	var fixed [shard.FixedLen]byte
	n, err := io.ReadFull(r.Body, fixed[:])
	switch {
	case err == nil:
	case r.ContentLength >= 0 && int64(n) < r.ContentLength:
		s.fail(w, r, http.StatusBadRequest, codeBadRequest,
			fmt.Sprintf("truncated upload of %s: got %d of %d bytes (%v); nothing stored", name, n, r.ContentLength, err))
		return
	case !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF):
		s.fail(w, r, http.StatusBadRequest, codeBadRequest, fmt.Sprintf("reading upload of %s: %v; nothing stored", name, err))
		return
	default: // the whole body, shorter than a header
		s.fail(w, r, http.StatusUnprocessableEntity, codeCorrupt,
			fmt.Sprintf("refusing object %s of %d bytes: shorter than a shard header (%d bytes); nothing stored", name, n, shard.FixedLen))
		return
	}
	h, hlen, err := shard.ParseFixed(fixed[:])
	if err != nil {
		s.fail(w, r, http.StatusUnprocessableEntity, codeCorrupt, fmt.Sprintf("refusing object %s: %v; nothing stored", name, err))
		return
	}
	size := hlen + h.PayloadLen
	switch {
	case size > s.maxObject:
		tooLarge(size)
		return
	case r.ContentLength >= 0 && r.ContentLength != size:
		s.fail(w, r, http.StatusUnprocessableEntity, codeCorrupt,
			fmt.Sprintf("refusing object %s: %d bytes sent, its header says %d; nothing stored", name, r.ContentLength, size))
		return
	}
	if !s.admit(size) {
		w.Header().Set("Retry-After", "1")
		s.fail(w, r, http.StatusServiceUnavailable, codeBusy,
			fmt.Sprintf("this node is reading %d MiB of other uploads; try again in a moment", s.budget>>20))
		return
	}
	defer s.release(size)
	_ = rc.SetReadDeadline(time.Now().Add(uploadGrace + time.Duration(size/uploadMinRate)*time.Second))
	data := make([]byte, size)
	copy(data, fixed[:])
	got, err := io.ReadFull(r.Body, data[shard.FixedLen:])
	if err != nil {
		s.fail(w, r, http.StatusBadRequest, codeBadRequest,
			fmt.Sprintf("truncated upload of %s: got %d of %d bytes (%v); nothing stored", name, shard.FixedLen+got, size, err))
		return
	}
	if r.ContentLength < 0 {
		var one [1]byte
		if k, _ := io.ReadFull(r.Body, one[:]); k > 0 {
			s.fail(w, r, http.StatusUnprocessableEntity, codeCorrupt,
				fmt.Sprintf("refusing object %s: more bytes sent than its header says (%d); nothing stored", name, size))
			return
		}
	}
	if err := s.store.Put(r.Context(), name, data); err != nil {
		s.storeFail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusCreated)
	fmt.Fprintf(w, "stored %s (%d bytes)\n", name, len(data))
}

// admit takes n bytes of the upload budget; false when they do not fit
// beside the uploads being read (one upload always fits).
func (s *Server) admit(n int64) bool {
	s.upMu.Lock()
	defer s.upMu.Unlock()
	if s.upBytes > 0 && s.upBytes+n > s.budget {
		return false
	}
	s.upBytes += n
	return true
}

func (s *Server) release(n int64) {
	s.upMu.Lock()
	s.upBytes -= n
	s.upMu.Unlock()
}

// get answers GET and HEAD; GET reads are verified by the store before a
// byte is sent. A range larger than 2*streamPiece is streamed in pieces;
// if a later piece fails its checksum, or the object is replaced between
// pieces, the connection is cut, so the client sees a short body, never
// bad bytes or a mix of two versions.
func (s *Server) get(w http.ResponseWriter, r *http.Request, name string) {
	ctx := r.Context()
	// A store that can hold the object open (a dirstore) is read from
	// one version throughout; another is checked between pieces.
	var (
		oi     remote.ObjectInfo
		err    error
		read   = func(p []byte, off int64) error { return s.store.Get(ctx, name, off, p) }
		pinned bool
	)
	if op, ok := s.store.(remote.Opener); ok && r.Method == http.MethodGet {
		obj, oerr := op.Open(ctx, name)
		if oerr != nil {
			s.storeFail(w, r, oerr)
			return
		}
		defer obj.Close()
		oi, pinned = obj.Info(), true
		read = func(p []byte, off int64) error { return obj.ReadAt(ctx, p, off) }
	} else if oi, err = s.store.Stat(ctx, name); err != nil {
		s.storeFail(w, r, err)
		return
	}
	h := w.Header()
	h.Set("Accept-Ranges", "bytes")
	h.Set(mtimeHeader, oi.ModTime.UTC().Format(time.RFC3339Nano))
	h.Set("Last-Modified", oi.ModTime.UTC().Format(http.TimeFormat))
	h.Set("Content-Type", "application/octet-stream")
	off, n, status := int64(0), oi.Size, http.StatusOK
	if rh := r.Header.Get("Range"); rh != "" && r.Method == http.MethodGet {
		off, n, err = parseRange(rh, oi.Size)
		switch {
		case errors.Is(err, errUnsatisfiable):
			h.Set("Content-Range", fmt.Sprintf("bytes */%d", oi.Size))
			s.fail(w, r, http.StatusRequestedRangeNotSatisfiable, codeRange,
				fmt.Sprintf("range %q outside %s of %d bytes", rh, name, oi.Size))
			return
		case err != nil:
			s.fail(w, r, http.StatusBadRequest, codeBadRequest, fmt.Sprintf("%v: %q", err, rh))
			return
		}
		status = http.StatusPartialContent
		h.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", off, off+n-1, oi.Size))
	}
	if r.Method == http.MethodHead {
		h.Set("Content-Length", strconv.FormatInt(n, 10))
		w.WriteHeader(status)
		return
	}
	if n <= 2*streamPiece {
		buf := make([]byte, n)
		if err := read(buf, off); err != nil {
			h.Del("Content-Range")
			s.storeFail(w, r, err)
			return
		}
		h.Set("Content-Length", strconv.FormatInt(n, 10))
		w.WriteHeader(status)
		_, _ = w.Write(buf)
		return
	}
	bp := s.pieces.Get().(*[]byte)
	defer s.pieces.Put(bp)
	piece := *bp
	sent := int64(0)
	for sent < n {
		m := min(n-sent, int64(len(piece)))
		if err := read(piece[:m], off+sent); err != nil {
			if sent == 0 {
				h.Del("Content-Range")
				s.storeFail(w, r, err)
				return
			}
			s.log.Warn("node: aborting GET after a failed piece", "name", name, "sent", sent, "err", err)
			panic(http.ErrAbortHandler) // cuts the connection: the client sees a short body
		}
		// A store read by name piece by piece: an object replaced since
		// the Stat above (a Put of the name) must not be sent as a mix of
		// two versions. (Size and time: a replacement within the file
		// system's clock tick at the same size goes unseen; a dirstore is
		// pinned and needs no check.)
		if !pinned && s.replaced(ctx, name, oi) {
			if sent == 0 {
				h.Del("Content-Range")
				h.Set("Retry-After", "1")
				s.fail(w, r, http.StatusServiceUnavailable, codeBusy, fmt.Sprintf("%s was replaced while it was read; try again", name))
				return
			}
			s.log.Warn("node: aborting GET of an object replaced while it was sent", "name", name, "sent", sent)
			panic(http.ErrAbortHandler)
		}
		if sent == 0 {
			h.Set("Content-Length", strconv.FormatInt(n, 10))
			w.WriteHeader(status)
		}
		if _, err := w.Write(piece[:m]); err != nil {
			return // client went away
		}
		sent += m
	}
}

// replaced reports whether name no longer has the size and time oi
// gave, or cannot be looked at.
func (s *Server) replaced(ctx context.Context, name string, oi remote.ObjectInfo) bool {
	now, err := s.store.Stat(ctx, name)
	return err != nil || now.Size != oi.Size || !now.ModTime.Equal(oi.ModTime)
}

func (s *Server) delete(w http.ResponseWriter, r *http.Request, name string) {
	if err := s.store.Delete(r.Context(), name); err != nil {
		s.storeFail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) list(w http.ResponseWriter, r *http.Request) {
	prefix, after, limit, err := parseListQuery(r.URL.Query())
	if err != nil {
		s.fail(w, r, http.StatusBadRequest, codeBadRequest, err.Error())
		return
	}
	objs, err := s.store.List(r.Context(), prefix, after, limit)
	if err != nil {
		s.storeFail(w, r, err)
		return
	}
	if objs == nil {
		objs = []remote.ObjectInfo{}
	}
	writeJSON(w, listResult{Objects: objs})
}

func (s *Server) info(w http.ResponseWriter, r *http.Request) {
	ni, err := s.Info(r.Context())
	if err != nil {
		s.storeFail(w, r, err)
		return
	}
	writeJSON(w, ni)
}

// verify checks a stored object's checksums on this node: 204 when intact,
// 409 corrupt, 404 missing. The object's bytes are not sent.
func (s *Server) verify(w http.ResponseWriter, r *http.Request, name string) {
	v, ok := s.store.(remote.Verifier)
	var err error
	if ok {
		err = v.Verify(r.Context(), name)
	} else {
		err = remote.VerifyObject(r.Context(), s.store, name)
	}
	if err != nil {
		s.storeFail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func writeJSON(w http.ResponseWriter, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "encoding answer: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)+1))
	_, _ = w.Write(append(b, '\n'))
}
