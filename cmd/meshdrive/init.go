package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/meshdrive/meshdrive/remote/node"
	remoteopen "github.com/meshdrive/meshdrive/remote/open"
)

// Embedded default grid: n node directories under DATA/nodes.
const (
	defaultK = 4
	defaultM = 2
)

// reachTimeout bounds the reachability check of each node at init.
const reachTimeout = 10 * time.Second

func runInit(e *env) error {
	fl := newFlagSet(e, "init", "init [--data DIR] [--node URL ...] [--k K --m M] [--zone-of URL=ZONE] [--passphrase-file F] [--token-file F] [--log-level L]", `
Create a drive: a random 256-bit master key wrapped under your passphrase
(argon2id + AES-256-GCM), stored in DATA/key.json and on every node, and the
drive config DATA/config.json (also stored, sealed, on every node).

With no --node the grid lives on this machine: 6 node directories under
DATA/nodes, k=4 m=2. With --node, each URL is one node:
  http(s)://[TOKEN@]host:port       a "meshdrive node serve" process
  s3://bucket/prefix?endpoint=host:port&region=R&secure=false
                                     an S3-compatible bucket (AWS_ACCESS_KEY_ID,
                                     AWS_SECRET_ACCESS_KEY from the environment)
  file:///dir or a path              a local directory
Every node must be reachable; init refuses to overwrite an existing drive, a
node that already holds one (or a copy of a drive key it cannot read, which
may be a drive's only way back), or one node given twice under two addresses
(localhost for 127.0.0.1, a symlink to a directory). The passphrase comes
from --passphrase-file, else $MESHDRIVE_PASSPHRASE, else a prompt (asked
twice).`)
	dataDir := dataDirFlag(e, fl)
	var nodes, zoneOf stringList
	fl.Var(&nodes, "node", "a node URL (repeat for each node)")
	k := fl.Int("k", 0, "data shards per segment (default: 4 with no --node; with nodes, those --m leaves, else nodes-2, or nodes-1 with fewer than 4 nodes)")
	m := fl.Int("m", 0, "parity shards per segment: how many nodes may be lost (default: 2 with no --node; with nodes, those --k leaves, else 2, or 1 with fewer than 4 nodes)")
	fl.Var(&zoneOf, "zone-of", "URL=ZONE: label a node's failure domain (repeatable)")
	passFile := fl.String("passphrase-file", "", "read the passphrase from this file")
	tokenFile := fl.String("token-file", "", "access token for http(s) nodes whose URL carries none")
	logLevel := fl.String("log-level", "warn", "log level: debug, info, warn, error")
	pos, err := parseFlags(e, fl, e.args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageError("init takes no arguments (got %q); nodes are given with --node URL", pos[0])
	}
	// 0 is the flags' "choose for me"; given by hand it is a mistake, not
	// a request for the default.
	var bad error
	fl.Visit(func(f *flag.Flag) {
		switch {
		case f.Name == "k" && *k < 1:
			bad = usageError("--k %d: a segment needs at least 1 data shard", *k)
		case f.Name == "m" && *m < 1:
			bad = usageError("--m %d: a drive needs at least 1 parity shard (with none, losing any node loses data, and uploads need k+1 nodes to answer)", *m)
		}
	})
	if bad != nil {
		return bad
	}
	dir, err := dataDir()
	if err != nil {
		return err
	}
	log, err := newLogger(e.stderr, *logLevel)
	if err != nil {
		return err
	}
	zones := map[string]string{}
	for _, z := range zoneOf {
		u, zone, ok := strings.Cut(z, "=")
		if !ok || u == "" || zone == "" {
			return usageError("--zone-of %q: want URL=ZONE", z)
		}
		zones[u] = zone
	}
	for u := range zones {
		found := false
		for _, n := range nodes {
			found = found || n == u
		}
		if !found {
			return usageError("--zone-of %s: no --node with that URL", u)
		}
	}
	token := ""
	if *tokenFile != "" {
		if token, err = readTokenFile(*tokenFile); err != nil {
			return err
		}
	}
	o := createOptions{dataDir: dir, nodes: nodes, k: *k, m: *m, zones: zones, token: token, log: log,
		pass: passphraseSource{file: *passFile, envVar: "MESHDRIVE_PASSPHRASE"}}
	ctx, stop := signalContext()
	defer stop()
	cfg, _, err := createDrive(ctx, e, o)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "created drive %s at %s: k=%d m=%d over %d nodes\n", cfg.DriveID, dir, cfg.K, cfg.M, len(cfg.Nodes))
	printProtectNotice(e.stdout, dir, cfg)
	return nil
}

