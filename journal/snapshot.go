package journal

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/meshdrive/meshdrive/remote"
)

// Retention says which metadata checkpoints stay snapshots: every one
// younger than Last, the newest of each hour younger than Hourly, of each
// day younger than Daily, of each week younger than Weekly. Named
// snapshots stay until deleted; the newest checkpoint always stays.
type Retention struct {
	Last, Hourly, Daily, Weekly time.Duration
}

// DefaultRetention: every checkpoint of the last hour, hourly for 48
// hours, daily for 30 days, weekly for a year.
var DefaultRetention = Retention{Last: time.Hour, Hourly: 48 * time.Hour, Daily: 30 * 24 * time.Hour, Weekly: 365 * 24 * time.Hour}

// String is the form ParseRetention reads.
func (r Retention) String() string {
	return fmt.Sprintf("last=%s,hourly=%s,daily=%s,weekly=%s", fmtDur(r.Last), fmtDur(r.Hourly), fmtDur(r.Daily), fmtDur(r.Weekly))
}

func fmtDur(d time.Duration) string {
	switch {
	case d == 0:
		return "0"
	case d%(24*time.Hour) == 0:
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	}
	return d.String()
}

// ParseRetention reads "last=1h,hourly=48h,daily=30d,weekly=365d" (any
// subset; missing keys are 0, keep none of that kind). Units: s, m, h, d
// (days), w (weeks).
func ParseRetention(s string) (Retention, error) {
	var r Retention
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			return r, fmt.Errorf("%q: want key=duration, keys last, hourly, daily, weekly", part)
		}
		d, err := parseLongDuration(strings.TrimSpace(v))
		if err != nil {
			return r, fmt.Errorf("%q: %v", part, err)
		}
		switch strings.TrimSpace(k) {
		case "last":
			r.Last = d
		case "hourly":
			r.Hourly = d
		case "daily":
			r.Daily = d
		case "weekly":
			r.Weekly = d
		default:
			return r, fmt.Errorf("%q: unknown key (want last, hourly, daily, weekly)", part)
		}
	}
	return r, nil
}

func parseLongDuration(v string) (time.Duration, error) {
	if v == "0" {
		return 0, nil
	}
	for suf, unit := range map[string]time.Duration{"d": 24 * time.Hour, "w": 7 * 24 * time.Hour} {
		if n, ok := strings.CutSuffix(v, suf); ok {
			x, err := strconv.ParseFloat(n, 64)
			// !(x >= 0) is also NaN; past 1<<63 ns (292 years, and
			// Inf) the conversion would wrap to a negative duration,
			// which keeps nothing.
			if err != nil || !(x >= 0) || x*float64(unit) >= 1<<63 {
				return 0, fmt.Errorf("bad duration %q (like 30d or 52w, at most 292 years)", v)
			}
			return time.Duration(x * float64(unit)), nil
		}
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("bad duration %q (like 90m, 48h, 30d, 52w)", v)
	}
	return d, nil
}

// Snapshot is a metadata checkpoint kept as a snapshot.
type Snapshot struct {
	Seq     uint64
	Name    string // the given name, or the UTC time (TimeName)
	Named   bool
	Created time.Time
}

// TimeName is the name of an unnamed snapshot taken at t: its UTC time,
// without characters file managers stumble on.
func TimeName(t time.Time) string { return t.UTC().Format(timeLayout) }

const timeLayout = "2006-01-02T150405Z"

// timeNameOK: s is a TimeName.
func timeNameOK(s string) bool {
	_, err := time.Parse(timeLayout, s)
	return err == nil
}

type mlogRow struct {
	seq, base, prev uint64
	created         time.Time
	name            string
	named, deleted  bool
	seg             []byte
}

