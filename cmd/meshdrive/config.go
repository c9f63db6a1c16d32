package main

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/meshdrive/meshdrive/fs"
	remoteopen "github.com/meshdrive/meshdrive/remote/open"
)

// configVersion is the config.json format this program writes and reads.
const configVersion = 1

// defaultBlockSize is the block size of new drives.
const defaultBlockSize = 4 << 20

// Files in the data dir (docs/DESIGN.md, "Data dir").
const (
	configFile  = "config.json"
	keyFile     = "key.json"
	lockFile    = "lock"
	controlSock = "control.sock"
	logFile     = "meshdrive.log"
	nodesDir    = "nodes"
	cacheDir    = "cache"
)

// Meta object names kept on every node.
const (
	metaKey    = remoteopen.MetaKey    // the wrapped key, as in key.json (already encrypted)
	metaConfig = remoteopen.MetaConfig // config.json, sealed with the drive's meta key
	// configSealName is what the sealed config is bound to (its name
	// before 2026-12; kept so every drive's config opens).
	configSealName = "meta/config"
)

// Config is DATA/config.json.
type Config struct {
	Version   int          `json:"version"`
	DriveID   string       `json:"drive_id"`
	K         int          `json:"k"`
	M         int          `json:"m"`
	BlockSize int          `json:"block_size"`
	Nodes     []NodeConfig `json:"nodes"`
	// MetadataInterval bounds how far the grid's copy of the metadata
	// trails the journal (a Go duration, "30s" when empty); mount
	// --metadata-interval overrides it.
	MetadataInterval string `json:"metadata_interval,omitempty"`
	// Retention says which metadata checkpoints stay snapshots
	// (fs.ParseRetention; the default when empty).
	Retention string `json:"retention,omitempty"`
	// BandwidthSchedule says which upload and download limits are in
	// force at what time of day (remote/limit.ParseSchedule), for example
	// "08:00-18:00 1MiB/s, otherwise unlimited"; outside its windows (and
	// when empty) mount's --upload-limit and --download-limit apply. The
	// mount re-reads it every 2 s.
	BandwidthSchedule string `json:"bandwidth_schedule,omitempty"`
	// Generation counts the changes of the node list (init writes 1,
	// each node add, drain or remove one more): a node that was down
	// during a change keeps an older copy, and recover takes the highest
	// it finds on the nodes. 0: written before 2026-12-07.
	Generation uint64 `json:"generation,omitempty"`
}

// NodeConfig is one node of the grid. URL is "http(s)://[token@]host:port",
// "s3://bucket/prefix?endpoint=..", "file:///dir" or a directory path;
// a relative path is relative to the data dir (the embedded default grid
// uses "nodes/node-N").
type NodeConfig struct {
	Name string `json:"name"`
	URL  string `json:"url"`
	Zone string `json:"zone,omitempty"`
	// Draining: meshdrive node drain began and has not finished; the node
	// takes no new shard and the mount moves its shards off.
	Draining bool `json:"draining,omitempty"`
	// ID is the node's id (the random one in its directory's mark) as
	// init or node add found it: a directory or node server of another
	// id is another node's, and refused. Empty: recorded before ids
	// (2026-12), or a node without one (S3); nothing is checked.
	ID string `json:"id,omitempty"`
}

// validNodeID: a node's id as a mark holds it, 32 lowercase hex digits.
func validNodeID(id string) bool {
	_, err := hex.DecodeString(id)
	return err == nil && len(id) == 32 && strings.ToLower(id) == id
}

func newDriveID() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

// errNoDrive: DATA/config.json does not exist.
var errNoDrive = errors.New("no drive")

