package journal

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"

	"github.com/meshdrive/meshdrive/journal/href"
	"github.com/meshdrive/meshdrive/remote"
)

// StagedCheck is CheckStaged's answer.
type StagedCheck struct {
	Blocks  int            `json:"blocks"` // staged blocks checked
	Damaged []StagedDamage `json:"damaged,omitempty"`
}

// StagedDamage is a staged block whose sealed bytes fail their check.
type StagedDamage struct {
	Block string   `json:"block"`
	Paths []string `json:"paths"` // files that use it (the first maxLostNamed)
	// PathsHref is Paths %-encoded from their bytes when one of them is
	// not UTF-8 (href.List).
	PathsHref []string `json:"paths_href,omitempty"`
	Error     string   `json:"error"`
	// Lost: CheckStaged (repair) marked it lost, as the uploader does.
	Lost bool `json:"lost,omitempty"`
	// InFlight: the uploader read and checked the block before the disk
	// damaged it, and is shipping that good copy now; it is not marked
	// lost (a restart before that upload ends finds it damaged).
	InFlight bool `json:"in_flight,omitempty"`
	// Unreadable: its copy could not be read (Error says why: the disk
	// failed, or a permission); not known damaged, so never marked lost:
	// the uploader tries it again.
	Unreadable bool `json:"unreadable,omitempty"`
}

// setInflight records the blocks of the segment the uploader ships
// (nil: none).
func (j *uploader) setInflight(placed []placedBlock) {
	j.qmu.Lock()
	defer j.qmu.Unlock()
	j.inflight = nil
	if len(placed) > 0 {
		j.inflight = make(map[remote.BlockID]int64, len(placed))
		for _, p := range placed {
			j.inflight[p.id] = p.seq
		}
	}
}

// addInflight records block it, which pack has just read and checked,
// as in flight at once: pack goes on reading the rest of the segment
// (tens of MiB), and a check --repair meanwhile must not mark lost a
// block whose good copy is in the segment (setInflight then names the
// segment's blocks).
func (j *uploader) addInflight(it qitem) {
	j.qmu.Lock()
	defer j.qmu.Unlock()
	if j.inflight == nil {
		j.inflight = map[remote.BlockID]int64{}
	}
	j.inflight[it.id] = it.seq
}

// CheckStaged: see uploader.checkStaged (stagecheck.go). path "" checks
// every staged block; else those of the files at or under path (a file
// or folder relative to the root, as ResolvePath takes it).
func (j *Journal) CheckStaged(ctx context.Context, path string, repair bool, progress func(done, total int)) (*StagedCheck, error) {
	var only map[remote.BlockID]bool
	if path != "" {
		var err error
		if only, err = stagedUnder(ctx, j, path); err != nil {
			return nil, fmt.Errorf("check staged blocks of %s: %w", path, err)
		}
	}
	return j.up.checkStaged(ctx, only, repair, progress)
}

// maxStagedWalk bounds the entries a check of a folder's staged blocks
// visits (the check of its segments has the same bound).
const maxStagedWalk = 10_000_000

