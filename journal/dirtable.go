package journal

import (
	"bytes"
	"context"
	"slices"
	"sort"
	"time"
)

// A dirTable holds a whole directory, read in one sequential scan, for
// lookups in an order no look-ahead window serves (stat of every entry
// in random order): answered by a binary search instead of one query
// each. Compact: names in one []byte, attributes packed (about 80 bytes
// an entry besides the name), bounded by dirTableMaxEntries and
// dirTableMaxBytes. It lives inside lookAhead, under its mutex, and is
// valid like the window: while commitGen is what it was when read, and
// across a commit that changes no inode row (scopeNone); any other
// commit drops it (lookAhead.carry), so it never answers with an entry
// unlinked or renamed, or attributes from before a change. It answers
// only names it holds: a name it lacks goes to the database.
type dirTable struct {
	names []byte   // the names back to back, in the order read
	off   []uint32 // names[off[i]:off[i+1]] is entry i's name
	attrs []packedAttr
	order []uint32 // entries by name
}

// packedAttr is Attr without time.Time's 24 bytes a time.
type packedAttr struct {
	ino, size, blocks     uint64
	atime, mtime, ctime   int64
	mode, nlink, uid, gid uint32
	rdev                  uint32
}

func packAttr(a Attr) packedAttr {
	return packedAttr{ino: uint64(a.Ino), size: a.Size, blocks: a.Blocks,
		atime: a.Atime.UnixNano(), mtime: a.Mtime.UnixNano(), ctime: a.Ctime.UnixNano(),
		mode: a.Mode, nlink: a.Nlink, uid: a.Uid, gid: a.Gid, rdev: a.Rdev}
}

func (p packedAttr) attr() Attr {
	return Attr{Ino: Ino(p.ino), Mode: p.mode, Nlink: p.nlink, Uid: p.uid, Gid: p.gid, Rdev: p.rdev,
		Size: p.size, Blocks: p.blocks,
		Atime: time.Unix(0, p.atime), Mtime: time.Unix(0, p.mtime), Ctime: time.Unix(0, p.ctime)}
}

// Bounds of a table: a directory with more entries, or longer names,
// is not held (its lookups keep going to the database).
const (
	dirTableMaxEntries = 1 << 17
	dirTableMaxBytes   = 4 << 20 // names
)

// A directory's table is read after dirTableMinMisses lookups in it that
// the window did not answer, and again (after a commit dropped it) only
// once the lookups since the last read would have cost about as much as
// reading it: a row of the scan costs about a tenth of a lookup
// (dirTableRowCost; 100,000 rows in 0.4 s of CPU against 40-70 µs a
// lookup), so a directory whose table commits keep dropping is read at
// most once per rows/dirTableRowCost lookups.
const (
	dirTableMinMisses = 64
	dirTableRowCost   = 10
)

// key is entry i's name; compared as string(key), it is not copied.
func (t *dirTable) key(i uint32) []byte { return t.names[t.off[i]:t.off[i+1]] }

func (t *dirTable) find(name string) (uint32, bool) {
	n := len(t.order)
	k := sort.Search(n, func(k int) bool { return string(t.key(t.order[k])) >= name })
	if k < n && string(t.key(t.order[k])) == name {
		return t.order[k], true
	}
	return 0, false
}

// get answers a lookup of name from the table. l.mu held.
func (t *dirTable) get(name string) (Attr, bool) {
	if t == nil {
		return Attr{}, false
	}
	i, ok := t.find(name)
	if !ok {
		return Attr{}, false
	}
	return t.attrs[i].attr(), true
}

// tableWanted records a lookup in parent that neither the window nor
// the table answered and reports whether to read parent's table now.
// l.mu held.
func (l *lookAhead) tableWanted(parent Ino) bool {
	if l.missParent != parent {
		l.missParent, l.misses = parent, 0
	}
	l.misses++
	if l.filling || l.misses < dirTableMinMisses || l.misses < l.rows[parent]/dirTableRowCost {
		return false
	}
	l.filling = true
	return true
}

// dirTableHistory bounds the directories whose last table's rows are
// remembered.
const dirTableHistory = 256

// setTable ends a read of parent's table started by tableWanted: t read
// at gen (nil when the read failed or the directory was too big), rows
// the rows it read.
func (l *lookAhead) setTable(parent Ino, gen uint64, t *dirTable, rows int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.filling = false
	if l.missParent == parent {
		l.misses = 0
	}
	if l.rows == nil || len(l.rows) >= dirTableHistory {
		l.rows = make(map[Ino]int)
	}
	l.rows[parent] = rows
	if t == nil {
		return
	}
	l.tab, l.tabParent, l.tabGen = t, parent, gen
}

// fillTable reads parent's table as it is at gen (or later: a commit in
// between leaves it at an old gen, unused).
func (j *namespace) fillTable(ctx context.Context, parent Ino, gen uint64) {
	var t *dirTable
	rows := 0
	defer func() { j.la.setTable(parent, gen, t, rows) }()
	st, release := j.reader(j.st.lookAhead, j.wst.lookAhead)
	defer release()
	res, err := st.QueryContext(ctx, parent, 0, dirTableMaxEntries+1)
	if err != nil {
		return
	}
	defer res.Close()
	nt := &dirTable{off: []uint32{0}}
	for res.Next() {
		var name string
		var cookie int64
		a, err := scanAttr(rowScanner{res, &name, &cookie})
		if err != nil {
			return
		}
		rows++
		if rows > dirTableMaxEntries || len(nt.names)+len(name) > dirTableMaxBytes {
			rows = dirTableMaxEntries // too big: wait long before trying again
			return
		}
		nt.names = append(nt.names, name...)
		nt.off = append(nt.off, uint32(len(nt.names)))
		nt.attrs = append(nt.attrs, packAttr(a))
	}
	if res.Err() != nil {
		return
	}
	nt.order = make([]uint32, len(nt.attrs))
	for i := range nt.order {
		nt.order[i] = uint32(i)
	}
	slices.SortFunc(nt.order, func(a, b uint32) int { return bytes.Compare(nt.key(a), nt.key(b)) })
	nt.names = slices.Clone(nt.names)
	nt.off = slices.Clone(nt.off)
	nt.attrs = slices.Clone(nt.attrs)
	t = nt
}
