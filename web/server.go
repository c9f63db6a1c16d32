package web

import (
	"context"
	"crypto/subtle"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

//go:embed static
var staticFS embed.FS

// DefaultMaxUpload is Options.MaxUpload's default.
const DefaultMaxUpload = 4 << 30

// Options configure Start.
type Options struct {
	// Addr is the address to listen on, like "127.0.0.1:0" (a free port).
	Addr string
	// Mountpoint is where the drive is mounted; files are served from it.
	Mountpoint string
	// Token is the access token every API request must carry (as
	// Authorization: Bearer, or a browser's session from LoginURL).
	Token string
	// MetricsToken, if set, is also accepted, on /metrics only.
	MetricsToken string
	// Drive answers what the mount cannot: states, queue, nodes,
	// snapshots, check.
	Drive Drive
	// MaxUpload bounds one upload (0: DefaultMaxUpload). Larger files go
	// through the mounted folder, which streams them into the journal.
	MaxUpload int64
	// UploadIdle ends an upload whose body makes no progress for this long
	// (408 stalled), so a stalled client does not hold a file of the mount
	// open for ever (0: DefaultUploadIdle). An upload that keeps sending
	// is never cut off.
	UploadIdle time.Duration
	// Metrics serves /metrics (behind the token); nil: 404.
	Metrics http.Handler
	Logger  *slog.Logger
}

// Server is the web app and API of one mounted drive.
type Server struct {
	o     Options
	log   *slog.Logger
	dev   uint64 // the mount's device: a root on another is not the drive
	ln    net.Listener
	srv   *http.Server
	hosts map[string]bool // Host values that name this server
	anyIP bool            // bound to a wildcard: any IP literal is us
	port  string
	done  chan struct{}

	closeOnce sync.Once
	closeErr  error

	check checkJob
	sess  *sessions

	started time.Time
	tmpMu   sync.Mutex      // guards tmps
	tmps    map[string]bool // hidden names uploads and restores are writing now
	ups     uploads         // the uploads in flight
}

// Start opens the mountpoint as a root, listens on o.Addr and serves until
// Close.
func Start(o Options) (*Server, error) {
	s, err := newServer(o)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", o.Addr)
	if err != nil {
		return nil, fmt.Errorf("web: cannot listen on %s: %w; choose another address with --web ADDR, or --web off", o.Addr, err)
	}
	s.ln = ln
	host, port, _ := net.SplitHostPort(ln.Addr().String())
	s.port = port
	for _, h := range []string{"127.0.0.1", "localhost", "[::1]"} {
		s.hosts[h+":"+port] = true
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		s.anyIP = true
	} else {
		s.hosts[ln.Addr().String()] = true
		s.hosts[net.JoinHostPort(strings.Trim(host, "[]"), port)] = true
	}
	s.addDefaultPortHosts()
	s.srv = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10,
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelDebug)}
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("web server stopped", "err", err)
		}
	}()
	return s, nil
}

// newServer is Start without the listener (fuzz tests call ServeHTTP).
func newServer(o Options) (*Server, error) {
	if o.Token == "" || o.Mountpoint == "" {
		return nil, errors.New("web: Token and Mountpoint are required")
	}
	var st syscall.Stat_t
	if err := syscall.Stat(o.Mountpoint, &st); err != nil {
		return nil, fmt.Errorf("web: cannot open the mount at %s: %w", o.Mountpoint, err)
	}
	if o.MaxUpload <= 0 {
		o.MaxUpload = DefaultMaxUpload
	}
	if o.UploadIdle <= 0 {
		o.UploadIdle = DefaultUploadIdle
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{o: o, log: log, dev: st.Dev, hosts: map[string]bool{}, done: make(chan struct{}), sess: newSessions(),
		started: time.Now(), tmps: map[string]bool{}, ups: uploads{idle: o.UploadIdle}}, nil
}

// Addr is the address the server listens on (host:port).
func (s *Server) Addr() string { return s.ln.Addr().String() }

// URL is the server's base URL, without the token.
func (s *Server) URL() string {
	host, _, _ := net.SplitHostPort(s.Addr())
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, s.port) + "/"
}

