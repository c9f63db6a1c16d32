package journal

import (
	"bytes"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"
)

// BenchmarkTriggers measures what the metadata log's triggers (schema
// 2 -> 3: every changed row's key appended to mdirty) add to the write
// path: two journals side by side, one with its md_* triggers dropped,
// taking turns in batches of 200 operations, by this process's CPU time
// per operation (a shared machine distorts it less than wall time):
//
//	go test -run '^$' -bench Triggers -benchtime 1x ./journal/
//
// Each sub-benchmark reports µs of CPU per operation with the triggers
// (on-µs/op), without them (off-µs/op) and their ratio.
func BenchmarkTriggers(b *testing.B) {
	const batches, per = 10, 200
	data := bytes.Repeat([]byte("package main // some source text\n"), 150) // ~5 KB
	ops := []struct {
		name string
		do   func(b *testing.B, e *env, i int)
	}{
		{"create", func(b *testing.B, e *env, i int) {
			if _, err := e.j.Mknod(bg, RootIno, fmt.Sprintf("c%07d", i), 0o100644, 0, 0, 0); err != nil {
				b.Fatal(err)
			}
		}},
		{"smallfile", func(b *testing.B, e *env, i int) { smallFile(b, e.j, i, data) }},
		{"unlink", func(b *testing.B, e *env, i int) {
			if err := e.j.Unlink(bg, RootIno, fmt.Sprintf("f%07d", i)); err != nil {
				b.Fatal(err)
			}
		}},
	}
	for range b.N {
		mk := func(drop bool) *env {
			e := newEnv(b, func(o *Options) { o.BlockSize = 4 << 20; o.IdleFlush = time.Hour })
			if drop {
				dropMetaTriggers(b, e.j)
			}
			return e
		}
		envs := [2]*env{mk(false), mk(true)}
		for _, op := range ops {
			var cpu [2]time.Duration
			for k := range batches {
				for w := range 2 {
					// Alternate which goes first, so neither always
					// follows the other's background work.
					w = (w + k) % 2
					t0 := cpuTime()
					for i := k * per; i < (k+1)*per; i++ {
						op.do(b, envs[w], i)
					}
					// The operations are logged (unlinks.go, creates.go,
					// flushlog.go) and their rows written, the triggers
					// fired, by the apply: the batch's own, inside its
					// measure, not the unlinker's at some later time,
					// during the other journal's batch.
					applyUnlinks(b, envs[w].j)
					cpu[w] += cpuTime() - t0
					if p := envs[w].j.unl.unlN.Load(); p != 0 {
						b.Fatalf("%s: %d records still pending after the batch: their apply would be counted in the other journal's batch; apply them inside the batch's measure", op.name, p)
					}
				}
			}
			n := float64(batches * per)
			on := float64(cpu[0].Microseconds()) / n
			off := float64(cpu[1].Microseconds()) / n
			b.ReportMetric(on, op.name+"-on-µs/op")
			b.ReportMetric(off, op.name+"-off-µs/op")
			b.ReportMetric(on/off, op.name+"-on/off")
		}
	}
}

// dropMetaTriggers drops the metadata log's triggers (md_*) of j.
func dropMetaTriggers(b *testing.B, j *Journal) {
	rows, err := j.db.QueryContext(bg, `SELECT name FROM sqlite_master WHERE type = 'trigger' AND name LIKE 'md\_%' ESCAPE '\'`)
	if err != nil {
		b.Fatal(err)
	}
	defer rows.Close() // on a failure too: the journal's Close waits for an open read
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			b.Fatal(err)
		}
		names = append(names, n)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		b.Fatal(err)
	}
	if len(names) == 0 {
		b.Fatal("no md_ triggers found")
	}
	j.wmu.Lock()
	defer j.wmu.Unlock()
	if _, err := j.w.ExecContext(bg, "DROP TRIGGER "+strings.Join(names, "; DROP TRIGGER ")); err != nil {
		b.Fatal(err)
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
