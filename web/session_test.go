package web

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// serveBody is serve with a request body.
func serveBody(s *Server, method, target, body string, hdr map[string]string) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	r := httptest.NewRequest(method, "http://"+fuzzHost+target, strings.NewReader(body))
	r.Host = fuzzHost
	r.Header.Set("Authorization", "Bearer "+fuzzToken)
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	s.ServeHTTP(w, r)
	return w
}

// login redeems a fresh code as the page does and returns the session.
func login(t *testing.T, s *Server) string {
	t.Helper()
	code := s.sess.newCode()
	w := serve(s, "GET", "/login?code="+code, map[string]string{"Authorization": ""})
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/#login="+code || len(w.Result().Cookies()) != 0 {
		t.Fatalf("GET /login: %d %v", w.Code, w.Header())
	}
	w = serveBody(s, "POST", "/login", `{"code":"`+code+`"}`, map[string]string{"Authorization": "", "Origin": "http://" + fuzzHost})
	var a loginAnswer
	if w.Code != 200 || json.Unmarshal(w.Body.Bytes(), &a) != nil || a.Session == "" || len(w.Result().Cookies()) != 0 {
		t.Fatalf("POST /login: %d %q, cookies %v", w.Code, w.Body, w.Result().Cookies())
	}
	return a.Session
}

// TestLoginSession: a login code works once and gives a session secret,
// never a cookie, that opens the API as "Authorization: Session"; no
// cookie opens anything; an expired code does not work.
func TestLoginSession(t *testing.T) {
	s, _ := folderServer(t)
	sec := login(t, s)
	if strings.Contains(sec, fuzzToken) {
		t.Fatalf("the session holds the token")
	}
	if w := serve(s, "GET", "/api/v1/list/in", map[string]string{"Authorization": "Session " + sec}); w.Code != 200 {
		t.Errorf("list with the session: %d %q", w.Code, w.Body)
	}
	for _, bad := range []map[string]string{
		{"Authorization": "", "Cookie": "meshdrive_8080=" + sec}, // what the session once was
		{"Authorization": "", "Cookie": "meshdrive_token=" + fuzzToken},
		{"Authorization": "Session " + fuzzToken},
		{"Authorization": "Session wrong"},
		{"Authorization": "Session "},
		{"Authorization": "Bearer " + sec},
		{"Authorization": "Basic " + sec},
	} {
		if w := serve(s, "GET", "/api/v1/list/in", bad); w.Code != 401 {
			t.Errorf("list with %v: %d; want 401", bad, w.Code)
		}
	}
	if w := serve(s, "GET", "/metrics", map[string]string{"Authorization": "Session " + sec}); w.Code != 401 {
		t.Errorf("/metrics with a session: %d; want 401 (metrics are for scripts)", w.Code)
	}
	// A code works once; the token is not a code.
	code := s.sess.newCode()
	if w := serveBody(s, "POST", "/login", `{"code":"`+code+`"}`, nil); w.Code != 200 {
		t.Fatalf("POST /login: %d", w.Code)
	}
	for _, q := range []string{"code=" + code, "code=", "token=" + fuzzToken, "code=" + fuzzToken} {
		if w := serve(s, "GET", "/login?"+q, nil); w.Code != 401 || len(w.Result().Cookies()) != 0 {
			t.Errorf("GET login?%s: %d, cookies %v; want 401 and none", q, w.Code, w.Result().Cookies())
		}
	}
	for _, body := range []string{`{"code":"` + code + `"}`, `{"code":""}`, `{"code":"` + fuzzToken + `"}`} {
		if w := serveBody(s, "POST", "/login", body, nil); w.Code != 401 || strings.Contains(w.Body.String(), "session\"") {
			t.Errorf("POST login %s: %d %q; want 401", body, w.Code, w.Body)
		}
	}
	for _, body := range []string{`{"code":`, `{"code":"x"} {"code":"y"}`, `{"code":"x","token":"y"}`} {
		if w := serveBody(s, "POST", "/login", body, nil); w.Code != 400 {
			t.Errorf("POST login %s: %d; want 400", body, w.Code)
		}
	}
	if w := serveBody(s, "POST", "/login", `{"code":"`+strings.Repeat("a", maxJSONBody)+`"}`, nil); w.Code != 413 {
		t.Errorf("POST login with a huge body: %d; want 413", w.Code)
	}
	// Codes expire after a minute; sessions after sessionTTL.
	now := time.Now()
	s.sess.now = func() time.Time { return now }
	old := s.sess.newCode()
	s.sess.now = func() time.Time { return now.Add(codeTTL) }
	if s.sess.known(old) {
		t.Errorf("a code a minute old is still known")
	}
	if _, ok := s.sess.redeem(old); ok {
		t.Errorf("a code a minute old still logs in")
	}
	s.sess.now = func() time.Time { return now.Add(sessionTTL + time.Hour) }
	if s.sess.valid(sec) {
		t.Errorf("a session past its lifetime is still valid")
	}
}