type createOptions struct {
	dataDir string
	nodes   []string          // none: the embedded default grid
	k, m    int               // 0: defaults
	zones   map[string]string // node URL -> zone
	token   string            // for http(s) node URLs without userinfo
	pass    passphraseSource
	log     *slog.Logger
}

// createDrive makes a new drive in o.dataDir and returns its config and
// master key. On any error it removes what it made, so a failed init
// leaves nothing half-made behind.
func createDrive(ctx context.Context, e *env, o createOptions) (_ *Config, master []byte, err error) {
	dir := o.dataDir
	if fi, err := os.Stat(dir); err == nil && !fi.IsDir() {
		return nil, nil, fmt.Errorf("%s is a file, not a directory; choose another --data DIR", dir)
	}
	for _, f := range []string{configFile, keyFile} {
		if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
			return nil, nil, fmt.Errorf("a drive already exists at %s (%s); mount it, or choose another --data DIR", dir, f)
		}
	}
	cfg := &Config{Version: configVersion, BlockSize: defaultBlockSize, K: o.k, M: o.m, Generation: 1}
	if cfg.DriveID, err = newDriveID(); err != nil {
		return nil, nil, err
	}
	embedded := len(o.nodes) == 0
	given := map[string]string{} // node name -> its --node URL as given (token redacted)
	if embedded {
		if _, err := os.Stat(filepath.Join(dir, nodesDir)); err == nil {
			return nil, nil, fmt.Errorf("%s already exists; move it away or choose another --data DIR", filepath.Join(dir, nodesDir))
		}
		if cfg.K == 0 {
			cfg.K = defaultK
		}
		if cfg.M == 0 {
			cfg.M = defaultM
		}
		for i := range cfg.K + cfg.M {
			name := "node-" + strconv.Itoa(i+1)
			cfg.Nodes = append(cfg.Nodes, NodeConfig{Name: name, URL: filepath.Join(nodesDir, name)})
		}
	} else {
		seen := map[string]bool{}
		for i, u := range o.nodes {
			if seen[u] {
				return nil, nil, usageError("--node %s given twice", u)
			}
			seen[u] = true
			if err := remoteopen.CheckForm(u); err != nil {
				return nil, nil, usageError("--node: %v", err)
			}
			nu := withS3Region(withToken(escapeToken(u), o.token), os.Getenv("AWS_REGION"))
			if !strings.Contains(nu, "://") && !filepath.IsAbs(nu) {
				// A relative directory is relative to where init runs; the
				// config keeps it absolute (relative means the data dir).
				if nu, err = filepath.Abs(nu); err != nil {
					return nil, nil, err
				}
			}
			cfg.Nodes = append(cfg.Nodes, NodeConfig{Name: "node-" + strconv.Itoa(i+1), URL: nu, Zone: o.zones[u]})
			given[cfg.Nodes[i].Name] = redactURL(u)
		}
		if cfg.K == 0 && cfg.M == 0 {
			if len(cfg.Nodes) < 2 {
				return nil, nil, usageError("a drive needs at least 2 nodes (one for data, one for parity), got %d; give another --node URL", len(cfg.Nodes))
			}
			cfg.K, cfg.M = defaultKM(len(cfg.Nodes))
		} else if cfg.K == 0 {
			cfg.K = len(cfg.Nodes) - cfg.M
		} else if cfg.M == 0 {
			cfg.M = len(cfg.Nodes) - cfg.K
		}
	}
	if err := checkKM(cfg.K, cfg.M, len(cfg.Nodes)); err != nil {
		return nil, nil, usageError("%v", err)
	}

	// Passphrase first: a typo there should cost nothing.
	pass, err := o.pass.read(e, "New passphrase for the drive at "+dir, true)
	if err != nil {
		return nil, nil, err
	}

	var made []string // paths to remove on failure, most recent last
	defer func() {
		if err != nil {
			for i := len(made) - 1; i >= 0; i-- {
				os.RemoveAll(made[i])
			}
		}
	}()
	// Nodes next: an unreachable node stops init before anything is made.
	// Opening a directory node makes it (and marks it): a failed init
	// removes what it made there, and nothing else.
	if !embedded {
		undo, undoBuckets := nodeDirsUndo(cfg), s3BucketsUndo(ctx, e, cfg, o.log)
		defer func() {
			if err != nil {
				undo()
				undoBuckets()
			}
		}()
		if err := checkReachable(ctx, dir, cfg, o.log); err != nil {
			return nil, nil, err
		}
	}
	if _, statErr := os.Stat(dir); errors.Is(statErr, os.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, nil, fmt.Errorf("cannot create the data dir: %w", err)
		}
		made = append(made, dir)
	} else if statErr != nil {
		return nil, nil, fmt.Errorf("data dir: %w", statErr)
	}
	if embedded {
		if err := os.MkdirAll(filepath.Join(dir, nodesDir), 0o700); err != nil {
			return nil, nil, fmt.Errorf("cannot create node dirs: %w", err)
		}
		made = append(made, filepath.Join(dir, nodesDir))
	}

	master, wrapped, err := remoteopen.NewKey(pass, kdfParams(e))
	if err != nil {
		return nil, nil, err
	}
	grid, sealer, err := openGrid(ctx, dir, cfg, master, o.log, true)
	if err != nil {
		return nil, nil, err
	}
	if !embedded {
		if err := checkDistinct(ctx, grid, given); err != nil {
			return nil, nil, err
		}
		if _, gerr := grid.GetMeta(ctx, metaKey); gerr == nil {
			return nil, nil, heldDrive(ctx, grid, given)
		} else if !errors.Is(gerr, remoteopen.ErrNotFound) {
			// A node holds a key it could not serve (a damaged copy, a
			// failing disk): it may be a drive's only way back, so a new
			// key is never written over it.
			return nil, nil, fmt.Errorf("cannot tell whether the nodes already hold a meshdrive drive: %v; "+
				"init writes a new drive only on nodes that all answer that they hold none. Fix the node, or, "+
				"if what it holds is no drive you need, empty it (its meta objects) and run init again", gerr)
		}
	}
	// Each node's id, so a mount can tell the node's directory from
	// another (the wrong disk mounted at its path, another grid's node).
	for i, h := range grid.Health(ctx) {
		cfg.Nodes[i].ID = h.Info.ID
	}
	cfgBytes, err := cfg.marshal()
	if err != nil {
		return nil, nil, err
	}
	n := len(cfg.Nodes)
	// No node held a drive key (heldDrive): every copy of the key and
	// config is this init's, and a failed init takes them back, or the
	// next init would find them and refuse the nodes.
	defer func() {
		if err != nil {
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), reachTimeout)
			grid.DeleteMeta(dctx, metaKey)
			grid.DeleteMeta(dctx, metaConfig)
			cancel()
		}
	}()
	if got, err := grid.PutMeta(ctx, metaKey, wrapped); err != nil || got < n {
		return nil, nil, fmt.Errorf("only %d of %d nodes stored the drive key (%v); check the nodes and run init again", got, n, err)
	}
	if got, err := grid.PutMeta(ctx, metaConfig, sealer.SealMeta(configSealName, cfgBytes)); err != nil || got < n {
		return nil, nil, fmt.Errorf("only %d of %d nodes stored the drive config (%v); check the nodes and run init again", got, n, err)
	}
	kp := filepath.Join(dir, keyFile)
	if err := writeFileAtomic(kp, wrapped, 0o600); err != nil {
		return nil, nil, fmt.Errorf("cannot write %s: %w", kp, err)
	}
	made = append(made, kp)
	cp := filepath.Join(dir, configFile)
	if err := writeFileAtomic(cp, cfgBytes, 0o600); err != nil {
		return nil, nil, fmt.Errorf("cannot write %s: %w", cp, err)
	}
	return cfg, master, nil
}