func (j *snapshots) mlogRows(ctx context.Context) ([]mlogRow, error) {
	rows, err := j.db.QueryContext(ctx, `SELECT seq, base, prev, created, name, deleted, seg FROM mlog ORDER BY seq`)
	if err != nil {
		return nil, fmt.Errorf("journal: read snapshots: %w", err)
	}
	defer rows.Close()
	var out []mlogRow
	for rows.Next() {
		var r mlogRow
		var name sql.NullString
		var created int64
		if err := rows.Scan(&r.seq, &r.base, &r.prev, &created, &name, &r.deleted, &r.seg); err != nil {
			return nil, fmt.Errorf("journal: read snapshots: %w", err)
		}
		r.created = time.Unix(0, created).UTC()
		r.name, r.named = name.String, name.Valid
		out = append(out, r)
	}
	return out, rows.Err()
}

// kept applies the retention to rows (sorted by seq) at now: which seqs
// are snapshots.
func (r Retention) kept(rows []mlogRow, now time.Time) map[uint64]bool {
	keep := map[uint64]bool{}
	if len(rows) == 0 {
		return keep
	}
	keep[rows[len(rows)-1].seq] = true
	buckets := map[string]bool{}
	for i := len(rows) - 1; i >= 0; i-- { // newest first
		x := rows[i]
		if x.deleted {
			continue
		}
		if x.named {
			keep[x.seq] = true
			continue
		}
		age := now.Sub(x.created)
		for _, b := range []struct {
			within time.Duration
			key    string
		}{
			{r.Last, "l" + strconv.FormatUint(x.seq, 10)},
			{r.Hourly, "h" + x.created.Truncate(time.Hour).String()},
			{r.Daily, "d" + x.created.Format("2006-01-02")},
			{r.Weekly, "w" + strconv.FormatInt(x.created.Unix()/(7*24*3600), 10)},
		} {
			if age <= b.within && !buckets[b.key] {
				buckets[b.key] = true
				keep[x.seq] = true
			}
		}
	}
	return keep
}

// keptRecords is which of rows (sorted by seq) stay snapshots now: the
// retention's, or, while some block is lost (ErrLostBlock: its staging
// file went missing or was damaged before its upload), every record but
// deleted named ones. The older version of a file whose new blocks were
// lost is then the last good copy of its bytes, and only older records
// name it: the .snapshots folder shows them all, pruning keeps them and
// garbage collection keeps the blocks they name, until the files with
// lost blocks are restored or deleted (see docs/DESIGN.md, "Lost
// blocks"). When the database cannot say, everything is kept.
func (j *snapshots) keptRecords(ctx context.Context, rows []mlogRow) map[uint64]bool {
	keep := j.retention().kept(rows, time.Now())
	var lost bool
	if err := j.db.QueryRowContext(ctx, `SELECT EXISTS(SELECT 1 FROM blocks WHERE state = ?)`, blockLost).Scan(&lost); err != nil || lost {
		for _, r := range rows {
			if !r.deleted {
				keep[r.seq] = true
			}
		}
	}
	return keep
}

func (j *snapshots) retention() Retention {
	if j.o.Retention != nil {
		return *j.o.Retention
	}
	return DefaultRetention
}

// Snapshots lists the kept snapshots, oldest first.
func (j *snapshots) Snapshots(ctx context.Context) ([]Snapshot, error) {
	if err := j.checkOpen(); err != nil {
		return nil, err
	}
	rows, err := j.mlogRows(ctx)
	if err != nil {
		return nil, err
	}
	keep := j.keptRecords(ctx, rows)
	var out []Snapshot
	used := map[string]bool{}
	for _, r := range rows {
		if !keep[r.seq] {
			continue
		}
		s := Snapshot{Seq: r.seq, Name: r.name, Named: r.named, Created: r.created}
		if !r.named {
			s.Name = TimeName(r.created)
			if used[s.Name] {
				s.Name += "-" + strconv.FormatUint(r.seq, 10)
			}
		}
		used[s.Name] = true
		out = append(out, s)
	}
	return out, nil
}

