package journal

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/meshdrive/meshdrive/remote"
)

// One writer per drive. Before a metadata record is written, at the
// shipper's start, and before orphans are collected, the journal reads the
// grid's newest root record and goes on only while that record is one it
// wrote or took up: its seq and head segment are a row of its own log
// (mlog: every record it shipped, and those Rebuild took from the grid),
// or the record its last ship was putting on the nodes (meta key
// "root_pending", committed durably before the root's Put, so a crash
// between that Put and the row leaves it known). Anything else means
// another computer has written the drive since (a recover on a new laptop
// while the old one still runs, a copied or cloned data dir, a restored
// backup): this journal stops shipping metadata and collecting garbage,
// which would delete the other's segments as orphans, and says so
// (ErrTakenOver). Each journal also has a random writer id (meta key
// "writer") that its root records carry, to name the other writer in
// the message; the decision never rests on it.

// ErrTakenOver: the drive's newest root record on the grid was written by
// another journal after this one's last. The error value is a
// *TakenOverError.
var ErrTakenOver = errors.New("another computer has written this drive since this data dir last did")

// TakenOverError says which record took the drive over.
type TakenOverError struct {
	Seq     uint64
	Created time.Time
	Writer  remote.WriterID
}

func (e *TakenOverError) Error() string {
	return fmt.Sprintf("%v (its checkpoint %d of %s, writer %s): this mount no longer ships metadata or collects garbage, "+
		"so changes made here since then are not on the grid; copy them out, unmount, and run meshdrive recover into a new data dir to take up the drive as it is now",
		ErrTakenOver, e.Seq, e.Created.Local().Format(time.DateTime), e.Writer)
}

func (e *TakenOverError) Unwrap() error { return ErrTakenOver }

// rootKey names root record r by its seq and head segment.
func rootKey(seq uint64, head remote.SegmentID) string {
	return strconv.FormatUint(seq, 10) + ":" + head.String()
}

// writerID returns the journal's writer id, made on first use (durably:
// root records carry it as soon as it is made).
func (j *meta) writerID(ctx context.Context) (remote.WriterID, error) {
	var w remote.WriterID
	v, err := j.metaValue(ctx, "writer")
	if err != nil {
		return w, err
	}
	if b, err := hex.DecodeString(v); err == nil && len(b) == len(w) {
		copy(w[:], b)
		return w, nil
	}
	rand.Read(w[:])
	if err := j.setMetaDurable(ctx, "writer", w.String()); err != nil {
		return w, fmt.Errorf("journal: record writer id: %w", err)
	}
	return w, nil
}

// setRootPending records, durably, the root record a ship is about to
// put on the nodes.
func (j *meta) setRootPending(ctx context.Context, seq uint64, head remote.SegmentID) error {
	if err := j.setMetaDurable(ctx, "root_pending", rootKey(seq, head)); err != nil {
		return fmt.Errorf("journal: record the root record being shipped: %w", err)
	}
	return nil
}

// metaValue reads meta key, "" when unset.
func (j *meta) metaValue(ctx context.Context, key string) (string, error) {
	var v string
	err := j.db.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = ?`, key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("journal: read %s: %w", key, err)
	}
	return v, nil
}

// rootOurs reports whether root record r (the grid's newest) is one this
// journal wrote or took up: nil, or a *TakenOverError.
func (j *meta) rootOurs(ctx context.Context, r *remote.RootRecord) error {
	var seg []byte
	err := j.db.QueryRowContext(ctx, `SELECT seg FROM mlog WHERE seq = ?`, r.Seq).Scan(&seg)
	switch {
	case err == nil:
		if info, _, derr := remote.DecodeSegmentInfo(seg); derr == nil && info.ID == r.Head.ID {
			return nil
		}
	case !errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("journal: read the metadata log: %w", err)
	}
	pending, err := j.metaValue(ctx, "root_pending")
	if err != nil {
		return err
	}
	if pending == rootKey(r.Seq, r.Head.ID) {
		return nil
	}
	return &TakenOverError{Seq: r.Seq, Created: r.Created, Writer: r.Writer}
}

// checkWriter reads the grid's newest root record before a ship (m.mu
// held): a *TakenOverError, kept for good, when another journal wrote
// it. No root yet, or none readable, is no objection: the record's own
// write then says whether the nodes answer.
func (m *metaShipper) checkWriter(ctx context.Context) error {
	if m.takenOver != nil {
		return m.takenOver
	}
	// Nodes behind are the ship's to update, not to warn of; nodes that
	// do not answer within rootCheckWait are left out.
	rctx, cancel := context.WithTimeout(ctx, rootCheckWait)
	r, err := ReadRoot(rctx, m.g, m.seal, nil)
	cancel()
	if err != nil {
		return nil
	}
	if err := m.j.rootOurs(ctx, r); err != nil {
		var to *TakenOverError
		if errors.As(err, &to) {
			m.takenOver = to
			m.stMu.Lock()
			m.stats.LastError, m.stats.TakenOver = to.Error(), true
			m.stMu.Unlock()
			m.log.Error("journal: another computer has written this drive; metadata is no longer shipped from here", "err", err)
		}
		return err
	}
	return nil
}
