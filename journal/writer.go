package journal

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/meshdrive/meshdrive/remote"
)

// One writer per drive. Each journal has a random writer id (meta key
// "writer"), which every root record it ships carries. Before a metadata
// record is written, and before orphans are collected, the journal reads
// the grid's newest root record: it goes on only while that record is its
// own, or the one it last wrote or took up (meta key "root_seen": set by
// every ship and by Rebuild). Anything else means another computer has
// written the drive since (a recover on a new laptop while the old one
// still runs, or a copied data dir): this journal stops shipping metadata
// and collecting orphans, which would delete the other's segments, and
// says so (ErrTakenOver). Records from before writer ids carry the zero
// id; a journal that has never seen a root takes such a record up once.

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

// rootSeen is the meta value naming root record r.
func rootSeen(seq uint64, w remote.WriterID) string {
	return strconv.FormatUint(seq, 10) + ":" + w.String()
}

// writerID returns the journal's writer id, made on first use. A journal
// whose database is not the file the id was made for (a copy of the data
// dir, on this computer or another) makes an id of its own: otherwise a
// copy and its original, both running, would pass for one writer.
func (j *meta) writerID(ctx context.Context) (remote.WriterID, error) {
	var w remote.WriterID
	v, err := j.metaValue(ctx, "writer")
	if err != nil {
		return w, err
	}
	made, err := j.metaValue(ctx, "writer_file")
	if err != nil {
		return w, err
	}
	here := dbFileID(filepath.Join(j.o.Dir, "journal.db"))
	if b, err := hex.DecodeString(v); err == nil && len(b) == len(w) && (made == here || here == "") {
		copy(w[:], b)
		return w, nil
	}
	rand.Read(w[:])
	j.wmu.Lock()
	defer j.wmu.Unlock()
	j.scopeLocked(scopeNone)
	err = j.txLocked(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT OR REPLACE INTO meta(key, value) VALUES('writer', ?), ('writer_file', ?)`, w.String(), here)
		return err
	})
	if err != nil {
		return w, fmt.Errorf("journal: record writer id: %w", err)
	}
	return w, nil
}

// dbFileID names the file at path by device and inode number ("" when it
// cannot be looked at).
func dbFileID(path string) string {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return ""
	}
	return fmt.Sprintf("%d:%d", st.Dev, st.Ino)
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

// rootOurs reports whether root record r (the grid's newest) leaves this
// journal the drive's writer: nil, or a *TakenOverError.
func (j *meta) rootOurs(ctx context.Context, r *remote.RootRecord) error {
	w, err := j.writerID(ctx)
	if err != nil {
		return err
	}
	if r.Writer == w {
		return nil
	}
	seen, err := j.metaValue(ctx, "root_seen")
	if err != nil {
		return err
	}
	if seen == rootSeen(r.Seq, r.Writer) || (seen == "" && r.Writer.IsZero()) {
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
	r, err := ReadRoot(ctx, m.g, m.seal, nil) // nodes behind are the ship's to update, not to warn of
	if err != nil {
		return nil
	}
	if err := m.j.rootOurs(ctx, r); err != nil {
		var to *TakenOverError
		if errors.As(err, &to) {
			m.takenOver = to
			m.stMu.Lock()
			m.stats.LastError = to.Error()
			m.stMu.Unlock()
			m.log.Error("journal: another computer has written this drive; metadata is no longer shipped from here", "err", err)
		}
		return err
	}
	return nil
}
