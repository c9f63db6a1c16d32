package journal

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/meshdrive/meshdrive/journal/metalog"
	"github.com/meshdrive/meshdrive/remote"
)

// MetaGrid is what shipping the metadata needs of the grid. *remote.Grid
// satisfies it.
type MetaGrid interface {
	WriteSegment(ctx context.Context, data []byte) (*remote.SegmentInfo, error)
	ReadSegment(ctx context.Context, seg *remote.SegmentInfo, off int64, p []byte) error
	DeleteSegment(ctx context.Context, seg *remote.SegmentInfo) error
	PutMeta(ctx context.Context, name string, data []byte) (int, error)
	GetMetaAll(ctx context.Context, name string) []remote.MetaCopy
}

// Defaults of the metadata log.
const (
	// DefaultMetaInterval is how far the grid's copy of the metadata may
	// trail the journal while nodes are reachable.
	DefaultMetaInterval = 30 * time.Second
	// maxChain is how many deltas follow a full record before the next
	// record is full again: recovery reads at most this many records.
	maxChain = 256
	// minFullRatio: a full record is written when the deltas since the
	// last one add up to more than this many times its size (or 1 MiB,
	// whichever is more), so a checkpoint's cost is spread over changes
	// of at least its own size.
	minFullBytes = 1 << 20
)

// MetaStats is the state of the metadata log, for status.
type MetaStats struct {
	Head        uint64    // seq of the newest record on the grid (0: none)
	HeadTime    time.Time // when it was shipped
	Records     int64     // records shipped since Open
	Bytes       int64     // their sealed bytes (before erasure coding)
	PendingRows int64     // changed rows not yet on the grid
	LastError   string
	// TakenOver: another computer has written the drive since this
	// journal last did (writer.go); nothing ships from here any more.
	TakenOver bool
}

// rootCheckWait bounds a ship's look at the grid's root record: nodes that
// have not answered by then are left out of it.
const rootCheckWait = 2 * time.Second

// metaShipper ships the journal's metadata to the grid: a full record
// now and then, deltas of the rows changed (mdirty) in between, and a
// root record on every node naming the newest. One ship runs at a time.
type metaShipper struct {
	j        *meta
	g        MetaGrid
	seal     *remote.Sealer
	log      *slog.Logger
	interval time.Duration
	kick     chan struct{}
	done     chan struct{}

	mu sync.Mutex // serializes ship; guards takenOver
	// takenOver: another journal wrote the drive's root record (writer.go);
	// nothing is shipped any more.
	takenOver *TakenOverError
	// afterRoot, when set (tests), runs after a ship's root Put; an error
	// ends the ship there, as a crash would.
	afterRoot func() error

	stMu  sync.Mutex // guards stats
	stats MetaStats
}

func newMetaShipper(j *meta) *metaShipper {
	iv := j.o.MetaInterval
	if iv <= 0 {
		iv = DefaultMetaInterval
	}
	return &metaShipper{j: j, g: j.o.Meta, seal: j.o.Sealer, log: j.log, interval: iv,
		kick: make(chan struct{}, 1), done: make(chan struct{})}
}

// run ships whatever changed every interval, retrying with capped backoff
// while the grid refuses.
func (m *metaShipper) run(ctx context.Context) {
	defer close(m.done)
	m.checkRoot(ctx)
	m.firstRecord(ctx)
	bo := remote.Backoff{Min: time.Second, Max: m.interval}
	fails := 0
	wait := m.interval
	var last time.Time
	for {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		case <-m.kick:
			t.Stop()
			// An fsync asked: at most one record per kickGap for them.
			if !sleepCtx(ctx, time.Until(last.Add(min(kickGap, m.interval)))) {
				return
			}
		}
		// Give the uploader a moment to ship the urgent blocks (small
		// and fsync'd files'), so their rows go in this record; rows of
		// files whose blocks still wait behind bulk uploads wait for a
		// later record (deferStaged).
		wctx, cancel := context.WithTimeout(ctx, m.interval/2)
		urgentLeft := m.j.waitUrgent(wctx) != nil
		cancel()
		last = time.Now()
		if _, err := m.ship(ctx, false, false, true); err != nil {
			if ctx.Err() != nil {
				return
			}
			if errors.Is(err, ErrTakenOver) {
				m.stMu.Lock()
				m.stats.LastError = err.Error()
				m.stMu.Unlock()
				<-ctx.Done() // logged once by checkWriter; status shows it
				return
			}
			wait = bo.Delay(fails)
			fails++
			m.log.Warn("journal: metadata not shipped to the grid; retrying", "retry_in", wait, "err", err)
			continue
		}
		fails, wait = 0, m.interval
		m.j.sn.pruneMeta(ctx)
		if urgentLeft {
			// Urgent blocks were still behind a bulk segment in flight
			// (a slow link), so this record left their files out: ship
			// again once they are up, not a whole interval later.
			wctx, cancel := context.WithTimeout(ctx, m.interval)
			m.j.waitUrgent(wctx)
			cancel()
			wait = 0
		}
	}
}