// nodeDirsUndo notes the state of cfg's directory nodes before init opens
// them (which makes and marks them) and returns what removes exactly what
// init then made there: a missing directory's topmost folder that did not
// exist yet; in an existing folder that was not a node's, every entry that
// was not there before (the mark, meta/ of a probe).
func nodeDirsUndo(cfg *Config) (undo func()) {
	var made []string                      // removed whole
	before := map[string]map[string]bool{} // existing unmarked folder -> its entries
	for _, n := range cfg.Nodes {
		p, local := remoteopen.LocalPath(n.URL)
		if !local || !filepath.IsAbs(p) {
			continue
		}
		p = filepath.Clean(p)
		if _, err := os.Lstat(p); err == nil {
			if _, err := os.Lstat(filepath.Join(p, node.MarkName)); !errors.Is(err, os.ErrNotExist) {
				continue // already a node's: init makes nothing there
			}
			ents, err := os.ReadDir(p)
			if err != nil {
				continue
			}
			had := map[string]bool{}
			for _, e := range ents {
				had[e.Name()] = true
			}
			before[p] = had
			continue
		}
		top := p
		for parent := filepath.Dir(top); parent != top; parent = filepath.Dir(top) {
			if _, err := os.Lstat(parent); err == nil {
				break
			}
			top = parent
		}
		made = append(made, top)
	}
	return func() {
		for _, p := range made {
			os.RemoveAll(p)
		}
		for p, had := range before {
			ents, _ := os.ReadDir(p)
			for _, e := range ents {
				if !had[e.Name()] {
					os.RemoveAll(filepath.Join(p, e.Name()))
				}
			}
		}
	}
}

