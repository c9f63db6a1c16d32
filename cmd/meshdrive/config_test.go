package main

import (
	"strings"
	"testing"

	"github.com/meshdrive/meshdrive/fs"
)

func validConfig() *Config {
	c := &Config{Version: 1, DriveID: strings.Repeat("ab", 16), K: 2, M: 1, BlockSize: 1 << 20}
	for _, n := range []string{"a", "b", "c"} {
		c.Nodes = append(c.Nodes, NodeConfig{Name: n, URL: "nodes/" + n})
	}
	return c
}

func TestParseConfig(t *testing.T) {
	good, _ := validConfig().marshal()
	if _, err := parseConfig(good); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	bad := map[string]func(c *Config){
		"version":    func(c *Config) { c.Version = 2 },
		"drive_id":   func(c *Config) { c.DriveID = "xyz" },
		"k=0":        func(c *Config) { c.K = 0 },
		"needs":      func(c *Config) { c.M = 2 },
		"block_size": func(c *Config) { c.BlockSize = 1000 },
		"twice":      func(c *Config) { c.Nodes[1].Name = "a" },
		"no name":    func(c *Config) { c.Nodes[0].URL = "" },
	}
	for want, f := range bad {
		c := validConfig()
		f(c)
		b, _ := c.marshal()
		if _, err := parseConfig(b); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v", want, err)
		}
	}
	for _, s := range []string{"", "{", `{"version":1,"extra":1}`, `{"version":1}{}`} {
		if _, err := parseConfig([]byte(s)); err == nil {
			t.Errorf("%q parsed", s)
		}
	}
}

func TestDefaultKM(t *testing.T) {
	for n, want := range map[int][2]int{2: {1, 1}, 3: {2, 1}, 4: {2, 2}, 6: {4, 2}, 10: {8, 2}} {
		k, m := defaultKM(n)
		if k != want[0] || m != want[1] || checkKM(k, m, n) != nil {
			t.Errorf("defaultKM(%d) = %d, %d", n, k, m)
		}
	}
}

func TestParseBytes(t *testing.T) {
	for s, want := range map[string]int64{"0": 0, "4096": 4096, "4GiB": 4 << 30, "10M": 10e6, "1.5KiB": 1536, "7B": 7, "2KB": 2000} {
		got, err := parseBytes(s)
		if err != nil || got != want {
			t.Errorf("parseBytes(%q) = %d, %v; want %d", s, got, err, want)
		}
	}
	for _, s := range []string{"", "x", "-1", "GiB", "1e30"} {
		if _, err := parseBytes(s); err == nil {
			t.Errorf("parseBytes(%q) accepted", s)
		}
	}
}

func TestURLHelpers(t *testing.T) {
	if got := redactURL("http://sekrit@host:1"); strings.Contains(got, "sekrit") {
		t.Errorf("redact: %s", got)
	}
	if got := withToken("http://host:1", "tok"); got != "http://tok@host:1" {
		t.Errorf("withToken: %s", got)
	}
	if got := withToken("http://a@host:1", "tok"); got != "http://a@host:1" {
		t.Errorf("withToken kept: %s", got)
	}
	if got := withToken("s3://b/p", "tok"); got != "s3://b/p" {
		t.Errorf("withToken s3: %s", got)
	}
	if got := nodeURL("/data", "nodes/node-1"); got != "/data/nodes/node-1" {
		t.Errorf("nodeURL: %s", got)
	}
	if got := unescapeMount(`/a\040b\\x`); got != `/a b\\x` {
		t.Errorf("unescapeMount: %q", got)
	}
}

// FuzzParseConfig: config bytes come from disk and (sealed) from nodes.
func FuzzParseConfig(f *testing.F) {
	good, _ := validConfig().marshal()
	f.Add(good)
	f.Add([]byte(`{"version":1}`))
	f.Add([]byte(`{"version":1,"k":-1,"m":300,"nodes":[{"name":"a","url":"b"}]}`))
	f.Add([]byte("\x00"))
	inf := validConfig()
	inf.Retention = "daily=Infd"
	b, _ := inf.marshal()
	f.Add(b)
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := parseConfig(data)
		if err != nil {
			return
		}
		if checkKM(c.K, c.M, len(c.Nodes)) != nil || c.Version != configVersion {
			t.Fatalf("accepted an invalid config: %+v", c)
		}
		if c.Retention != "" {
			r, _ := fs.ParseRetention(c.Retention)
			if r.Last < 0 || r.Hourly < 0 || r.Daily < 0 || r.Weekly < 0 {
				t.Fatalf("accepted a retention that keeps nothing: %q is %+v", c.Retention, r)
			}
		}
		b, err := c.marshal()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := parseConfig(b); err != nil {
			t.Fatalf("re-encoded config does not parse: %v", err)
		}
	})
}