// FindSnapshot returns the kept snapshot called name. ErrNotFound if none.
func (j *snapshots) FindSnapshot(ctx context.Context, name string) (Snapshot, error) {
	snaps, err := j.Snapshots(ctx)
	if err != nil {
		return Snapshot{}, err
	}
	for _, s := range snaps {
		if s.Name == name {
			return s, nil
		}
	}
	return Snapshot{}, fmt.Errorf("journal: snapshot %q: %w", name, ErrNotFound)
}

// CheckSnapshotName refuses names that cannot be a folder under
// .snapshots, that look like a time name, or that are not printable text.
// A snapshot's name is a label a person types and reads: one that is not
// UTF-8 has no JSON string (the web API could not name it), and one with
// control characters (ESC, a newline) would rewrite the terminal that
// lists it.
func CheckSnapshotName(name string) error {
	switch {
	case name == "" || name == "." || name == "..":
		return fmt.Errorf("%w: snapshot name %q", ErrInvalid, name)
	case len(name) > 100:
		return fmt.Errorf("%w: snapshot name longer than 100 bytes", ErrInvalid)
	case strings.ContainsAny(name, "/\x00"):
		return fmt.Errorf("%w: snapshot name %q has a / or NUL", ErrInvalid, name)
	case !utf8.ValidString(name):
		return fmt.Errorf("%w: snapshot name %q is not UTF-8", ErrInvalid, name)
	case strings.ContainsFunc(name, func(r rune) bool { return !unicode.IsGraphic(r) }):
		return fmt.Errorf("%w: snapshot name %q holds a control or invisible character", ErrInvalid, name)
	}
	// A time name, or one with the "-SEQ" that tells two of a second
	// apart: the unnamed snapshot of that second would share the name.
	if len(name) >= len(timeLayout) && timeNameOK(name[:len(timeLayout)]) {
		return fmt.Errorf("%w: snapshot name %q looks like a time name; choose another", ErrInvalid, name)
	}
	return nil
}

// CreateSnapshot ships a checkpoint now and keeps it as a snapshot, named
// name when not "" (kept until deleted), else by its time (kept by the
// retention). It returns once the snapshot is on the grid.
func (j *snapshots) CreateSnapshot(ctx context.Context, name string) (Snapshot, error) {
	if err := j.checkWrite(); err != nil {
		return Snapshot{}, err
	}
	if j.ms == nil {
		return Snapshot{}, fmt.Errorf("journal: %w: no grid for metadata", ErrInvalid)
	}
	if name != "" {
		if err := CheckSnapshotName(name); err != nil {
			return Snapshot{}, err
		}
		if _, err := j.FindSnapshot(ctx, name); err == nil {
			return Snapshot{}, fmt.Errorf("journal: snapshot %q: %w", name, ErrExist)
		}
	}
	if err := j.md.SyncGrid(ctx); err != nil {
		return Snapshot{}, err
	}
	seq, err := j.ms.ship(ctx, true, false, false)
	if err != nil {
		return Snapshot{}, err
	}
	if name != "" {
		j.wmu.Lock()
		j.scopeLocked(scopeNone)
		err = j.txLocked(ctx, func(tx *sql.Tx) error {
			_, err := tx.ExecContext(ctx, `UPDATE mlog SET name = ? WHERE seq = ?`, name, seq)
			return err
		})
		j.wmu.Unlock()
		if err != nil {
			if isUniqueViolation(err) {
				return Snapshot{}, fmt.Errorf("journal: snapshot %q: %w", name, ErrExist)
			}
			return Snapshot{}, fmt.Errorf("journal: name snapshot: %w", err)
		}
		// The name itself reaches the grid with the next record.
		if _, err := j.ms.ship(ctx, true, false, false); err != nil {
			return Snapshot{}, err
		}
	}
	snaps, err := j.Snapshots(ctx)
	if err != nil {
		return Snapshot{}, err
	}
	for _, s := range snaps {
		if s.Seq == seq {
			return s, nil
		}
	}
	return Snapshot{}, fmt.Errorf("journal: snapshot %d is not kept (check the retention)", seq)
}