// checkRoot compares the grid's newest root record with the journal's
// own log: the next seq must be above both.
func (m *metaShipper) checkRoot(ctx context.Context) {
	r, err := ReadRoot(ctx, m.g, m.seal, m.log)
	if err != nil {
		if !errors.Is(err, remote.ErrNoRoot) {
			m.log.Debug("journal: root record not read at start", "err", err)
		}
		return
	}
	var to *TakenOverError
	if err := m.j.rootOurs(ctx, r); errors.As(err, &to) {
		m.mu.Lock()
		m.takenOver = to
		m.mu.Unlock()
		m.stMu.Lock()
		m.stats.LastError, m.stats.TakenOver = to.Error(), true
		m.stMu.Unlock()
		m.log.Error("journal: another computer has written this drive; metadata is not shipped from here", "err", to)
		return
	}
	next, err := m.j.metaNext(ctx)
	if err != nil {
		return
	}
	if r.Seq >= next {
		if err := m.j.setMeta(ctx, "mlog_next", strconv.FormatUint(r.Seq+1, 10)); err != nil {
			m.log.Warn("journal: cannot record the metadata log's next seq", "err", err)
		}
	}
}

func (j *meta) metaNext(ctx context.Context) (uint64, error) {
	var s sql.NullString
	err := j.db.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = 'mlog_next'`).Scan(&s)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("journal: read metadata log position: %w", err)
	}
	var next uint64 = 1
	if s.Valid {
		next, _ = strconv.ParseUint(s.String, 10, 64)
	}
	var head sql.NullInt64
	if err := j.db.QueryRowContext(ctx, `SELECT max(seq) FROM mlog`).Scan(&head); err != nil {
		return 0, fmt.Errorf("journal: read metadata log head: %w", err)
	}
	return max(next, uint64(head.Int64)+1), nil
}

// setMeta sets meta key to value in an ordinary commit.
func (j *meta) setMeta(ctx context.Context, key, value string) error {
	return j.putMeta(ctx, key, value, false)
}

// setMetaDurable is setMeta in a durable commit: the value survives a
// power cut when it returns.
func (j *meta) setMetaDurable(ctx context.Context, key, value string) error {
	return j.putMeta(ctx, key, value, true)
}

func (j *meta) putMeta(ctx context.Context, key, value string, durable bool) error {
	j.wmu.Lock()
	defer j.wmu.Unlock()
	j.scopeLocked(scopeNone)
	tx := j.txLocked
	if durable {
		tx = j.durableTxLocked
	}
	return tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT OR REPLACE INTO meta(key, value) VALUES(?, ?)`, key, value)
		return err
	})
}

// headRec is the newest record of the local log.
type headRec struct {
	seq, base uint64
	seg       *remote.SegmentInfo
	// chain counts the deltas since base, chainBytes their bytes,
	// baseBytes the base's.
	chain                 int
	chainBytes, baseBytes int64
}

func readHead(ctx context.Context, q interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}) (*headRec, error) {
	var h headRec
	var seg []byte
	err := q.QueryRowContext(ctx, `SELECT seq, base, seg FROM mlog ORDER BY seq DESC LIMIT 1`).Scan(&h.seq, &h.base, &seg)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if h.seg, _, err = remote.DecodeSegmentInfo(seg); err != nil {
		return nil, err
	}
	if err := q.QueryRowContext(ctx, `SELECT count(*), coalesce(sum(bytes), 0) FROM mlog WHERE base = ? AND kind = ?`,
		h.base, metalog.Delta).Scan(&h.chain, &h.chainBytes); err != nil {
		return nil, err
	}
	if err := q.QueryRowContext(ctx, `SELECT coalesce(max(bytes), 0) FROM mlog WHERE seq = ?`, h.base).Scan(&h.baseBytes); err != nil {
		return nil, err
	}
	return &h, nil
}

