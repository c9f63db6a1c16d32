package journal

import (
	"context"
	"sync"
)

// lookAheadN is how many entries one look-ahead query reads.
const lookAheadN = 128

// lookAheadGap is how far past the last entry's cookie the next may be
// and still count as a scan (cookies count entries made anywhere, so a
// directory's entries are apart by those made in others meanwhile), and
// lookAheadRun how many such steps in a row start one: lookups in
// random order start none.
const (
	lookAheadGap = 64
	lookAheadRun = 2
)

// lookAhead serves the lookups of a program that stats a directory's
// entries in the order they were made, which is readdir's order (ls -l,
// a file manager, find, a copy): after lookups of entries made shortly
// after one another (each cookie at most lookAheadGap past the one
// before) in one directory, the next lookAheadN entries come in one
// query, and the lookups that follow are answered from them while no
// transaction has committed since (commitGen), so they are never staler
// than a query. Like a disk file system reading a whole inode table
// block for one inode, it is filled by the lookups themselves, never
// ahead of them; it holds one directory's window.
type lookAhead struct {
	mu      sync.Mutex
	parent  Ino
	last    int64  // cookie of the last entry looked up in parent (0: none)
	run     int    // lookups in a row each at most lookAheadGap past the one before
	gen     uint64 // commitGen when entries were read
	entries map[string]laEntry
	hits    int64 // lookups answered from a window (tests)
	fills   int64 // windows read (tests)

	// tabParent's table (dirTable), valid at tabGen. misses counts the
	// lookups in missParent in a row that went to the database, rows
	// what the last reads of directories' tables found (bounded).
	tab        *dirTable
	tabParent  Ino
	tabGen     uint64
	missParent Ino
	misses     int
	rows       map[Ino]int
	filling    bool // a read of a table is under way
}

type laEntry struct {
	a      Attr
	cookie int64
}

// get answers a lookup from the window read at gen, if it can.
func (l *lookAhead) get(parent Ino, name string, gen uint64) (Attr, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e, ok := l.entries[name]
	if l.parent != parent || l.gen != gen || !ok {
		if l.tabGen < gen {
			l.tab = nil // stale: a commit not carried (txLocked calls no carry for scopeAll)
		}
		if l.tabParent == parent && l.tabGen == gen {
			return l.tab.get(name)
		}
		return Attr{}, false
	}
	delete(l.entries, name) // each name is looked up once in a scan
	l.step(e.cookie)
	l.hits++
	return e.a, true
}

// seen records a lookup that went to the database and reports whether it
// continues a scan of parent in cookie order (read a window), or else
// whether to read parent's table (tableWanted).
func (l *lookAhead) seen(parent Ino, cookie int64) (window, table bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.parent != parent {
		l.parent, l.last, l.run, l.entries = parent, 0, 0, nil
	}
	l.step(cookie)
	if l.run >= lookAheadRun {
		return true, false
	}
	return false, l.tableWanted(parent)
}

// step moves the scan to cookie. l.mu held.
func (l *lookAhead) step(cookie int64) {
	if l.last != 0 && cookie > l.last && cookie-l.last <= lookAheadGap {
		l.run++
	} else {
		l.run = 0
	}
	l.last = cookie
}

func (l *lookAhead) set(parent Ino, gen uint64, entries map[string]laEntry) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.parent != parent {
		return // another directory's scan took over meanwhile
	}
	l.gen, l.entries = gen, entries
	l.fills++
}

// fillLookAhead reads the entries of parent after cookie as they were at
// gen. A failure only leaves the window empty.
func (j *namespace) fillLookAhead(ctx context.Context, parent Ino, cookie int64, gen uint64) {
	st, release := j.reader(j.st.lookAhead, j.wst.lookAhead)
	defer release()
	rows, err := st.QueryContext(ctx, parent, cookie, lookAheadN)
	if err != nil {
		return
	}
	defer rows.Close()
	m := make(map[string]laEntry, lookAheadN)
	for rows.Next() {
		var name string
		var e laEntry
		if e.a, err = scanAttr(rowScanner{rows, &name, &e.cookie}); err != nil {
			return
		}
		m[name] = e
	}
	if rows.Err() != nil {
		return
	}
	j.la.set(parent, gen, m)
}

// rowScanner scans two leading columns and then the attribute columns.
type rowScanner struct {
	s      scanner
	name   *string
	cookie *int64
}

func (r rowScanner) Scan(dest ...any) error {
	lead := []any{r.cookie}
	if r.name != nil {
		lead = []any{r.name, r.cookie}
	}
	return r.s.Scan(append(lead, dest...)...)
}

// attrCache holds inode rows read or written since the last commit: the
// replies of a create (the new inode and its parent, whose row the
// create's UPDATE returns), and what GetAttr read. Valid while commitGen
// is what it was then, like lookAhead; in-memory attributes are laid
// over on the way out. It spares the queries of the kernel's GETATTR of
// a directory after each create in it, and of the SetAttr replies of a
// file whose attributes wait for its flush.
type attrCache struct {
	mu  sync.Mutex
	gen uint64
	m   map[Ino]Attr
}

// attrCacheMax bounds the inodes kept for one generation.
const attrCacheMax = 1024

func (c *attrCache) get(ino Ino, gen uint64) (Attr, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != gen {
		return Attr{}, false
	}
	a, ok := c.m[ino]
	return a, ok
}

// put records a as ino's row at gen (read with no commit after gen).
func (c *attrCache) put(ino Ino, a Attr, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen < c.gen {
		return
	}
	if gen > c.gen || c.m == nil || len(c.m) >= attrCacheMax {
		c.gen, c.m = gen, make(map[Ino]Attr)
	}
	c.m[ino] = a
}

// carry keeps the cache across the commit that moved commitGen from old
// to gen, which changed no inode row but those of inos (none: scopeNone).
func (c *attrCache) carry(old, gen uint64, inos ...Ino) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != old {
		return
	}
	c.gen = gen
	for _, ino := range inos {
		delete(c.m, ino)
	}
}

// carry is attrCache.carry for the window: it drops the entries that
// name one of inos (an entry the commit removed names its inode). The
// table is carried only across a commit that changes no inode row
// (scopeNone): finding inos in it would cost a scan of it per commit.
func (l *lookAhead) carry(old, gen uint64, inos ...Ino) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.tabGen == old && len(inos) == 1 && inos[0] == scopeNone {
		l.tabGen = gen
	} else {
		l.tab = nil
	}
	if l.gen != old {
		return
	}
	l.gen = gen
	for name, e := range l.entries {
		for _, ino := range inos {
			if e.a.Ino == ino {
				delete(l.entries, name)
				break
			}
		}
	}
}