// DeleteSnapshots stops keeping the snapshots named (every one but the
// newest checkpoint, with all); their records leave the grid at the next
// prune unless another snapshot needs them.
func (j *snapshots) DeleteSnapshots(ctx context.Context, names []string, all bool) ([]Snapshot, error) {
	if err := j.checkWrite(); err != nil {
		return nil, err
	}
	snaps, err := j.Snapshots(ctx)
	if err != nil {
		return nil, err
	}
	var del []Snapshot
	if all {
		del = snaps
	} else {
		for _, n := range names {
			i := slices.IndexFunc(snaps, func(s Snapshot) bool { return s.Name == n })
			if i < 0 {
				return nil, fmt.Errorf("journal: snapshot %q: %w (meshdrive snapshot list shows the names)", n, ErrNotFound)
			}
			del = append(del, snaps[i])
		}
	}
	j.wmu.Lock()
	j.scopeLocked(scopeNone)
	err = j.txLocked(ctx, func(tx *sql.Tx) error {
		for _, s := range del {
			if _, err := tx.ExecContext(ctx, `UPDATE mlog SET deleted = 1, name = NULL WHERE seq = ?`, s.Seq); err != nil {
				return err
			}
		}
		return nil
	})
	j.wmu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("journal: delete snapshots: %w", err)
	}
	if j.ms != nil {
		if _, err := j.ms.ship(ctx, true, false, false); err != nil {
			return del, err
		}
		j.pruneMeta(ctx)
	}
	return del, nil
}

// pruneMeta deletes from the grid the records no kept snapshot and not
// the newest checkpoint needs (each needs its chain back to its full
// record), and their local copies. Records of the newest chain are never
// touched. Failures are logged and retried at the next prune.
func (j *snapshots) pruneMeta(ctx context.Context) {
	rows, err := j.mlogRows(ctx)
	if err != nil || len(rows) == 0 {
		return
	}
	bySeq := map[uint64]*mlogRow{}
	for i := range rows {
		bySeq[rows[i].seq] = &rows[i]
	}
	need := map[uint64]bool{}
	for seq := range j.keptRecords(ctx, rows) {
		for s := seq; s != 0 && !need[s]; {
			need[s] = true
			r := bySeq[s]
			if r == nil || r.base == s {
				break
			}
			s = r.prev
		}
	}
	headBase := rows[len(rows)-1].base
	for _, r := range rows {
		if need[r.seq] || r.seq >= headBase {
			continue
		}
		// The row goes first, durably: a delete that reaches only some
		// nodes (one down or refusing) then leaves shards no row names,
		// which the orphan pass removes (collectOrphans). The other way
		// round, the row outlived its segment's shards, and check,
		// repair and drain (Segments) took it for a record below k.
		j.wmu.Lock()
		j.scopeLocked(scopeNone)
		err := j.durableTxLocked(ctx, func(tx *sql.Tx) error {
			_, err := tx.ExecContext(ctx, `DELETE FROM mlog WHERE seq = ?`, r.seq)
			return err
		})
		j.wmu.Unlock()
		if err != nil {
			j.log.Warn("journal: forget an old metadata record; will retry", "seq", r.seq, "err", err)
			continue
		}
		os.RemoveAll(j.snapshotDir(r.seq))
		seg, _, err := remote.DecodeSegmentInfo(r.seg)
		if err == nil {
			err = j.o.Meta.DeleteSegment(ctx, seg)
		}
		if err != nil {
			j.log.Warn("journal: an old metadata record was not deleted from every node; the orphan pass removes the rest", "seq", r.seq, "err", err)
		}
	}
}

func (j *snapshots) snapshotDir(seq uint64) string {
	return filepath.Join(j.o.Dir, "snapshots", strconv.FormatUint(seq, 10))
}