// loadConfig reads and checks DATA/config.json. Every error is one line
// naming the file and saying what to do.
func loadConfig(dataDir string) (*Config, error) {
	path := filepath.Join(dataDir, configFile)
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w at %s (no %s); create one with meshdrive init --data %s", errNoDrive, dataDir, configFile, dataDir)
	}
	if errors.Is(err, syscall.ENOTDIR) {
		return nil, fmt.Errorf("%s is not a directory: --data names a drive's data dir; check the path", dataDir)
	}
	if errors.Is(err, os.ErrPermission) {
		return nil, fmt.Errorf("no permission to read the drive config %s: run meshdrive as the user who owns the drive, or use your own with --data DIR", path)
	}
	if err != nil {
		return nil, fmt.Errorf("cannot read drive config %s: %w", path, err)
	}
	c, err := parseConfig(data)
	if err != nil {
		return nil, fmt.Errorf("drive config %s is corrupt (%v); restore it from a backup or recover the drive from a node", path, err)
	}
	return c, nil
}

// parseConfig decodes and validates config bytes (from disk or a node).
func parseConfig(data []byte) (*Config, error) {
	var c Config
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("not valid JSON: %v", err)
	}
	if dec.More() {
		return nil, errors.New("trailing data after the JSON object")
	}
	if c.Version != configVersion {
		return nil, fmt.Errorf("version %d, this meshdrive reads version %d", c.Version, configVersion)
	}
	if err := c.validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

func (c *Config) validate() error {
	if len(c.DriveID) != 32 {
		return fmt.Errorf("drive_id %q is not 32 hex digits", c.DriveID)
	}
	if _, err := hex.DecodeString(c.DriveID); err != nil {
		return fmt.Errorf("drive_id %q is not hex", c.DriveID)
	}
	if err := checkKM(c.K, c.M, len(c.Nodes)); err != nil {
		return err
	}
	if c.BlockSize < 4096 || c.BlockSize > 64<<20 || c.BlockSize&(c.BlockSize-1) != 0 {
		return fmt.Errorf("block_size %d is not a power of two between 4 KiB and 64 MiB", c.BlockSize)
	}
	if c.MetadataInterval != "" {
		if d, err := time.ParseDuration(c.MetadataInterval); err != nil || d < time.Second {
			return fmt.Errorf("metadata_interval %q: want a duration of at least 1s, like 30s", c.MetadataInterval)
		}
	}
	if c.Retention != "" {
		if _, err := fs.ParseRetention(c.Retention); err != nil {
			return fmt.Errorf("retention: %v", err)
		}
	}

	names := map[string]bool{}
	for i, n := range c.Nodes {
		if n.Name == "" || n.URL == "" {
			return fmt.Errorf("node %d has no name or url", i+1)
		}
		if names[n.Name] {
			return fmt.Errorf("node name %q appears twice", n.Name)
		}
		names[n.Name] = true
		if _, err := hex.DecodeString(n.ID); err != nil || n.ID != "" && len(n.ID) != 32 {
			return fmt.Errorf("node %s: id %q is not 32 hex digits", n.Name, n.ID)
		}
	}
	return nil
}

// checkKM checks the coding against the number of nodes.
func checkKM(k, m, n int) error {
	if k < 1 || m < 1 || k+m > 255 {
		return fmt.Errorf("k=%d m=%d: want k >= 1, m >= 1, k+m <= 255", k, m)
	}
	if k+m > n {
		return fmt.Errorf("k=%d m=%d needs at least %d nodes, have %d", k, m, k+m, n)
	}
	return nil
}

// defaultKM picks the coding for n nodes when --k/--m are not given: two
// parity shards when there are at least 4 nodes, one otherwise.
func defaultKM(n int) (k, m int) {
	m = 1
	if n >= 4 {
		m = 2
	}
	return n - m, m
}

func (c *Config) marshal() ([]byte, error) {
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// nodeURL resolves a node URL for remote/open: relative directory paths
// are taken relative to the data dir.
func nodeURL(dataDir, u string) string {
	if strings.Contains(u, "://") || filepath.IsAbs(u) {
		return u
	}
	return filepath.Join(dataDir, u)
}

// redactURL hides a token or password in a node URL for logs and status.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return s
	}
	u.User = url.User("xxxxx")
	return u.String()
}

// writeFileAtomic writes data to path via a temp file, fsync and rename.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after the rename
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
