package main

import (
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

// Counted progress on a non-terminal: a line when a phase starts and when
// it ends, none for the reports in between that come within lineEvery.
func TestCountLines(t *testing.T) {
	var b strings.Builder
	c := &countLines{w: &b, what: "segments"}
	c.report("drain", 0, 100)
	for i := 1; i < 100; i++ {
		c.report("drain", i, 100)
	}
	c.report("drain", 100, 100)
	c.report("drain", 100, 100)
	c.report("verify", 1, 5)
	want := "drain: 0 of 100 segments\ndrain: 100 of 100 segments\nverify: 1 of 5 segments\n"
	if b.String() != want {
		t.Errorf("lines:\n%s\nwant:\n%s", b.String(), want)
	}
	// A slow phase gets a line every lineEvery.
	synctest.Test(t, func(t *testing.T) {
		var b strings.Builder
		c := &countLines{w: &b, what: "segments"}
		for i := range 10 {
			c.report("drain", i, 10)
			time.Sleep(lineEvery / 2)
		}
		if n := strings.Count(b.String(), "\n"); n != 5 {
			t.Errorf("%d lines for 10 reports %v apart, want 5:\n%s", n, lineEvery/2, b.String())
		}
	})
}