// LoginURL is the server's URL with a fresh single-use login code, valid
// for a minute: opening it gives the browser a session.
func (s *Server) LoginURL() string {
	return s.URL() + "login?code=" + s.sess.newCode()
}

// Close stops serving: uploads in flight are ended (EndUploads), other
// requests get 5 s, a running check is cancelled. It may be called more
// than once.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.EndUploads(5 * time.Second)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.closeErr = s.srv.Shutdown(ctx)
		<-s.done
		s.check.cancelRun()
	})
	return s.closeErr
}

// ServeHTTP checks Host, Origin and the token, then routes.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
	if !s.hostOK(r.Host) {
		writeError(w, http.StatusMisdirectedRequest, "bad_host",
			fmt.Sprintf("this server answers only to its own address (Host %q is not it); open the URL meshdrive web-url prints", r.Host))
		return
	}
	if !s.originOK(r) {
		writeError(w, http.StatusForbidden, "cross_origin",
			"cross-site request refused: only pages served by this drive may send it")
		return
	}
	p := r.URL.EscapedPath()
	switch {
	case p == "/login":
		s.login(w, r)
		return
	case p == "/" || strings.HasPrefix(p, "/static/") || p == "/favicon.ico":
		s.static(w, r, p)
		return
	}
	// The API and metrics answer only the page itself (same-origin) and
	// what no page sent (a typed address, a script: no header).
	if f := r.Header.Get("Sec-Fetch-Site"); f != "" && f != "same-origin" && f != "none" {
		writeError(w, http.StatusForbidden, "cross_origin",
			"request from another site or port refused: only pages served by this drive may call its API")
		return
	}
	if !s.authorized(r, p == "/metrics") {
		h.Set("WWW-Authenticate", `Bearer realm="meshdrive"`)
		writeError(w, http.StatusUnauthorized, "unauthorized",
			"missing or wrong access token: send Authorization: Bearer TOKEN (the token is in the data dir's web.token), or open the URL meshdrive web-url prints")
		return
	}
	switch {
	case p == "/metrics":
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			h.Set("Allow", "GET, HEAD")
			writeError(w, http.StatusMethodNotAllowed, "method", r.Method+" is not allowed on /metrics (only GET, HEAD); see docs/API.md")
			return
		}
		if s.o.Metrics == nil {
			writeError(w, http.StatusNotFound, "not_found", "metrics are not served by this mount")
			return
		}
		s.o.Metrics.ServeHTTP(w, r)
	case strings.HasPrefix(p, apiPrefix):
		s.api(w, r, strings.TrimPrefix(p, apiPrefix))
	default:
		writeError(w, http.StatusNotFound, "not_found", "no such page; the API is under "+apiPrefix)
	}
}

// addDefaultPortHosts: on port 80 browsers send Host without the port.
func (s *Server) addDefaultPortHosts() {
	if s.port != "80" {
		return
	}
	for h := range s.hosts {
		if n, _, err := net.SplitHostPort(h); err == nil {
			if strings.Contains(n, ":") {
				n = "[" + n + "]"
			}
			s.hosts[n] = true
		}
	}
}

// hostOK: Host names this server (DNS rebinding defence).
func (s *Server) hostOK(host string) bool {
	host = strings.ToLower(host)
	if s.hosts[host] {
		return true
	}
	if !s.anyIP {
		return false
	}
	h, port, err := net.SplitHostPort(host)
	if err != nil && s.port == "80" {
		h, port, err = strings.Trim(host, "[]"), "80", nil
	}
	return err == nil && port == s.port && (net.ParseIP(strings.Trim(h, "[]")) != nil || h == "localhost")
}

// originOK: a request that says where it comes from comes from us.
func (s *Server) originOK(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		// Browsers send Origin with every POST, PUT and DELETE; a
		// request without one comes from a script, which needs the
		// token anyway.
		return true
	}
	return o == "http://"+r.Host
}

