package journal

import (
	"context"
	"database/sql"
	"strconv"

	"github.com/meshdrive/meshdrive/journal/href"
)

// maxLostNamed bounds the files LostFiles names.
const maxLostNamed = 100

// lostFiles counts the files with a lost block (blockLost: reading it
// fails) and names up to maxLostNamed of them by a path from the root
// ("/a/b"; one of a hard link's names; "inode N" for one no folder
// names), on the pool or in a transaction.
func lostFiles(ctx context.Context, q interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
	QueryRowContext(context.Context, string, ...any) *sql.Row
}) (files int64, paths []string, err error) {
	return namedFiles(ctx, q,
		`SELECT count(DISTINCT m.ino) FROM blockmap m JOIN blocks b ON b.id = m.block WHERE b.state = ?`,
		`SELECT DISTINCT m.ino FROM blockmap m JOIN blocks b ON b.id = m.block
		WHERE b.state = ? ORDER BY m.ino LIMIT ?`, blockLost)
}

// namedFiles runs count (the number of files) and, when it finds any,
// list (their inodes, args then maxLostNamed as its last parameter), and
// names the listed inodes by a path each (inoPaths).
func namedFiles(ctx context.Context, q interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, count, list string, args ...any) (files int64, paths []string, err error) {
	if err := q.QueryRowContext(ctx, count, args...).Scan(&files); err != nil || files == 0 {
		return files, nil, err
	}
	rows, err := q.QueryContext(ctx, list, append(args, maxLostNamed)...)
	if err != nil {
		return files, nil, err
	}
	var inos []Ino
	for rows.Next() {
		var ino Ino
		if err := rows.Scan(&ino); err != nil {
			rows.Close()
			return files, nil, err
		}
		inos = append(inos, ino)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return files, nil, err
	}
	paths, err = inoPaths(ctx, q, inos)
	return files, paths, err
}

// inoPaths names each of inos by a path from the root, as lostFiles does.
func inoPaths(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, inos []Ino) (paths []string, err error) {
	for _, ino := range inos {
		// Up the tree: a file's first name, then its folders' (a folder
		// has one); the depth bound stops a cycle that damaged tables
		// could hold.
		var p sql.NullString
		err := q.QueryRowContext(ctx, `WITH RECURSIVE up(ino, path, depth) AS (
				SELECT parent, '/' || name, 0 FROM (SELECT parent, name FROM entries WHERE ino = ?1 ORDER BY parent, name LIMIT 1)
				UNION ALL
				SELECT e.parent, '/' || e.name || up.path, up.depth + 1
				FROM up JOIN entries e ON e.ino = up.ino
				WHERE up.ino != ?2 AND up.depth < 4096)
			SELECT path FROM up WHERE ino = ?2 LIMIT 1`, ino, RootIno).Scan(&p)
		switch {
		case err == nil && p.Valid:
			paths = append(paths, p.String)
		case err == nil || err == sql.ErrNoRows:
			paths = append(paths, "inode "+strconv.FormatUint(uint64(ino), 10))
		default:
			return paths, err
		}
	}
	return paths, nil
}

// LostReport counts the blocks that cannot be read from anywhere
// (ErrLostBlock) and the files they belong to.
type LostReport struct {
	Blocks int64    `json:"blocks"`
	Files  int64    `json:"files"`
	Paths  []string `json:"paths,omitempty"` // up to 100 of the files
	// PathsHref is Paths %-encoded from their bytes (href.List) when one
	// of them is not UTF-8, which JSON would show with U+FFFD.
	PathsHref []string `json:"paths_href,omitempty"`
}

// Lost reports the lost blocks and names their files (cheap when there
// are none: one look at the queue's index).
// A read-only open adds the staged blocks it found missing (roMissing).
func (j *Journal) Lost(ctx context.Context) (LostReport, error) {
	var r LostReport
	if err := j.db.QueryRowContext(ctx, `SELECT count(*) FROM blocks WHERE state = ?`, blockLost).Scan(&r.Blocks); err != nil {
		return r, err
	}
	if r.Blocks > 0 {
		var err error
		if r.Files, r.Paths, err = lostFiles(ctx, j.db); err != nil {
			return r, err
		}
	}
	if ro := j.roLost.rep; ro.Blocks > 0 {
		r.Blocks += ro.Blocks
		r.Files += ro.Files
		r.Paths = append(r.Paths, ro.Paths[:min(len(ro.Paths), max(0, maxLostNamed-len(r.Paths)))]...)
	}
	r.PathsHref = href.List(r.Paths)
	return r, nil
}