// SnapshotJournal returns a read-only journal of snapshot seq, built from
// the grid the first time (kept under Dir/snapshots) and opened once per
// mount. It reads file data through the same BlockReader.
func (j *snapshots) SnapshotJournal(ctx context.Context, seq uint64) (*Journal, error) {
	if err := j.checkOpen(); err != nil {
		return nil, err
	}
	j.snapMu.Lock()
	defer j.snapMu.Unlock()
	if sj := j.snaps[seq]; sj != nil {
		return sj, nil
	}
	var segBytes []byte
	err := j.db.QueryRowContext(ctx, `SELECT seg FROM mlog WHERE seq = ?`, seq).Scan(&segBytes)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("journal: snapshot %d: %w", seq, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("journal: snapshot %d: %w", seq, err)
	}
	seg, _, err := remote.DecodeSegmentInfo(segBytes)
	if err != nil {
		return nil, fmt.Errorf("journal: snapshot %d: %w", seq, err)
	}
	dir := filepath.Join(j.snapshotDir(seq), "journal")
	if _, err := os.Stat(filepath.Join(dir, "journal.db")); err != nil {
		if j.o.Meta == nil {
			return nil, fmt.Errorf("journal: snapshot %d: %w: no grid to read it from", seq, ErrOffline)
		}
		os.RemoveAll(dir)
		if _, err := Rebuild(ctx, RebuildOptions{Dir: dir, Grid: j.o.Meta, Sealer: j.o.Sealer, Seq: seq, Head: *seg,
			BlockSize: int(j.bs), Logger: j.log}); err != nil {
			return nil, fmt.Errorf("journal: snapshot %d: %w", seq, err)
		}
	}
	if err := j.refreshPlaces(ctx, dir); err != nil {
		return nil, fmt.Errorf("journal: snapshot %d: %w", seq, err)
	}
	sj, err := Open(ctx, Options{Dir: dir, Sealer: j.o.Sealer, Blocks: j.o.Blocks, BlockSize: int(j.bs), ReadOnly: true, Logger: j.log,
		Places: j.fd.BlockPlace, Kept: j.kp.byID})
	if err != nil {
		return nil, fmt.Errorf("journal: snapshot %d: %w", seq, err)
	}
	if j.snaps == nil {
		j.snaps = map[uint64]*Journal{}
	}
	j.snaps[seq] = sj
	return sj, nil
}

// refreshPlaces points a snapshot's blocks at where they are now: garbage
// collection moves blocks (compaction) and records the new places in the
// drive's journal only, so a snapshot's own record may name a segment that
// is gone. Block ids name content, so the drive's row of a block is the
// truth about where it lives.
func (j *snapshots) refreshPlaces(ctx context.Context, dir string) error {
	db, err := openDB(ctx, filepath.Join(dir, "journal.db"), false)
	if err != nil {
		return err
	}
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	live := "file:" + uriPath(filepath.Join(j.o.Dir, "journal.db")) + "?mode=ro"
	if _, err := conn.ExecContext(ctx, `ATTACH DATABASE ? AS live`, live); err != nil {
		return fmt.Errorf("attach the drive's journal: %w", err)
	}
	defer conn.ExecContext(context.WithoutCancel(ctx), `DETACH DATABASE live`)
	for _, q := range []string{
		`INSERT OR IGNORE INTO main.segments SELECT * FROM live.segments WHERE id IN
			(SELECT l.segment FROM live.blocks l JOIN main.blocks b ON b.id = l.id WHERE l.segment IS NOT NULL)`,
		`UPDATE main.blocks SET
			segment = (SELECT l.segment FROM live.blocks l WHERE l.id = blocks.id),
			seg_off = (SELECT l.seg_off FROM live.blocks l WHERE l.id = blocks.id),
			seg_len = (SELECT l.seg_len FROM live.blocks l WHERE l.id = blocks.id),
			state = CASE state WHEN 3 THEN 1 ELSE state END
			WHERE id IN (SELECT id FROM live.blocks WHERE segment IS NOT NULL)`,
	} {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("refresh block places: %w", err)
		}
	}
	return nil
}
