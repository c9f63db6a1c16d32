package journal

// The journal is cut into parts, each a type over the same shared state
// (shared, journal.go), so that no one type carries every method:
//
//	core         the database layer every part writes through: transactions,
//	             durable commits and the group committer, prepared
//	             statements, the schema (db.go, group.go)
//	namespace    names, directories, attributes read back, the look-ahead
//	             that fills the read caches (namespace.go, lookahead.go)
//	attrs        attribute and xattr changes, statfs (attr.go)
//	files        file data: reads, writes, reservations, truncation (data.go)
//	inodeTable   the in-memory inodes, opens, and the reaper that frees what
//	             unlinked files leave (inode.go)
//	flusher      the flush of dirty blocks into the journal, reference
//	             counts, crash recovery (flush.go, recover.go)
//	uploader     the upload queue and the goroutine that owns it: packing
//	             segments, shipping, committing them (upload.go)
//	writeBehind  flushes of full blocks while a large write goes on (behind.go)
//	gridView     what the grid holds of each file and segment (segments.go,
//	             status.go)
//	collector    garbage collection and compaction (gc.go)
//	snapshots    named snapshots and the pruning of checkpoints (snapshot.go)
//	meta         the metadata log's shipping, its pending keys and the
//	             deferral of staged rows (metaship.go, metapending.go,
//	             metadefer.go)
//	unlinks      deferred unlinks: the unlink log, the pending unlinks and
//	             the goroutine that applies them (unlinks.go)
//	keeper       small blocks kept in the database after their upload
//	             (kept.go)
//	dirAttrs     deferred attribute changes of directories (dirattr.go)
//
// Every part embeds *core (shared's own fields, with the database layer's
// methods), so a method's body reaches the shared fields and the database
// layer as j.field and j.tx whatever part it is on; it calls another part
// through that part's pointer in parts (j.up.enqueue). Receivers are
// named j in every part for that reason. *Journal (api.go) is the exported surface: it forwards each
// call to the part that owns it.
//
// The locks stay in shared and their order is unchanged by the split
// (doc.go, journal.go): inode.mu -> wmu -> imu -> qmu; wmu ->
// lookAhead.mu, attrCache.mu, knownBlocks.mu; metaShipper.mu -> segWriteMu -> wmu.

// parts points at each part of one journal; shared embeds it.
type parts struct {
	c  *core
	ns *namespace
	at *attrs
	fd *files
	it *inodeTable
	fl *flusher
	up *uploader
	wb *writeBehind
	gv *gridView
	gc *collector
	sn *snapshots
	md *meta
	ul *unlinks
	kp *keeper
	da *dirAttrs
}

// core is the shared state with the database layer's methods: the same
// struct as shared, so a part reaches a field through one pointer, as
// Journal's methods did before the split, and *Journal (which embeds
// *shared) gets none of core's methods.
type core shared

type (
	namespace   struct{ *core }
	attrs       struct{ *core }
	files       struct{ *core }
	inodeTable  struct{ *core }
	flusher     struct{ *core }
	uploader    struct{ *core }
	writeBehind struct{ *core }
	gridView    struct{ *core }
	collector   struct{ *core }
	snapshots   struct{ *core }
	meta        struct{ *core }
	unlinks     struct{ *core }
	keeper      struct{ *core }
	dirAttrs    struct{ *core }
)

// newShared returns s with its parts made, each pointing at s.
func newShared(s *shared) *shared {
	c := (*core)(s)
	s.parts = parts{
		c:  c,
		ns: &namespace{c},
		at: &attrs{c},
		fd: &files{c},
		it: &inodeTable{c},
		fl: &flusher{c},
		up: &uploader{c},
		wb: &writeBehind{c},
		gv: &gridView{c},
		gc: &collector{c},
		sn: &snapshots{c},
		md: &meta{c},
		ul: &unlinks{c},
		kp: &keeper{c},
		da: &dirAttrs{c},
	}
	return s
}