// TestDownloadTicket: a ticket opens the one download it was made for,
// with no header, until it expires: a HEAD, a GET, a resumed GET (Range);
// nothing else.
func TestDownloadTicket(t *testing.T) {
	s, _ := folderServer(t)
	sec := login(t, s)
	auth := map[string]string{"Authorization": "Session " + sec}
	ticket := func(u string) string {
		t.Helper()
		w := serveBody(s, "POST", "/api/v1/ticket", `{"url":"`+u+`"}`, auth)
		var a ticketAnswer
		if w.Code != 200 || json.Unmarshal(w.Body.Bytes(), &a) != nil {
			t.Fatalf("ticket for %s: %d %q", u, w.Code, w.Body)
		}
		return a.URL
	}
	none := map[string]string{"Authorization": ""}
	tu := ticket("/api/v1/files/in/file.txt")
	if !strings.HasPrefix(tu, "/api/v1/files/in/file.txt?ticket=") {
		t.Fatalf("ticket address %q", tu)
	}
	if w := serve(s, "HEAD", tu, none); w.Code != 200 {
		t.Fatalf("HEAD with its ticket: %d", w.Code)
	}
	if w := serve(s, "GET", tu, none); w.Code != 200 || w.Body.String() != fileContent {
		t.Fatalf("download with its ticket: %d %q", w.Code, w.Body)
	}
	if w := serve(s, "GET", tu, map[string]string{"Authorization": "", "Range": "bytes=4-"}); w.Code != 206 || w.Body.String() != fileContent[4:] {
		t.Errorf("the download resumed with its ticket: %d %q; want 206", w.Code, w.Body)
	}
	// Bound to its address: another file, another snapshot, another
	// endpoint, another method.
	tu = ticket("/api/v1/files/in/file.txt?snapshot=a")
	tick := tu[strings.Index(tu, "ticket="):]
	for _, c := range [][2]string{
		{"GET", "/api/v1/files/in/ok?" + tick},
		{"GET", "/api/v1/files/in/file.txt?" + tick},
		{"GET", "/api/v1/files/in/file.txt?snapshot=b&" + tick},
		{"GET", "/api/v1/list/in?snapshot=a&" + tick},
		{"DELETE", "/api/v1/files/in/file.txt?snapshot=a&" + tick},
		{"PUT", "/api/v1/files/in/file.txt?snapshot=a&" + tick},
	} {
		if w := serve(s, c[0], c[1], none); w.Code != 401 {
			t.Errorf("%s %s: %d; want 401", c[0], c[1], w.Code)
		}
	}
	if b, err := os.ReadFile(filepath.Join(s.o.Mountpoint, "in/file.txt")); err != nil || string(b) != fileContent {
		t.Fatalf("file.txt after the refused requests: %q %v", b, err)
	}
	// The same query in another order is the same address.
	if w := serve(s, "GET", "/api/v1/files/in/file.txt?"+tick+"&snapshot=a", none); w.Code == 401 {
		t.Errorf("the ticket's own address, query reordered: 401")
	}
	// Past ticketTTL it is gone.
	tu = ticket("/api/v1/files/in/file.txt")
	now := time.Now()
	s.sess.now = func() time.Time { return now.Add(ticketTTL) }
	if w := serve(s, "GET", tu, none); w.Code != 401 {
		t.Errorf("a ticket a minute old: %d; want 401", w.Code)
	}
	s.sess.now = time.Now
	// Tickets are only for downloads, and need a session or the token.
	for _, u := range []string{"/api/v1/list/in", "/api/v1/status", "http://evil.example/api/v1/files/x", "//evil.example/api/v1/files/x",
		"/api/v1/files/x?ticket=y", "/metrics", "/api/v1/files/x#f", "/api/v1/files/x?a;b", "/api/v1/files/x?%zz",
		"/api/v1/files/../list/in", "/api/v1/files/a%2Fb", "/api/v1/files/.snapshots/s/x"} {
		if w := serveBody(s, "POST", "/api/v1/ticket", `{"url":"`+u+`"}`, auth); w.Code != 400 {
			t.Errorf("ticket for %s: %d; want 400", u, w.Code)
		}
	}
	if w := serveBody(s, "POST", "/api/v1/ticket", `{"url":"/api/v1/files/in/file.txt"}`, none); w.Code != 401 {
		t.Errorf("ticket without a session: %d; want 401", w.Code)
	}
	for range 2 * maxTickets {
		ticket("/api/v1/files/in/file.txt")
	}
	if n := len(s.sess.tickets); n > maxTickets {
		t.Errorf("%d tickets kept; bound %d", n, maxTickets)
	}
}