// s3BucketsUndo notes which buckets of cfg's S3 nodes are missing before
// init opens them (which makes them) and returns what removes, with
// everything in them, the ones init then made. A bucket that existed, or
// whose state could not be read, is never touched.
func s3BucketsUndo(ctx context.Context, e *env, cfg *Config, log *slog.Logger) (undo func()) {
	missing := make([]string, len(cfg.Nodes)) // a node's URL: its bucket was missing
	ids := make([]string, len(cfg.Nodes))
	var g errgroup.Group
	g.SetLimit(8)
	for i, n := range cfg.Nodes {
		g.Go(func() error {
			bctx, cancel := context.WithTimeout(ctx, openTimeout)
			defer cancel()
			id, exists, ok, err := remoteopen.Bucket(bctx, n.URL, remoteopen.Options{Logger: log})
			if ok && err == nil && !exists {
				missing[i], ids[i] = n.URL, id
			}
			return nil
		})
	}
	g.Wait()
	return func() {
		done := map[string]bool{} // nodes may share a bucket (their prefixes differ)
		for i, u := range missing {
			if u == "" || done[ids[i]] {
				continue
			}
			done[ids[i]] = true
			// Also after a ^C: the bucket is init's to take back.
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			err := remoteopen.RemoveBucket(rctx, u, remoteopen.Options{Logger: log})
			cancel()
			if err != nil {
				fmt.Fprintf(e.stderr, "meshdrive: init made bucket %s and could not remove it (%v); delete it yourself\n", ids[i], err)
			}
		}
	}
}

