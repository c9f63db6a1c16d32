package journal

import (
	"hash/maphash"
	"sync"
)

// nameSets answers the lookups of names that are not there (every create
// starts with one: the kernel looks the new name up first) without a
// query, in directories made during this mount: a directory is known
// empty when its mkdir commits, and from then on every commit that adds
// an entry to it says so (entryAddedLocked, applyCreates), so the set of
// its names' hashes holds every name it has. A hash absent from the set
// is a name absent from the directory; a hash present (the name, a name
// removed since, or a collision) sends the lookup to the database.
// Removals need no news: the set may hold more than the directory.
//
// Valid like the other caches, at one commitGen: a commit carries the
// sets to the next when it says what entries it added, which is so of
// a transaction scoped to one inode row or none (those add no entry but
// the folded creates, which applyCreates reports), of a narrowed one
// (narrowLocked: it changes only the rows it names, and an entry added
// changes its parent's row, so it adds none but through applyCreates or
// entryAddedLocked), and of a create; any other commit (rename, link,
// a recovery) drops them all. Bounded by nameSetsMax names and
// nameSetsDirs directories: past either, they are dropped and start
// again with the next mkdir.
type nameSets struct {
	mu   sync.Mutex
	seed maphash.Seed
	gen  uint64
	dirs map[Ino]map[uint64]struct{}
	n    int   // hashes held, in all sets
	hits int64 // lookups answered (tests)
}

const (
	nameSetsMax  = 1 << 18
	nameSetsDirs = 1 << 12
)

// absent reports whether name is known not to be in parent at commitGen
// gen.
func (s *nameSets) absent(parent Ino, name string, gen uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	set, ok := s.dirs[parent]
	if !ok || s.gen != gen {
		return false
	}
	_, has := set[maphash.String(s.seed, name)]
	if !has {
		s.hits++
	}
	return !has
}

// entryChanges is what a transaction says of the entries it adds, for
// nameSets.commit: whether it said it at all (known), the entries it
// added (added, a made directory with its inode in dir) and the
// directories it removed. Guarded by wmu (txLocked resets it).
type entryChanges struct {
	known   bool
	added   []addedEntry
	removed []Ino
}

type addedEntry struct {
	parent Ino
	name   string
	dir    Ino // the entry's inode when it is a directory made now, else 0
}

func (c *entryChanges) reset() {
	c.known, c.added, c.removed = false, c.added[:0], c.removed[:0]
}

// commit moves the sets across the commit that moved commitGen from old
// to gen, which made the entry changes c (if c.known: else it may have
// added any entry, and the sets go). A directory made by it starts an
// empty set.
func (s *nameSets) commit(old, gen uint64, c *entryChanges) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !c.known || s.gen != old {
		s.dirs, s.n = nil, 0
	}
	s.gen = gen
	if !c.known {
		// It may have added entries it did not say, also to the
		// directories it made (a rename's transaction folds the pending
		// mkdirs, then adds its entry to one): no set is known.
		return
	}
	for _, d := range c.removed {
		s.n -= len(s.dirs[d])
		delete(s.dirs, d)
	}
	for _, e := range c.added {
		if set, ok := s.dirs[e.parent]; ok {
			set[maphash.String(s.seed, e.name)] = struct{}{}
			s.n++
		}
		if e.dir != 0 {
			if s.dirs == nil {
				s.seed = maphash.MakeSeed()
				s.dirs = make(map[Ino]map[uint64]struct{})
			}
			s.dirs[e.dir] = make(map[uint64]struct{})
		}
	}
	if s.n > nameSetsMax || len(s.dirs) > nameSetsDirs {
		s.dirs, s.n = nil, 0
	}
}

// entryAddedLocked says, from inside a transaction, that it adds name
// to parent (a directory made now when dir is not 0); a transaction
// that adds an entry any other way must not narrow (narrowLocked) nor
// scope itself to a row, or the name sets would miss the name. wmu held.
func (j *core) entryAddedLocked(parent Ino, name string, dir Ino) {
	j.ents.known = true
	j.ents.added = append(j.ents.added, addedEntry{parent, name, dir})
}