// TestSessionsBounded: a flood of codes and sessions keeps at most the
// bound, the newest.
func TestSessionsBounded(t *testing.T) {
	ss := newSessions()
	var last string
	for range 3 * maxSessions {
		sec, ok := ss.redeem(ss.newCode())
		if !ok {
			t.Fatal("a fresh code did not log in")
		}
		last = sec
	}
	for range 3 * maxCodes {
		ss.newCode()
	}
	if len(ss.live) > maxSessions || len(ss.codes) > maxCodes || !ss.valid(last) {
		t.Errorf("%d sessions, %d codes kept (bounds %d, %d); newest valid %v", len(ss.live), len(ss.codes), maxSessions, maxCodes, ss.valid(last))
	}
}

// TestMetricsToken: the metrics-only token opens /metrics and nothing else.
func TestMetricsToken(t *testing.T) {
	s, _ := folderServer(t)
	const mt = "metrics-only-token-0123456789abcdef"
	s.o.MetricsToken = mt
	s.o.Metrics = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("m 1\n")) })
	bearer := map[string]string{"Authorization": "Bearer " + mt}
	if w := serve(s, "GET", "/metrics", bearer); w.Code != 200 {
		t.Errorf("/metrics with the metrics token: %d %q", w.Code, w.Body)
	}
	if w := serve(s, "GET", "/metrics", nil); w.Code != 200 {
		t.Errorf("/metrics with the access token: %d %q", w.Code, w.Body)
	}
	for _, p := range []string{"/api/v1/list/in", "/api/v1/status", "/api/v1/files/in/file.txt"} {
		if w := serve(s, "GET", p, bearer); w.Code != 401 {
			t.Errorf("%s with the metrics token: %d; want 401", p, w.Code)
		}
	}
}

// TestHostPort80: on port 80 browsers send Host without the port.
func TestHostPort80(t *testing.T) {
	for _, anyIP := range []bool{false, true} {
		s, _ := folderServer(t)
		s.port, s.anyIP = "80", anyIP
		s.hosts = map[string]bool{"127.0.0.1:80": true, "localhost:80": true, "[::1]:80": true}
		s.addDefaultPortHosts()
		for _, h := range []string{"127.0.0.1", "localhost", "[::1]", "127.0.0.1:80", "LOCALHOST"} {
			if !s.hostOK(h) {
				t.Errorf("anyIP %v: Host %q refused on port 80", anyIP, h)
			}
		}
		for _, h := range []string{"evil.example", "evil.example:80", "127.0.0.1:81"} {
			if s.hostOK(h) {
				t.Errorf("anyIP %v: Host %q accepted", anyIP, h)
			}
		}
	}
	s, _ := folderServer(t)
	if s.hostOK("127.0.0.1") {
		t.Errorf("Host without a port accepted on port 8080")
	}
}

// TestServerLimits: a slow or idle client cannot hold a connection open
// for ever, nor send endless headers.
func TestServerLimits(t *testing.T) {
	s, err := Start(Options{Addr: "127.0.0.1:0", Mountpoint: t.TempDir(), Token: fuzzToken, Drive: noDrive{}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.srv.ReadHeaderTimeout != 10*time.Second || s.srv.IdleTimeout != 2*time.Minute || s.srv.MaxHeaderBytes != 64<<10 {
		t.Errorf("http.Server: ReadHeaderTimeout %v, IdleTimeout %v, MaxHeaderBytes %d", s.srv.ReadHeaderTimeout, s.srv.IdleTimeout, s.srv.MaxHeaderBytes)
	}
	if u := s.LoginURL(); !strings.HasPrefix(u, s.URL()+"login?code=") || strings.Contains(u, fuzzToken) {
		t.Errorf("LoginURL %q", u)
	}
}