// kdfParams are the argon2id parameters of new keys.
func kdfParams(e *env) remoteopen.KeyParams {
	if testHooks.kdf != nil {
		if p, ok := testHooks.kdf(e); ok {
			return p
		}
	}
	return remoteopen.DefaultKeyParams()
}

// checkReachable asks every node for its info, in parallel, and names the
// first that does not answer.
func checkReachable(ctx context.Context, dir string, cfg *Config, log *slog.Logger) error {
	members, err := remoteopen.Members(ctx, gridOptions(dir, cfg, nil, log, true, remoteopen.Stack{}))
	if err != nil {
		return err
	}
	errs := make([]error, len(members))
	var g errgroup.Group
	g.SetLimit(8)
	for i, mb := range members {
		g.Go(func() error {
			cctx, cancel := context.WithTimeout(ctx, reachTimeout)
			defer cancel()
			_, errs[i] = mb.Store.Info(cctx)
			return nil
		})
	}
	_ = g.Wait()
	for i, err := range errs {
		if err != nil {
			what := "unreachable"
			if errors.Is(err, remoteopen.ErrUnauthorized) {
				what = "refused the access token"
			}
			return fmt.Errorf("node %s is %s (%v); check the URL and that the node runs (meshdrive node serve)", redactURL(cfg.Nodes[i].URL), what, err)
		}
	}
	return nil
}

// checkDistinct refuses two nodes that are one store under two addresses
// (a URL spelled otherwise, a symlink to a directory): a probe object put
// on each node must appear on no other. Two names for one store would put
// two "distinct" shards of a segment on one disk. given maps node names
// to the URLs the user gave.
func checkDistinct(ctx context.Context, grid *remoteopen.Grid, given map[string]string) error {
	pctx, cancel := context.WithTimeout(ctx, reachTimeout)
	defer cancel()
	aliases, err := grid.Aliases(pctx)
	if len(aliases) > 0 {
		a := aliases[0]
		return fmt.Errorf("--node %s is the same node as --node %s: a probe object written to it appeared there; give another node",
			given[a.Node], given[a.SameAs])
	}
	if err != nil {
		return fmt.Errorf("cannot check that the nodes are distinct stores (a probe object failed: %v); check the nodes and run init again", err)
	}
	return nil
}

// heldDrive is the error of an init that found meta/key on a node: it
// names the nodes (by the URL given: the user knows no node names yet)
// that hold a good copy, or one under its pre-2026-12 name.
func heldDrive(ctx context.Context, grid *remoteopen.Grid, given map[string]string) error {
	var holders []string
	seen := map[string]bool{}
	for _, name := range []string{metaKey, "meta/" + metaKey} {
		for _, c := range grid.GetMetaAll(ctx, name) {
			if c.Err == nil && !seen[c.Node] {
				seen[c.Node] = true
				holders = append(holders, given[c.Node])
			}
		}
	}
	if len(holders) == 0 { // a copy gone since GetMeta found it
		return errors.New("a node already holds a meshdrive drive (meta/key found); use empty nodes for a new drive (" + oneDrivePerNode + ")")
	}
	also := ""
	if len(holders) > 1 {
		also = "; also on " + strings.Join(holders[1:], ", ")
	}
	return fmt.Errorf("--node %s already holds a meshdrive drive (meta/key found%s); use empty nodes for a new drive (%s)", holders[0], also, oneDrivePerNode)
}

// oneDrivePerNode says how two drives share a machine or a bucket.
const oneDrivePerNode = "a node holds one drive: for another drive on the same machine run another meshdrive node serve " +
	"with its own --dir and --listen port, and in an S3 bucket give each drive its own prefix, s3://BUCKET/PREFIX"

// tokenHostPort is what follows the token in http://TOKEN@host:port.
var tokenHostPort = regexp.MustCompile(`^([A-Za-z0-9.\-]+|\[[0-9A-Fa-f:.]+\]):[0-9]+/?$`)