// stagedUnder is the set of staged blocks that the files at or under
// path use.
func stagedUnder(ctx context.Context, j *Journal, path string) (map[remote.BlockID]bool, error) {
	ino, err := j.ResolvePath(ctx, path)
	if err != nil {
		return nil, err
	}
	a, err := j.GetAttr(ctx, ino)
	if err != nil {
		return nil, err
	}
	var inos []Ino
	switch a.Mode & sIFMT {
	case sIFREG:
		inos = append(inos, ino)
	case sIFDIR:
		err := WalkFiles(ctx, j, ino, "/"+path, maxStagedWalk, func(_ string, e DirEntry) error {
			inos = append(inos, e.Ino)
			return nil
		})
		if errors.Is(err, ErrTooManyEntries) {
			return nil, errors.New("more than 10 million entries; check a folder at a time")
		}
		if err != nil {
			return nil, err
		}
	}
	only := map[remote.BlockID]bool{}
	for len(inos) > 0 {
		batch := inos[:min(len(inos), 500)]
		inos = inos[len(batch):]
		list, err := json.Marshal(batch)
		if err != nil {
			return nil, err
		}
		rows, err := j.db.QueryContext(ctx, `SELECT DISTINCT m.block FROM blockmap m JOIN blocks b ON b.id = m.block
			WHERE b.state = ? AND m.ino IN (SELECT value FROM json_each(?))`, blockStaged, string(list))
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var b []byte
			if err := rows.Scan(&b); err != nil {
				rows.Close()
				return nil, err
			}
			var id remote.BlockID
			copy(id[:], b)
			only[id] = true
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	return only, nil
}

// checkStaged authenticates every block staged and not yet uploaded (its
// staging file, or its row in table staged) on the local disk, as pack
// does before shipping one (VerifyIn), so a disk that damaged them is
// found while the files' owner may still have a copy, not when the
// uploader reaches them. A damaged block is reported with the files that
// use it; with repair it is marked lost by loseDamaged, the uploader's
// own path, unless it is in the segment the uploader is shipping now:
// that copy was read and checked when it was packed, and its upload
// makes the block whole (its damage is reported all the same). A block
// whose copy is missing (no staging file, no row) is damaged too, as a
// mount with --drop-missing finds it; one whose copy cannot be read is
// reported, not marked lost. A block uploaded or freed meanwhile is
// skipped. only, when not nil, is the blocks to check (those of a
// path); else every staged block is.
func (j *uploader) checkStaged(ctx context.Context, only map[remote.BlockID]bool, repair bool, progress func(done, total int)) (*StagedCheck, error) {
	if progress == nil {
		progress = func(int, int) {}
	}
	j.qmu.Lock()
	items := make([]qitem, 0, len(j.queue))
	var most int64
	for _, it := range j.queue {
		if only == nil || only[it.id] {
			items = append(items, it)
			most = max(most, it.sealedLen)
		}
	}
	j.qmu.Unlock()
	slices.SortFunc(items, func(a, b qitem) int { return int(a.seq - b.seq) })
	rep := &StagedCheck{}
	if len(items) == 0 {
		progress(0, 0)
		return rep, nil
	}
	// One buffer, laid out as pack's, refilled for each block.
	buf, err := remote.NewSegmentBuf(1, 0, 0, most)
	if err != nil {
		return nil, fmt.Errorf("check staged blocks: %w", err)
	}
	defer buf.Release()
	for i, it := range items {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		progress(i, len(items))
		buf.Truncate(0)
		err := j.packBlock(buf, it)
		if err == nil {
			err = j.seal.VerifyIn(buf, 0, buf.Len(), it.id)
			if err != nil {
				err = fmt.Errorf("%w: %w", errDamaged, err)
			}
		}
		if err == nil {
			rep.Blocks++
			continue
		}
		if !errors.Is(err, errDamaged) {
			if !j.stillStaged(ctx, it) {
				continue // uploaded or freed meanwhile
			}
			if errors.Is(err, os.ErrNotExist) {
				err = fmt.Errorf("%w: its copy on the local disk is missing (no staging file %s, no row in journal.db)", errDamaged, j.stagePath(it.id))
			}
		}
		rep.Blocks++
		d := StagedDamage{Block: it.id.String(), Error: err.Error(), Unreadable: !errors.Is(err, errDamaged)}
		var perr error
		if d.Paths, perr = j.blockPaths(ctx, it.id); perr != nil {
			return nil, fmt.Errorf("check staged block %s: name its files: %w", it.id, perr)
		}
		d.PathsHref = href.List(d.Paths)
		j.qmu.Lock()
		seq, ok := j.inflight[it.id]
		j.qmu.Unlock()
		d.InFlight = ok && seq == it.seq
		if repair && !d.InFlight && !d.Unreadable {
			d.Lost = loseDamaged(j, it, err)
		}
		rep.Damaged = append(rep.Damaged, d)
	}
	progress(len(items), len(items))
	return rep, nil
}

// stillStaged says whether block it is still the staged row it was.
func (j *uploader) stillStaged(ctx context.Context, it qitem) bool {
	var state int
	var seq int64
	err := j.db.QueryRowContext(ctx, `SELECT state, seq FROM blocks WHERE id = ?`, it.id[:]).Scan(&state, &seq)
	return err == nil && state == blockStaged && seq == it.seq || err != nil && !errors.Is(err, sql.ErrNoRows)
}

// blockPaths names the files that use block id (the first maxLostNamed).
func (j *uploader) blockPaths(ctx context.Context, id remote.BlockID) ([]string, error) {
	_, paths, err := blockFiles(ctx, j.db, id)
	return paths, err
}

// blockFiles counts the files that use block id and names the first
// maxLostNamed as lostFiles does, on the pool or in a transaction.
func blockFiles(ctx context.Context, q interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, id remote.BlockID) (files int64, paths []string, err error) {
	return namedFiles(ctx, q, `SELECT count(DISTINCT ino) FROM blockmap WHERE block = ?`,
		`SELECT DISTINCT ino FROM blockmap WHERE block = ? ORDER BY ino LIMIT ?`, id[:])
}
