package main

import (
	"context"
	"errors"
	"flag"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseFlags(t *testing.T) {
	o, err := parseFlags(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.base.AFR != 0.017 || o.base.Bandwidth != 20e6 || o.base.NodeData != 4e12 || len(o.km) != 1 || o.km[0] != [2]int{4, 2} {
		t.Fatalf("defaults: %+v", o)
	}
	if c := o.config(1000, o.km[0], o.base.Bandwidth); c.ShardsPerNode != 1000 || c.Years != 2 {
		t.Fatalf("1000 nodes: %d shards per node, %v years; want 1000 and 2", c.ShardsPerNode, c.Years)
	}
	if _, err := parseFlags([]string{"-help"}, io.Discard); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("-help: %v", err)
	}
	for _, tc := range []struct{ args, want string }{
		{"-km 4-2", "is not k+m"},
		{"-nodes 5", "cannot hold k+m = 4+2"},
		{"-bandwidth fast", "-bandwidth"},
		{"-afr 0", "-afr"},
		{"-repair-time 6h", "exp:DURATION"},
		{"-zone-afr 1", "need -zones"},
		{"-nodes 10 -zones 11", "more zones"},
		{"-bogus", "meshsim -help"},
		{"extra", "unexpected argument"},
	} {
		_, err := parseFlags(strings.Fields(tc.args), io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one saying %q", tc.args, err, tc.want)
		}
	}
}

func TestParseBytes(t *testing.T) {
	for in, want := range map[string]float64{"20MB": 20e6, "20MB/s": 20e6, "1.5TB": 1.5e12, "100MiB": 100 << 20, "512": 512} {
		if got, err := parseBytes(in); err != nil || got != want {
			t.Errorf("%s: %v, %v; want %v", in, got, err, want)
		}
	}
}

// A -plot that cannot be written fails before the simulation, not after
// minutes of it.
func TestRunRefusesUnwritablePlotFirst(t *testing.T) {
	dir := t.TempDir()
	for _, path := range []string{filepath.Join(dir, "missing", "p.png"), dir} {
		o, err := parseFlags([]string{"-nodes", "6", "-years", "1e9", "-plot", path}, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err = run(ctx, o, io.Discard, io.Discard)
		cancel()
		if err == nil || !strings.Contains(err.Error(), "-plot") {
			t.Errorf("-plot %s: %v; want an error naming -plot before simulating", path, err)
		}
	}
}