// escapeToken percent-encodes the token of an http(s) node URL written
// http://TOKEN@host:port when the token holds a character a URL's userinfo
// cannot (a base64 token's "/", one time in two): url.Parse would take the
// part before the "/" for the host, so the drive dialed a host named after
// the token's start and printed the token in its error. Any other URL is
// returned as it is.
func escapeToken(u string) string {
	scheme, rest, ok := strings.Cut(u, "://")
	if !ok || !(strings.EqualFold(scheme, "http") || strings.EqualFold(scheme, "https")) {
		return u
	}
	at := strings.LastIndex(rest, "@")
	if at < 0 {
		return u
	}
	user, host := rest[:at], rest[at+1:]
	if !strings.ContainsAny(user, "/?#") || !tokenHostPort.MatchString(host) {
		return u // already well formed, or not TOKEN@host:port: not ours to guess
	}
	if un, err := url.PathUnescape(user); err == nil {
		user = un
	}
	return scheme + "://" + url.User(user).String() + "@" + host
}

// withToken puts token into an http(s) URL that carries none.
func withToken(u, token string) string {
	if token == "" || !(strings.HasPrefix(u, "http://") || strings.HasPrefix(u, "https://")) {
		return u
	}
	p, err := url.Parse(u)
	if err != nil || p.User != nil {
		return u
	}
	p.User = url.User(token)
	return p.String()
}

// withS3Region writes region into an s3:// URL that names none. An S3
// store takes its region from the URL, else from $AWS_REGION (else
// us-east-1): a drive made with $AWS_REGION set must keep it in its node
// URLs, or a mount, a recover or node add without it (a systemd unit, a
// mount from fstab, another computer) signs for another region and the
// server refuses every request.
func withS3Region(u, region string) string {
	scheme, _, ok := strings.Cut(u, "://")
	if region == "" || !ok || !strings.EqualFold(scheme, "s3") || strings.Contains(u, "#") {
		return u
	}
	p, err := url.Parse(u)
	if err != nil {
		return u
	}
	if q, err := url.ParseQuery(p.RawQuery); err != nil || q.Has("region") {
		return u
	}
	sep := "&"
	if p.RawQuery == "" {
		sep = "?"
		if strings.HasSuffix(u, "?") {
			sep = ""
		}
	}
	return u + sep + "region=" + url.QueryEscape(region)
}

// printProtectNotice says where the drive lives and how to keep it safe.
func printProtectNotice(w io.Writer, dir string, cfg *Config) {
	embedded := len(cfg.Nodes) > 0 && !strings.Contains(cfg.Nodes[0].URL, "://") && !filepath.IsAbs(cfg.Nodes[0].URL)
	fmt.Fprintf(w, "\nYour drive lives in %s.\n", dir)
	if embedded {
		fmt.Fprintf(w, "Its grid is on this machine: %d node directories under %s (k=%d m=%d), so it\n"+
			"survives %d damaged node directories but not the loss of this disk. Put nodes on\n"+
			"other machines for that (meshdrive node add URL, then meshdrive node drain node-N).\n",
			len(cfg.Nodes), filepath.Join(dir, nodesDir), cfg.K, cfg.M, cfg.M)
	} else {
		fmt.Fprintf(w, "Its data is spread over %d nodes (k=%d m=%d): any %d of them can be lost.\n", len(cfg.Nodes), cfg.K, cfg.M, cfg.M)
	}
	fmt.Fprintf(w, "Every byte is encrypted with a key that only your passphrase unlocks. The wrapped key,\n"+
		"the node list and the drive's metadata are also stored on every node, so the\n"+
		"passphrase and one node are enough to rebuild the drive elsewhere: meshdrive recover --node URL.\n"+
		"Keep the passphrase in a password manager: without it nobody, you included, can read the drive.\n\n")
}