// authorized: the request carries the token, a live session, or a
// ticket for this very address (a download the page started); on
// /metrics the metrics-only token too. Cookies are never looked at.
func (s *Server) authorized(r *http.Request, metrics bool) bool {
	a := r.Header.Get("Authorization")
	if scheme, cred, ok := strings.Cut(a, " "); ok {
		cred = strings.TrimSpace(cred)
		if cred == "" {
			return false
		}
		switch strings.ToLower(scheme) {
		case "bearer":
			if subtle.ConstantTimeCompare([]byte(cred), []byte(s.o.Token)) == 1 {
				return true
			}
			return metrics && s.o.MetricsToken != "" && subtle.ConstantTimeCompare([]byte(cred), []byte(s.o.MetricsToken)) == 1
		case "session":
			return !metrics && s.sess.valid(cred)
		}
		return false
	}
	if a != "" || (r.Method != http.MethodGet && r.Method != http.MethodHead) ||
		!strings.HasPrefix(r.URL.EscapedPath(), apiPrefix+"files/") {
		return false
	}
	ticket, target := ticketTarget(r.URL)
	return s.sess.ticketOK(ticket, target)
}

// ticketTarget splits u into its ticket and the address the ticket is
// for: the escaped path and the rest of the query, in a canonical order.
func ticketTarget(u *url.URL) (ticket, target string) {
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return "", ""
	}
	ticket = q.Get("ticket")
	q.Del("ticket")
	target = u.EscapedPath()
	if len(q) > 0 {
		target += "?" + q.Encode()
	}
	return ticket, target
}

// login: GET /login?code=CODE (LoginURL) sends the browser to the app with
// the code in the address's fragment, which no server sees; the page
// POSTs it back to /login and gets its session secret as JSON, which it
// keeps in localStorage. The code leaves the address bar either way.
func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet:
		code := r.URL.Query().Get("code")
		if !s.sess.known(code) {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprint(w, loginFailedPage)
			return
		}
		http.Redirect(w, r, "/#login="+url.QueryEscape(code), http.StatusSeeOther)
	case http.MethodPost:
		var req loginRequest
		if !s.readJSONBody(w, r) || !decodeBody(w, r, &req) {
			return
		}
		sec, ok := s.sess.redeem(req.Code)
		if !ok {
			writeError(w, http.StatusUnauthorized, "login_expired",
				"this login address was used already or is more than a minute old; run meshdrive web-url on this computer and open the address it prints")
			return
		}
		writeJSON(w, http.StatusOK, loginAnswer{Session: sec, Expires: s.sess.now().Add(sessionTTL).UTC()})
	default:
		w.Header().Set("Allow", "GET, POST")
		writeError(w, http.StatusMethodNotAllowed, "method", "only GET and POST here")
	}
}

// loginRequest is POST /login's body; loginAnswer its answer.
type loginRequest struct {
	Code string `json:"code"`
}
type loginAnswer struct {
	Session string    `json:"session"` // send as Authorization: Session SECRET
	Expires time.Time `json:"expires"`
}

const loginFailedPage = `<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>meshdrive</title>
<link rel="stylesheet" href="/static/style.css"></head><body class="center">
<div class="card narrow"><h1>This link has expired</h1>
<p>A login address works once, for a minute, and only until the drive is
mounted again. Run <code>meshdrive web-url</code> on this computer and open the
address it prints.</p></div></body></html>`

var (
	staticOnce sync.Once
	staticSub  fs.FS
)

// static serves the page and its assets (no token needed: they hold no
// data; the page asks the API, which does).
func (s *Server) static(w http.ResponseWriter, r *http.Request, p string) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeError(w, http.StatusMethodNotAllowed, "method", "only GET and HEAD here")
		return
	}
	staticOnce.Do(func() { staticSub, _ = fs.Sub(staticFS, "static") })
	name := strings.TrimPrefix(p, "/static/")
	if p == "/" {
		name = "index.html"
	}
	if p == "/favicon.ico" {
		name = "icon.svg"
	}
	b, err := fs.ReadFile(staticSub, name)
	if err != nil {
		writeError(w, http.StatusNotFound, "not_found", "no such page")
		return
	}
	switch {
	case strings.HasSuffix(name, ".html"):
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
	case strings.HasSuffix(name, ".css"):
		w.Header().Set("Content-Type", "text/css; charset=utf-8")
	case strings.HasSuffix(name, ".js"):
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
	case strings.HasSuffix(name, ".svg"):
		w.Header().Set("Content-Type", "image/svg+xml")
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	if r.Method == http.MethodGet {
		w.Write(b)
	}
}