// firstRecord ships the first full record of a drive that has none, at
// once, while it is small and nothing is queued: the records after it can
// then be deltas, which do not wait for a big first copy's blocks. A
// failure is left to the run loop.
func (m *metaShipper) firstRecord(ctx context.Context) {
	if h, err := readHead(ctx, m.j.db); err != nil || h != nil {
		return
	}
	var queued int
	m.j.db.QueryRowContext(ctx, `SELECT count(*) FROM (SELECT 1 FROM blocks WHERE state = 0 LIMIT 1)`).Scan(&queued)
	if queued > 0 {
		return
	}
	// Only while the drive is still empty in the record's own snapshot: a
	// record that took rows written meanwhile would race with them (and
	// with whoever looks at mdirty) for no gain.
	if _, err := m.ship(context.WithValue(ctx, emptyOnly{}, true), true, true, false); err != nil && ctx.Err() == nil {
		m.log.Debug("journal: first metadata record not shipped yet", "err", err)
	}
}

// emptyOnly, as a ctx value, makes ship write nothing unless no row is
// pending (firstRecord).
type emptyOnly struct{}

// ship sends the rows changed since the last record (all rows: full, or
// when the chain is long) to the grid and names the new record in a root
// record on every node. With force it ships even when nothing changed.
// It returns the seq of the newest record (0 when there is none).
//
// With deferStaged (the background shipper), a delta record leaves out the
// rows of files whose blocks still wait in the upload queue (see
// deferredInodes) instead of waiting for them: a small file saved during a
// long copy reaches the grid without waiting for the copy.
func (m *metaShipper) ship(ctx context.Context, force, full, deferStaged bool) (uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	j := m.j
	seq, err := j.md.metaNext(ctx)
	if err != nil {
		return 0, err
	}

	rtx, err := j.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return 0, fmt.Errorf("journal: metadata snapshot: %w", err)
	}
	defer rtx.Rollback()
	var maxID sql.NullInt64
	var pending int64
	if err := rtx.QueryRowContext(ctx, `SELECT max(id), coalesce(sum(tbl != ?), 0) FROM mdirty`, mlogTable).Scan(&maxID, &pending); err != nil {
		return 0, fmt.Errorf("journal: metadata snapshot: %w", err)
	}
	head, err := readHead(ctx, rtx)
	if err != nil {
		return 0, fmt.Errorf("journal: metadata log head: %w", err)
	}
	if pending == 0 && !force && !full && head != nil {
		return head.seq, nil
	}
	if pending > 0 && ctx.Value(emptyOnly{}) != nil {
		return headSeq(head), nil
	}
	h := metalog.Header{Seq: seq, Kind: metalog.Delta, Created: time.Now().UTC()}
	wantFull := full || head == nil || head.chain >= maxChain || head.chainBytes > max(head.baseBytes, minFullBytes)
	if wantFull && !full && head != nil && deferStaged {
		// A full record leaves nothing out: it would wait for every queued
		// block (a small file saved during a big copy with it). While
		// blocks are queued, the chain grows a little longer instead.
		var queued int
		rtx.QueryRowContext(ctx, `SELECT count(*) FROM (SELECT 1 FROM blocks WHERE state = 0 LIMIT 1)`).Scan(&queued)
		wantFull = queued == 0 || head.chain >= 2*maxChain // rebuild walks at most 4*maxChain
	}
	if wantFull {
		h.Kind, h.Base = metalog.Full, seq
	} else {
		h.Base, h.Prev, h.PrevSeg = head.base, head.seq, head.seg
	}
	b := metalog.NewBuilder(h)
	var later deferral
	if h.Kind == metalog.Full {
		err = fullRows(ctx, rtx, b)
	} else {
		if deferStaged {
			if later.inodes, err = deferredInodes(ctx, rtx, maxID.Int64); err != nil {
				return 0, fmt.Errorf("journal: read metadata to ship: %w", err)
			}
		}
		err = deltaRows(ctx, rtx, maxID.Int64, b, &later)
	}
	if err != nil {
		return 0, fmt.Errorf("journal: read metadata to ship: %w", err)
	}
	if len(later.keys) > 0 && later.shipped == 0 && !force {
		return headSeq(head), nil // everything waits for its blocks
	}
	// Blocks the record's maps name that are still staged: the record
	// names them once they are on the grid, so it never names data the
	// grid does not have (their rows were left out above).
	q := `SELECT DISTINCT m.block FROM mdirty d JOIN blockmap m ON d.tbl = 5 AND m.ino = d.a AND m.idx = d.b
		JOIN blocks b ON b.id = m.block WHERE d.id <= ?1 AND b.state = 0`
	if h.Kind == metalog.Full {
		q = `SELECT DISTINCT m.block FROM blockmap m JOIN blocks b ON b.id = m.block WHERE b.state = 0 AND ?1 = ?1`
	}
	var staged []remote.BlockID
	if later.inodes == nil { // else every map row naming a queued block is left out
		staged, err = blockIDs(ctx, rtx, q, maxID.Int64)
	}
	if err != nil {
		return 0, fmt.Errorf("journal: read metadata to ship: %w", err)
	}
	// Blocks that lost their last reference before this snapshot: this
	// record is the first that does not name them (gc.go).
	freedIDs, err := blockIDs(ctx, rtx, `SELECT id FROM blocks WHERE state = 2 AND freed IS NULL AND ?1 = ?1`, 0)
	if err != nil {
		return 0, fmt.Errorf("journal: read metadata to ship: %w", err)
	}
	if len(later.keys) > 0 {
		// A row left for later may still name a block freed here (a file
		// deleted while the record leaves its deletion out): no block is
		// marked freed until nothing is left out.
		freedIDs = nil
	}
	rtx.Rollback()
	if len(staged) > 0 {
		if err := j.md.waitUploaded(ctx, staged); err != nil {
			return 0, fmt.Errorf("journal: metadata record %d waits for its blocks: %w", seq, err)
		}
		if err := uploadedRows(ctx, j.db, staged, b); err != nil {
			return 0, fmt.Errorf("journal: metadata record %d: %w", seq, err)
		}
	}
	data := b.Seal(m.seal)
	writer, err := j.md.writerID(ctx)
	if err != nil {
		return 0, err
	}
	// The look at the grid's root (writer.go) runs beside the record's
	// write, and a node that does not answer within rootCheckWait is left
	// out of it: a hung node must not hold every ship for its timeout.
	checked := make(chan error, 1)
	go func() { checked <- m.checkWriter(ctx) }()

	j.segWriteMu.RLock() // until the record's row is written (gc.go, orphans)
	defer j.segWriteMu.RUnlock()
	info, err := m.g.WriteSegment(ctx, data)
	if cerr := <-checked; cerr != nil {
		if err == nil {
			m.g.DeleteSegment(context.WithoutCancel(ctx), info)
		}
		return 0, cerr
	}
	if err != nil {
		return 0, fmt.Errorf("journal: ship metadata record %d: %w", seq, err)
	}
	// Known before any node has it: a crash between the root's Put and
	// the row below must not leave this journal taking its own root for
	// another writer's (writer.go).
	if err := j.md.setRootPending(ctx, seq, info.ID); err != nil {
		m.g.DeleteSegment(context.WithoutCancel(ctx), info)
		return 0, err
	}
	root := m.seal.SealRoot(&remote.RootRecord{Seq: seq, Created: h.Created, Writer: writer, Head: *info})
	if _, err := m.g.PutMeta(ctx, remote.MetaRoot, root); err != nil {
		m.g.DeleteSegment(context.WithoutCancel(ctx), info)
		return 0, fmt.Errorf("journal: ship root record %d: %w", seq, err)
	}
	if m.afterRoot != nil {
		if err := m.afterRoot(); err != nil {
			return 0, err // tests: a crash after the root's Put
		}
	}
	segBytes := remote.AppendSegmentInfo(nil, info)
	j.wmu.Lock()
	j.c.scopeLocked(scopeNone)
	err = j.c.txLocked(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO mlog(seq, kind, base, prev, created, seg, bytes) VALUES(?, ?, ?, ?, ?, ?, ?)`,
			seq, h.Kind, h.Base, h.Prev, h.Created.UnixNano(), segBytes, len(data)); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT OR REPLACE INTO meta(key, value) VALUES('mlog_next', ?)`, strconv.FormatUint(seq+1, 10)); err != nil {
			return err
		}
		if err := markBornFreed(ctx, tx, seq, h.Kind == metalog.Full, maxID.Int64, staged, freedIDs); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM mdirty WHERE id <= ?`, maxID.Int64); err != nil {
			return err
		}
		return later.requeue(ctx, tx)
	})
	j.wmu.Unlock()
	if err != nil {
		return 0, fmt.Errorf("journal: record metadata record %d: %w", seq, err)
	}
	m.stMu.Lock()
	m.stats.Head, m.stats.HeadTime = seq, h.Created
	m.stats.Records++
	m.stats.Bytes += int64(len(data))
	m.stats.LastError = ""
	m.stMu.Unlock()
	m.log.Debug("journal: metadata record shipped", "seq", seq, "full", h.Kind == metalog.Full, "rows", b.Rows(), "bytes", len(data))
	return seq, nil
}

// fullRows adds every row of every shipped table.
func fullRows(ctx context.Context, tx *sql.Tx, b *metalog.Builder) error {
	for i := range mtables {
		t := &mtables[i]
		rows, err := tx.QueryContext(ctx, t.selectAll())
		if err != nil {
			return err
		}
		if _, err := addRows(t, rows, b); err != nil {
			return err
		}
	}
	return nil
}

// deltaRows adds, for every key noted in mdirty up to maxID, the row as
// it is now, or its deletion: one query per table joins the keys noted
// for it with the table (a query per key cost about 10 µs each, a second
// of CPU per record while cp -a ran: docs/BENCHMARKS.md). Keys that later
// says to leave out are collected in later.keys instead. The rows are
// added as they are read, not gathered first: 100,000 creates note
// 200,000 keys, 14 MiB of the mount's peak as a slice.
func deltaRows(ctx context.Context, tx *sql.Tx, maxID int64, b *metalog.Builder, later *deferral) error {
	var unknown sql.NullInt64
	if err := tx.QueryRowContext(ctx, `SELECT min(tbl) FROM mdirty WHERE id <= ?1 AND tbl NOT IN (`+mtableIDs()+`)`, maxID).Scan(&unknown); err != nil {
		return err
	}
	if unknown.Valid {
		return fmt.Errorf("mdirty names table %d", unknown.Int64)
	}
	for _, t := range mtablesByID() {
		if err := deltaTable(ctx, tx, t, maxID, b, later); err != nil {
			return err
		}
	}
	return nil
}

// deltaTable is deltaRows for the keys of table t.
func deltaTable(ctx context.Context, tx *sql.Tx, t *mtable, maxID int64, b *metalog.Builder, later *deferral) error {
	rows, err := tx.QueryContext(ctx, t.selectDirty(), maxID, t.id)
	if err != nil {
		return err
	}
	defer rows.Close()
	vals := make([]any, 2+len(t.cols)) // the key's a and b, then the row (NULLs: none)
	ptrs := make([]any, len(vals))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	for rows.Next() {
		clear(vals)
		if err := rows.Scan(ptrs...); err != nil {
			return err
		}
		k := mkey{tbl: t.id, a: vals[0], b: vals[1]}
		var cur []any       // the row as it is now; nil: deleted
		if vals[2] != nil { // a key column: never NULL in a row
			cur = slices.Clone(vals[2:])
			if err := rowVals(t, cur); err != nil {
				return err
			}
		}
		if later.leaves(k, cur) {
			later.keys = append(later.keys, k)
			continue
		}
		if k.tbl != mlogTable {
			later.shipped++
		}
		r := metalog.Row{Table: t.id, Vals: cur}
		if cur == nil {
			r = metalog.Row{Table: t.id, Delete: true, Vals: []any{k.a, k.b}[:t.keys]}
		} else if stagedRow(r) {
			continue
		}
		if err := b.Add(r); err != nil {
			return err
		}
	}
	return rows.Err()
}

// addRows adds the rows of table t that rows reads (but staged ones) and
// closes rows; found reports that it read any.
func addRows(t *mtable, rows *sql.Rows, b *metalog.Builder) (found bool, err error) {
	defer func() {
		if cerr := rows.Close(); err == nil {
			err = cerr
		}
	}()
	for rows.Next() {
		r, err := scanRow(t, rows)
		if err == nil && !stagedRow(r) {
			err = b.Add(r)
		}
		if err != nil {
			return found, err
		}
		found = true
	}
	return found, rows.Err()
}

// ShipMeta ships the metadata changed since the last record now (a new
// record even when nothing changed, with force) and returns the newest
// record's seq. ErrReadOnly without a MetaGrid.
func (j *meta) ShipMeta(ctx context.Context, force bool) (uint64, error) {
	if err := j.checkWrite(); err != nil {
		return 0, err
	}
	if j.ms == nil {
		return 0, fmt.Errorf("journal: %w: no grid for metadata", ErrInvalid)
	}
	return j.ms.ship(ctx, force, false, false)
}

// SyncGrid returns once everything written before the call is
// grid-durable: its data uploaded (WaitDurable) and the metadata naming
// it shipped in a record that a root record names.
func (j *meta) SyncGrid(ctx context.Context) error {
	if err := j.up.WaitDurable(ctx); err != nil {
		return err
	}
	if j.ms == nil || j.o.ReadOnly {
		return nil
	}
	// Deleted files the reaper has not freed yet: free them now, so the
	// record says their blocks are free (garbage collection reads that).
	if err := j.it.freeOrphans(ctx); err != nil {
		j.log.Warn("journal: deleted files not freed before the metadata record; the reaper retries", "err", err)
	}
	bo := remote.Backoff{Min: 100 * time.Millisecond, Max: 5 * time.Second}
	for attempt := 0; ; attempt++ {
		_, err := j.ms.ship(ctx, false, false, false)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if errors.Is(err, ErrTakenOver) {
			return err // for good: retrying cannot help
		}
		j.ms.stMu.Lock()
		j.ms.stats.LastError = err.Error()
		j.ms.stMu.Unlock()
		if !sleepCtx(ctx, bo.Delay(attempt)) {
			return ctx.Err()
		}
	}
}

// MetaStats returns the metadata log's state.
func (j *meta) MetaStats(ctx context.Context) MetaStats {
	var st MetaStats
	if j.ms != nil {
		j.ms.stMu.Lock()
		st = j.ms.stats
		j.ms.stMu.Unlock()
	}
	if h, err := readHead(ctx, j.db); err == nil && h != nil && st.Head == 0 {
		st.Head = h.seq
		var created int64
		j.db.QueryRowContext(ctx, `SELECT created FROM mlog WHERE seq = ?`, h.seq).Scan(&created)
		st.HeadTime = time.Unix(0, created).UTC()
	}
	local, _ := json.Marshal(j.o.LocalXattrs)
	j.db.QueryRowContext(ctx, `SELECT count(*) FROM mdirty WHERE tbl != ?1
		AND NOT (tbl = 3 AND b IN (SELECT value FROM json_each(?2)))`, mlogTable, string(local)).Scan(&st.PendingRows)
	return st
}

// ReadRoot reads the root record from every node and returns the valid
// one with the highest seq. A node whose copy fails authentication (a
// tampered record, or another drive's) or is older than the newest is
// named in a warning; neither can roll the drive back. remote.ErrNoRoot
// when no node has one; a *remote.NoRootError when none that answered
// has one and some could not be read.
func ReadRoot(ctx context.Context, g MetaGrid, s *remote.Sealer, log *slog.Logger) (*remote.RootRecord, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	copies := g.GetMetaAll(ctx, remote.MetaRoot)
	var best *remote.RootRecord
	seqs := make([]uint64, len(copies))
	var errs []error
	var unread []string
	notFound, forged := 0, 0
	for i, c := range copies {
		if c.Err != nil {
			if errors.Is(c.Err, remote.ErrNotFound) {
				notFound++
			} else {
				errs = append(errs, c.Err)
				unread = append(unread, c.Node)
			}
			continue
		}
		r, err := s.OpenRoot(c.Data)
		if err != nil {
			log.Warn("ignoring the root record of a node: it fails authentication (tampered, or another drive's)", "node", c.Node, "err", err)
			errs = append(errs, fmt.Errorf("node %s: %w", c.Node, err))
			forged++
			continue
		}
		seqs[i] = r.Seq
		if best == nil || r.Seq > best.Seq {
			best = r
		}
	}
	if best == nil {
		switch {
		case notFound == len(copies):
			return nil, remote.ErrNoRoot
		case forged == 0:
			return nil, &remote.NoRootError{Answered: notFound, Unread: unread, Err: errors.Join(errs...)}
		}
		return nil, fmt.Errorf("no node served a valid root record: %w", errors.Join(errs...))
	}
	for i, c := range copies {
		if seqs[i] != 0 && seqs[i] < best.Seq {
			log.Warn("a node serves an older root record; the newest wins", "node", c.Node, "seq", seqs[i], "newest", best.Seq)
		}
	}
	return best, nil
}

// stagedRow: a blocks row of a block not on the grid yet. Records leave
// it out; the block's row goes with the record that names it once it is
// uploaded (uploadedRows), or with the upload's own change.
func stagedRow(r metalog.Row) bool {
	return r.Table == 6 && len(r.Vals) > 3 && r.Vals[3] == int64(blockStaged)
}

func blockIDs(ctx context.Context, tx *sql.Tx, q string, args ...any) ([]remote.BlockID, error) {
	rows, err := tx.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []remote.BlockID
	for rows.Next() {
		var raw []byte
		if err := rows.Scan(&raw); err != nil {
			return nil, err
		}
		var id remote.BlockID
		copy(id[:], raw)
		out = append(out, id)
	}
	return out, rows.Err()
}

// waitUploaded returns once none of ids waits in the upload queue,
// asking the uploader to ship a partial segment.
func (j *meta) waitUploaded(ctx context.Context, ids []remote.BlockID) error {
	return j.up.waitQueue(ctx, func() bool {
		for _, id := range ids {
			if _, ok := j.queue[id]; ok {
				return true
			}
		}
		return false
	})
}

// uploadedRows adds the rows of blocks ids (now uploaded) and of their
// segments. A block that is gone or still staged (freed before it was
// uploaded) fails the record: the next one is taken afresh.
func uploadedRows(ctx context.Context, db *sql.DB, ids []remote.BlockID, b *metalog.Builder) error {
	bt, st := mtableByID(6), mtableByID(7)
	segs := map[string]bool{}
	for _, id := range ids {
		rows, err := db.QueryContext(ctx, bt.selectKey(), id[:])
		if err != nil {
			return err
		}
		found := false
		for rows.Next() {
			r, err := scanRow(bt, rows)
			if err != nil || stagedRow(r) {
				rows.Close()
				return fmt.Errorf("block %s changed while its record was made; retrying", id)
			}
			if seg, ok := r.Vals[4].([]byte); ok {
				segs[string(seg)] = true
			}
			if err := b.Add(r); err != nil {
				rows.Close()
				return err
			}
			found = true
		}
		rows.Close()
		if !found {
			return fmt.Errorf("block %s was freed while its record was made; retrying", id)
		}
	}
	for seg := range segs {
		rows, err := db.QueryContext(ctx, st.selectKey(), []byte(seg))
		if err != nil {
			return err
		}
		for rows.Next() {
			r, err := scanRow(st, rows)
			if err == nil {
				err = b.Add(r)
			}
			if err != nil {
				rows.Close()
				return err
			}
		}
		rows.Close()
	}
	return nil
}

// markBornFreed records, for garbage collection, which blocks record seq
// names for the first time (born) and which it is the first not to name
// (freed). Born is generous (a block whose row waits for a later record
// may be marked here): that only keeps a block longer.
func markBornFreed(ctx context.Context, tx *sql.Tx, seq uint64, full bool, maxID int64, staged, freed []remote.BlockID) error {
	q := `UPDATE blocks SET born = ?1 WHERE born IS NULL AND state != 0 AND id IN (SELECT a FROM mdirty WHERE tbl = 6 AND id <= ?2)`
	if full {
		q = `UPDATE blocks SET born = ?1 WHERE born IS NULL AND state != 0 AND ?2 = ?2`
	}
	if _, err := tx.ExecContext(ctx, q, seq, maxID); err != nil {
		return err
	}
	for _, id := range staged {
		if _, err := tx.ExecContext(ctx, `UPDATE blocks SET born = ? WHERE id = ? AND born IS NULL`, seq, id[:]); err != nil {
			return err
		}
	}
	for _, id := range freed {
		if _, err := tx.ExecContext(ctx, `UPDATE blocks SET freed = ? WHERE id = ? AND state = 2 AND freed IS NULL`, seq, id[:]); err != nil {
			return err
		}
	}
	return nil
}
