package journal

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/meshdrive/meshdrive/journal/metalog"
)

// mtable is one journal table as the metadata log ships it: the columns
// shipped (keys first) and, for the rebuild, the columns it fills with
// values of its own (refcounts, queue order: local state).
type mtable struct {
	id       uint8
	name     string
	cols     []string
	keys     int
	fillCols string // extra columns set on rebuild
	fillVals string
}

// mtables are the shipped tables, in the order a full record lists them.
// Their ids are the tbl values the triggers of migration 2 -> 3 write
// into mdirty: never renumber.
var mtables = []mtable{
	{id: 1, name: "inodes", cols: []string{"ino", "mode", "uid", "gid", "rdev", "nlink", "size", "used", "atime", "mtime", "ctime", "generation"}, keys: 1},
	{id: 2, name: "entries", cols: []string{"parent", "name", "ino"}, keys: 2},
	{id: 3, name: "xattrs", cols: []string{"ino", "name", "value"}, keys: 2},
	{id: 4, name: "symlinks", cols: []string{"ino", "target"}, keys: 1},
	{id: 7, name: "segments", cols: []string{"id", "k", "m", "size", "shard_size", "chunk_size", "nodes", "stored", "created"}, keys: 1},
	{id: 6, name: "blocks", cols: []string{"id", "plain_len", "sealed_len", "state", "segment", "seg_off", "seg_len"}, keys: 1,
		fillCols: ", refcount, prio, seq", fillVals: ", 0, 0, 0"},
	{id: 5, name: "blockmap", cols: []string{"ino", "idx", "block"}, keys: 2},
	{id: 8, name: "mlog", cols: []string{"seq", "kind", "base", "prev", "created", "seg", "bytes", "name", "deleted"}, keys: 1},
}

// mlogTable is the id of the mlog table: its changes alone never start a
// shipment (every shipment changes it).
const mlogTable = 8

func mtableByID(id uint8) *mtable {
	for i := range mtables {
		if mtables[i].id == id {
			return &mtables[i]
		}
	}
	return nil
}

func (t *mtable) selectAll() string {
	return "SELECT " + strings.Join(t.cols, ", ") + " FROM " + t.name
}

func (t *mtable) where() string {
	var w []string
	for _, k := range t.cols[:t.keys] {
		w = append(w, k+" = ?")
	}
	return " WHERE " + strings.Join(w, " AND ")
}

func (t *mtable) selectKey() string { return t.selectAll() + t.where() }

func (t *mtable) deleteKey() string { return "DELETE FROM " + t.name + t.where() }

func (t *mtable) upsert() string {
	q := strings.Repeat(", ?", len(t.cols))[2:]
	return "INSERT OR REPLACE INTO " + t.name + "(" + strings.Join(t.cols, ", ") + t.fillCols + ") VALUES(" + q + t.fillVals + ")"
}

// selectDirty selects the keys of t noted in mdirty up to ?1 (?2 is
// t's id), each with the row it has now: the key's a and b, then t's
// columns, NULL when no row has the key.
func (t *mtable) selectDirty() string {
	on := []string{"t." + t.cols[0] + " = d.a"}
	if t.keys > 1 {
		on = append(on, "t."+t.cols[1]+" = d.b")
	}
	return "SELECT d.a, d.b, t." + strings.Join(t.cols, ", t.") +
		" FROM (SELECT DISTINCT a, b FROM mdirty WHERE tbl = ?2 AND id <= ?1) AS d LEFT JOIN " + t.name +
		" AS t ON " + strings.Join(on, " AND ")
}

// mtablesByID returns the shipped tables by ascending id.
func mtablesByID() []*mtable {
	out := make([]*mtable, len(mtables))
	for i := range mtables {
		out[i] = &mtables[i]
	}
	slices.SortFunc(out, func(a, b *mtable) int { return int(a.id) - int(b.id) })
	return out
}

// mtableIDs lists the shipped tables' ids for an IN (...).
func mtableIDs() string {
	ids := make([]string, len(mtables))
	for i := range mtables {
		ids[i] = strconv.Itoa(int(mtables[i].id))
	}
	return strings.Join(ids, ", ")
}

// scanRow reads the current row of rows into a metalog row of table t.
func scanRow(t *mtable, rows *sql.Rows) (metalog.Row, error) {
	vals := make([]any, len(t.cols))
	ptrs := make([]any, len(t.cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	if err := rows.Scan(ptrs...); err != nil {
		return metalog.Row{}, err
	}
	if err := rowVals(t, vals); err != nil {
		return metalog.Row{}, err
	}
	return metalog.Row{Table: t.id, Vals: vals}, nil
}

// rowVals makes the values scanned from a row of t what a metalog row
// holds: nil, int64, string or []byte.
func rowVals(t *mtable, vals []any) error {
	for i, v := range vals {
		switch x := v.(type) {
		case nil, int64, string, []byte:
		case bool:
			if x {
				vals[i] = int64(1)
			} else {
				vals[i] = int64(0)
			}
		default:
			return fmt.Errorf("table %s column %s: value of type %T", t.name, t.cols[i], v)
		}
	}
	return nil
}

// applier applies metalog rows to a database under rebuild.
type applier struct {
	up, del map[uint8]*sql.Stmt
}

func newApplier(ctx context.Context, tx *sql.Tx) (*applier, error) {
	a := &applier{up: map[uint8]*sql.Stmt{}, del: map[uint8]*sql.Stmt{}}
	for i := range mtables {
		t := &mtables[i]
		up, err := tx.PrepareContext(ctx, t.upsert())
		if err != nil {
			return nil, err
		}
		del, err := tx.PrepareContext(ctx, t.deleteKey())
		if err != nil {
			return nil, err
		}
		a.up[t.id], a.del[t.id] = up, del
	}
	return a, nil
}

func (a *applier) apply(ctx context.Context, r metalog.Row) error {
	t := mtableByID(r.Table)
	if t == nil {
		return fmt.Errorf("%w: row of unknown table %d", metalog.ErrCorrupt, r.Table)
	}
	if r.Delete {
		if len(r.Vals) != t.keys {
			return fmt.Errorf("%w: delete from %s with %d key values", metalog.ErrCorrupt, t.name, len(r.Vals))
		}
		_, err := a.del[t.id].ExecContext(ctx, r.Vals...)
		return err
	}
	if len(r.Vals) != len(t.cols) {
		return fmt.Errorf("%w: row of %s with %d values", metalog.ErrCorrupt, t.name, len(r.Vals))
	}
	_, err := a.up[t.id].ExecContext(ctx, r.Vals...)
	return err
}
