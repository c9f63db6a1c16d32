package web

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestLoginSession: a login code works once, gives a cookie that holds no
// token, named after the port, that opens the API; an expired code does
// not work.
func TestLoginSession(t *testing.T) {
	s, _ := folderServer(t)
	code := s.sess.newCode()
	w := serve(s, "GET", "/login?code="+code, map[string]string{"Authorization": ""})
	ck := w.Result().Cookies()
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/" || len(ck) != 1 {
		t.Fatalf("login: %d %v, cookies %v", w.Code, w.Header(), ck)
	}
	c := ck[0]
	if c.Name != "meshdrive_8080" || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Value == "" ||
		strings.Contains(c.Value, fuzzToken) {
		t.Fatalf("session cookie %+v", c)
	}
	if w := serve(s, "GET", "/api/v1/list/in", map[string]string{"Authorization": "", "Cookie": c.Name + "=" + c.Value}); w.Code != 200 {
		t.Errorf("list with the session cookie: %d %q", w.Code, w.Body)
	}
	for _, bad := range []string{"meshdrive_8080=" + fuzzToken, "meshdrive_8080=wrong", "meshdrive_9090=" + c.Value, "meshdrive_token=" + fuzzToken} {
		if w := serve(s, "GET", "/api/v1/list/in", map[string]string{"Authorization": "", "Cookie": bad}); w.Code != 401 {
			t.Errorf("list with cookie %s: %d; want 401", bad, w.Code)
		}
	}
	// A code works once; the token is not a code.
	for _, q := range []string{"code=" + code, "code=", "token=" + fuzzToken, "code=" + fuzzToken} {
		if w := serve(s, "GET", "/login?"+q, nil); w.Code != 401 || len(w.Result().Cookies()) != 0 {
			t.Errorf("login?%s: %d, cookies %v; want 401 and none", q, w.Code, w.Result().Cookies())
		}
	}
	// Codes expire after a minute; sessions after sessionTTL.
	now := time.Now()
	s.sess.now = func() time.Time { return now }
	old := s.sess.newCode()
	s.sess.now = func() time.Time { return now.Add(codeTTL) }
	if _, ok := s.sess.redeem(old); ok {
		t.Errorf("a code a minute old still logs in")
	}
	s.sess.now = func() time.Time { return now.Add(sessionTTL + time.Hour) }
	if s.sess.valid(c.Value) {
		t.Errorf("a session past its lifetime is still valid")
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
