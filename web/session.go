package web

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"sync"
	"time"
)

// Browsers log in with a single-use code (LoginURL, asked for over the
// mount's control socket by meshdrive web-url) and get a session: a random
// secret kept only in this process's memory, which the page keeps in its
// origin's localStorage and sends as "Authorization: Session SECRET".
// Neither the token nor the session ever goes into a cookie: cookies are
// not port-scoped, so a cookie on 127.0.0.1 reaches every local server,
// and any of them could use it from then on. A link the browser follows
// by itself (a download) carries a ticket instead: for that one address,
// GET and HEAD only, for ticketTTL (a download the browser resumes asks
// again, with a Range).
const (
	codeTTL     = 60 * time.Second
	sessionTTL  = 7 * 24 * time.Hour
	ticketTTL   = 10 * time.Minute
	maxCodes    = 16  // unused login codes kept at once
	maxSessions = 256 // live sessions kept at once
	maxTickets  = 256 // download tickets kept at once (the page asks for one per link pointed at)
)

// sessions holds login codes and session secrets, by their SHA-256 (a map
// lookup on the hash leaks no timing about the secret).
type sessions struct {
	mu      sync.Mutex             // guards the three below
	codes   map[[32]byte]time.Time // single-use code → expiry
	live    map[[32]byte]time.Time // session secret → expiry
	tickets map[[32]byte]time.Time // sha256(ticket, NUL, address) → expiry
	now     func() time.Time       // time.Now; tests replace it
}

func newSessions() *sessions {
	return &sessions{codes: map[[32]byte]time.Time{}, live: map[[32]byte]time.Time{},
		tickets: map[[32]byte]time.Time{}, now: time.Now}
}

func randomSecret() string {
	var b [32]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// add keeps key until ttl, dropping expired ones and, when m holds max,
// the one that expires first.
func (ss *sessions) add(m map[[32]byte]time.Time, secret string, ttl time.Duration, max int) {
	now := ss.now()
	for k, exp := range m {
		if !now.Before(exp) {
			delete(m, k)
		}
	}
	for len(m) >= max {
		var first [32]byte
		var at time.Time
		for k, exp := range m {
			if at.IsZero() || exp.Before(at) {
				first, at = k, exp
			}
		}
		delete(m, first)
	}
	m[sha256.Sum256([]byte(secret))] = now.Add(ttl)
}

// newCode is a fresh single-use login code, valid for codeTTL.
func (ss *sessions) newCode() string {
	c := randomSecret()
	ss.mu.Lock()
	defer ss.mu.Unlock()
	ss.add(ss.codes, c, codeTTL, maxCodes)
	return c
}

// known: code is a login code that has not expired or been used (it is
// not used up: the page redeems it).
func (ss *sessions) known(code string) bool { return ss.liveIn(ss.codes, code) }

// redeem uses up code and, if it was valid, returns a new session secret.
func (ss *sessions) redeem(code string) (string, bool) {
	if code == "" {
		return "", false
	}
	k := sha256.Sum256([]byte(code))
	ss.mu.Lock()
	defer ss.mu.Unlock()
	exp, ok := ss.codes[k]
	delete(ss.codes, k)
	if !ok || !ss.now().Before(exp) {
		return "", false
	}
	sec := randomSecret()
	ss.add(ss.live, sec, sessionTTL, maxSessions)
	return sec, true
}

// valid: secret is a live session.
func (ss *sessions) valid(secret string) bool { return ss.liveIn(ss.live, secret) }

// liveIn: key is in m (by its SHA-256) and has not expired; an expired one
// is dropped.
func (ss *sessions) liveIn(m map[[32]byte]time.Time, key string) bool {
	if key == "" {
		return false
	}
	k := sha256.Sum256([]byte(key))
	ss.mu.Lock()
	defer ss.mu.Unlock()
	exp, ok := m[k]
	if ok && !ss.now().Before(exp) {
		delete(m, k)
		ok = false
	}
	return ok
}

// ticketKey binds a ticket to the one address it opens.
func ticketKey(ticket, target string) string { return ticket + "\x00" + target }

// newTicket is a ticket for GETs of target (a path and its query, without
// the ticket), valid for ticketTTL.
func (ss *sessions) newTicket(target string) string {
	t := randomSecret()
	ss.mu.Lock()
	defer ss.mu.Unlock()
	ss.add(ss.tickets, ticketKey(t, target), ticketTTL, maxTickets)
	return t
}

// ticketOK: ticket was made for target and has not expired.
func (ss *sessions) ticketOK(ticket, target string) bool {
	return ticket != "" && ss.liveIn(ss.tickets, ticketKey(ticket, target))
}
