package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/meshdrive/meshdrive/fs"
	remoteopen "github.com/meshdrive/meshdrive/remote/open"
)

func runRecover(e *env) error {
	fl := newFlagSet(e, "recover", "recover --node URL [--data DIR] [--passphrase-file F] [--log-level L]", `
Rebuild a drive on this machine from its grid: the passphrase and the address
of one of its nodes are enough. recover fetches the wrapped key and the drive
config from that node (the config names the other nodes), asks for the
passphrase, reads the newest root record from every node, and rebuilds the
journal from the metadata checkpoints it names. File data stays on the grid
and is fetched when read, so recovery time grows with the number of files,
not their size. Then mount works as usual.

DIR must be empty, or hold only the nodes folder of its own default grid
(its journal and config lost: recover --node DIR/nodes/node-1 rebuilds the
drive around it); nothing is written to it unless recovery succeeds.
Everything that was grid-durable (meshdrive sync, or about 30 seconds after a
change while nodes were reachable) comes back, snapshots included.`)
	dataDir := dataDirFlag(e, fl)
	node := fl.String("node", "", "URL of one node of the drive (http://[TOKEN@]host:port, s3://..., or a directory)")
	passFile := fl.String("passphrase-file", "", "read the passphrase from this file")
	logLevel := fl.String("log-level", "warn", "log level: debug, info, warn, error")
	pos, err := parseFlags(e, fl, e.args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usageError("recover takes no arguments; see meshdrive recover --help")
	}
	if *node == "" {
		return usageError("recover needs --node URL: the address of one node of the drive")
	}
	*node = escapeToken(*node) // a "/" in http://TOKEN@host:port
	dir, err := dataDir()
	if err != nil {
		return err
	}
	log, err := newLogger(e.stderr, *logLevel)
	if err != nil {
		return err
	}
	if fi, err := os.Stat(dir); err == nil && !fi.IsDir() {
		return fmt.Errorf("%s is a file, not a directory; recover into an empty or new --data DIR", dir)
	}
	// In place: the node given is one of dir's own embedded grid
	// (DIR/nodes/NAME), whose journal and config were lost; the drive is
	// rebuilt around its nodes folder, which is all dir may hold.
	inPlace := ownNodes(*node, dir)
	if ents, err := os.ReadDir(dir); err == nil && len(ents) > 0 {
		if _, err := os.Stat(filepath.Join(dir, configFile)); err == nil {
			return fmt.Errorf("a drive already exists at %s; recover into an empty or new --data DIR", dir)
		}
		if inPlace && (len(ents) > 1 || ents[0].Name() != nodesDir) {
			return fmt.Errorf("data dir %s holds more than its nodes folder; move everything but %s out of it, then recover again", dir, filepath.Join(dir, nodesDir))
		}
		if !inPlace {
			return fmt.Errorf("data dir %s is not empty; recover into an empty or new --data DIR", dir)
		}
	}
	ctx, stop := signalContext()
	defer stop()

	// The node named on the command line: the wrapped key and the config.
	// A local node must exist: opening one makes its directory.
	if p, ok := remoteopen.LocalPath(*node); ok {
		if fi, err := os.Stat(p); err != nil || !fi.IsDir() {
			return fmt.Errorf("node %s: no such directory; check the path of the node's directory", *node)
		}
	}
	octx, cancel := context.WithTimeout(ctx, 15*time.Second)
	st, err := remoteopen.Store(octx, *node, remoteopen.Options{Logger: log})
	cancel()
	if err != nil {
		return fmt.Errorf("cannot open node %s: %w", redactURL(*node), err)
	}
	gctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	wrapped, err := remoteopen.GetMeta(gctx, st, remoteopen.MetaKey)
	cancel()
	switch {
	case errors.Is(err, remoteopen.ErrNotFound):
		return fmt.Errorf("node %s holds no meshdrive drive (no drive key on it); check the address", redactURL(*node))
	case err != nil:
		return fmt.Errorf("cannot read the drive key from node %s: %w; check that the node is up and the address (and token) right", redactURL(*node), err)
	}
	if _, err := remoteopen.DecodeKey(wrapped); err != nil {
		return fmt.Errorf("the drive key on node %s is corrupt (%v); try another node of the drive", redactURL(*node), err)
	}
	gctx, cancel = context.WithTimeout(ctx, 30*time.Second)
	sealedCfg, err := remoteopen.GetMeta(gctx, st, remoteopen.MetaConfig)
	cancel()
	if err != nil {
		return fmt.Errorf("cannot read the drive config from node %s: %w; try another node of the drive", redactURL(*node), err)
	}
	pass, err := passphraseSource{file: *passFile, envVar: "MESHDRIVE_PASSPHRASE"}.read(e, "Passphrase for the drive on "+redactURL(*node), false)
	if err != nil {
		return err
	}
	master, err := remoteopen.UnwrapKey(wrapped, pass)
	if errors.Is(err, remoteopen.ErrWrongPassphrase) {
		return fmt.Errorf("wrong passphrase for the drive on node %s (key check failed); nothing was written. "+
			"If the passphrase was changed (meshdrive passwd) while this node was down, it still holds the key under the one before: "+
			"try another node of the drive, or that older passphrase", redactURL(*node))
	}
	if err != nil {
		return fmt.Errorf("drive key on node %s: %w", redactURL(*node), err)
	}
	sealer, err := remoteopen.NewSealer(master)
	if err != nil {
		return err
	}
	cfgBytes, err := sealer.OpenMeta(configSealName, sealedCfg)
	if err != nil {
		return fmt.Errorf("the drive config on node %s does not open with this drive's key (%v); try another node", redactURL(*node), err)
	}
	cfg, err := parseConfig(cfgBytes)
	if err != nil {
		return fmt.Errorf("the drive config on node %s is corrupt (%v); try another node", redactURL(*node), err)
	}
	rebaseEmbedded(cfg, *node, inPlace)

	// Build everything in a sibling of dir, renamed into place at the end.
	parent := filepath.Dir(dir)
	if err := os.MkdirAll(parent, 0o700); err != nil {
		return fmt.Errorf("cannot create %s: %w", parent, err)
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(dir)+".recover-")
	if err != nil {
		return fmt.Errorf("cannot create a work dir beside %s: %w", dir, err)
	}
	done := false
	defer func() {
		if !done {
			os.RemoveAll(tmp)
		}
	}()
	grid, err := recoverGrid(ctx, dir, cfg, master, log)
	if err != nil {
		return err
	}
	// The node given may have been down when the node list last changed:
	// the config with the highest generation on the nodes it names wins.
	if newer, from := newestConfig(ctx, grid, sealer, cfg); newer != nil {
		fmt.Fprintf(e.stderr, "meshdrive: node %s holds a newer drive config than node %s (change %d against %d): recovering with its node list\n",
			from, redactURL(*node), newer.Generation, cfg.Generation)
		rebaseEmbedded(newer, *node, inPlace)
		cfg = newer
		if grid, err = recoverGrid(ctx, dir, cfg, master, log); err != nil {
			return err
		}
	}
	start := time.Now()
	root, err := fs.ReadRoot(ctx, grid, sealer, log)
	var noRoot *remoteopen.NoRootError
	switch {
	case errors.Is(err, remoteopen.ErrNoRoot):
		return fmt.Errorf("the drive on these nodes has no metadata checkpoint on the grid yet (it was last used by a meshdrive older than 2026-12, or never synced); nothing to recover: %s", neverShipped)
	case errors.As(err, &noRoot) && noRoot.Answered == 0:
		return fmt.Errorf("none of the drive's %d nodes could be read (%v): make them reachable (start them; a node directory must be where the drive config names it) and recover again; nothing was written",
			len(noRoot.Unread), noRoot.Err)
	case errors.As(err, &noRoot):
		unread := strings.Join(noRoot.Unread, ", ")
		return fmt.Errorf("the %d nodes recover could read hold no metadata checkpoint of this drive, and %s could not be read (%v). "+
			"If the drive ever shipped its metadata (meshdrive sync, or a mount with nodes up for about 30 seconds), it may be only there: "+
			"make %s reachable (start it; a node directory must be where the drive config names it) and recover again; "+
			"if it never did, there is nothing on the grid to recover: %s",
			noRoot.Answered, unread, noRoot.Err, unread, neverShipped)
	case err != nil:
		return fmt.Errorf("cannot read the drive's root record: %w", err)
	}
	progress := recoverProgress(e)
	rs, err := fs.Rebuild(ctx, fs.RebuildOptions{Dir: filepath.Join(tmp, "journal"), Grid: grid, Sealer: sealer,
		Seq: root.Seq, Head: root.Head, BlockSize: cfg.BlockSize, Progress: progress, Logger: log})
	progress("", -1, 0)
	if err != nil {
		return fmt.Errorf("cannot rebuild the drive from checkpoint %d: %w; nothing was written", root.Seq, err)
	}
	cfgOut, err := cfg.marshal()
	if err != nil {
		return err
	}
	if err := writeFileAtomic(filepath.Join(tmp, keyFile), wrapped, 0o600); err != nil {
		return err
	}
	if err := writeFileAtomic(filepath.Join(tmp, configFile), cfgOut, 0o600); err != nil {
		return err
	}
	if inPlace {
		if err := moveInto(tmp, dir); err != nil {
			return err
		}
		os.Remove(tmp)
	} else {
		syscall.Rmdir(dir) // an empty dir the user made; never a file (checked above)
		if err := os.Rename(tmp, dir); err != nil {
			return fmt.Errorf("cannot move the recovered drive into %s: %w", dir, err)
		}
	}
	done = true
	fmt.Fprintf(e.stdout, "recovered drive %s into %s: %d files and folders from checkpoint %d of %s (%d records, %s of metadata) in %.1fs\n",
		cfg.DriveID, dir, rs.Inodes, root.Seq, root.Created.Local().Format(time.DateTime), rs.Records, humanBytes(rs.Bytes), time.Since(start).Seconds())
	printRecoverLost(e.stdout, rs)
	fmt.Fprintf(e.stdout, "mount it with: meshdrive mount --data %s MOUNTPOINT\n", dir)
	return nil
}

// neverShipped says where a drive that never shipped its metadata lives.
const neverShipped = "its files are only in the data dir where it was mounted: if that machine still has it, mount it there and run meshdrive sync; nothing was written"

// printRecoverLost names the files of a recovered drive whose blocks had
// not reached the grid, one a line.
func printRecoverLost(w io.Writer, rs *fs.RebuildStats) {
	if rs.LostBlocks == 0 {
		return
	}
	fmt.Fprintf(w, "warning: %d blocks of %d files had not reached the grid when that checkpoint was made: reading them fails (EIO), "+
		"and meshdrive status PATH says lost. Restore those files from a copy, or delete them:\n", rs.LostBlocks, rs.LostFiles)
	for i, p := range rs.LostPaths {
		if i == 10 && len(rs.LostPaths) > 11 {
			fmt.Fprintf(w, "  ... and %d more\n", rs.LostFiles-10)
			break
		}
		fmt.Fprintf(w, "  %s\n", showName(p))
	}
}

// ownNodes: node is a directory in dataDir's nodes folder, where init
// puts the embedded grid's.
func ownNodes(node, dataDir string) bool {
	p := strings.TrimPrefix(node, "file://")
	if strings.Contains(p, "://") {
		return false
	}
	abs, err := filepath.Abs(p)
	return err == nil && filepath.Dir(abs) == filepath.Join(dataDir, nodesDir)
}

// rebaseEmbedded points the relative node paths of an embedded default
// grid (DATA/nodes/node-N) at the directories of the same names beside
// the one given, so a copy of a lost machine's node dirs recovers. In
// place (the one given is in the new data dir's nodes folder) they stay
// relative, as init writes them, so the data dir can move.
func rebaseEmbedded(cfg *Config, node string, inPlace bool) {
	p := strings.TrimPrefix(node, "file://")
	if strings.Contains(p, "://") {
		return
	}
	dir := filepath.Dir(filepath.Clean(p))
	for i, n := range cfg.Nodes {
		if inPlace && n.URL == filepath.Join(nodesDir, filepath.Base(n.URL)) {
			continue // DATA/nodes/NAME, beside the one given
		}
		if !strings.Contains(n.URL, "://") && !filepath.IsAbs(n.URL) {
			if abs, err := filepath.Abs(filepath.Join(dir, filepath.Base(n.URL))); err == nil {
				cfg.Nodes[i].URL = abs
			}
		}
	}
}

// recoverGrid opens cfg's grid for recover: relative node dirs (the
// embedded grid's, in place) are dir's, and no node dir is made; a
// missing one is a node down (recover writes nothing before it is done).
func recoverGrid(ctx context.Context, dir string, cfg *Config, master []byte, log *slog.Logger) (*remoteopen.Grid, error) {
	o := gridOptions(dir, cfg, master, log, false, remoteopen.Stack{})
	for i := range o.Nodes {
		o.Nodes[i].MustExist = true
	}
	g, _, err := remoteopen.NewGrid(ctx, o)
	return g, err
}

// recoverProgress reports the rebuild: a bar on a terminal, else nothing
// (the summary line says what was done). stage "" with done < 0 ends it.
func recoverProgress(e *env) func(stage string, done, total int) {
	if !isTerminal(e.stderr) {
		return func(string, int, int) {}
	}
	var bar *progressbar.ProgressBar
	last := ""
	return func(stage string, done, total int) {
		if done < 0 {
			if bar != nil {
				bar.Finish()
			}
			return
		}
		if stage != last {
			if bar != nil {
				bar.Finish()
			}
			desc := "reading checkpoints"
			if stage == "apply" {
				desc = "rebuilding the journal"
			}
			bar = progressbar.NewOptions(max(total, -1), progressbar.OptionSetWriter(e.stderr),
				progressbar.OptionSetDescription(desc), progressbar.OptionShowCount())
			if total == 0 {
				bar = progressbar.NewOptions(-1, progressbar.OptionSetWriter(e.stderr),
					progressbar.OptionSetDescription(desc), progressbar.OptionShowCount())
			}
			last = stage
		}
		bar.Set(done)
	}
}

// newestConfig asks every node of grid for its copy of the drive config
// and returns the one of the highest generation, with the node that held
// it, when that is higher than cfg's (nil otherwise). Copies that do not
// open with the drive's key, or are of another drive, are passed over.
func newestConfig(ctx context.Context, grid *remoteopen.Grid, sealer *remoteopen.Sealer, cfg *Config) (*Config, string) {
	gctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var best *Config
	from := ""
	for _, c := range grid.GetMetaAll(gctx, metaConfig) {
		if c.Err != nil {
			continue
		}
		b, err := sealer.OpenMeta(configSealName, c.Data)
		if err != nil {
			continue
		}
		got, err := parseConfig(b)
		if err != nil || got.DriveID != cfg.DriveID {
			continue
		}
		if got.Generation > cfg.Generation && (best == nil || got.Generation > best.Generation) {
			best, from = got, c.Node
		}
	}
	return best, from
}

// moveInto renames everything in src into dst, the config last (it makes
// dst a drive). On failure the ones moved go back, and dst is as it was.
func moveInto(src, dst string) error {
	ents, err := os.ReadDir(src)
	if err != nil {
		return fmt.Errorf("cannot move the recovered drive into %s: %w", dst, err)
	}
	var names []string
	for _, e := range ents {
		if e.Name() != configFile {
			names = append(names, e.Name())
		}
	}
	names = append(names, configFile)
	for i, n := range names {
		if err := os.Rename(filepath.Join(src, n), filepath.Join(dst, n)); err != nil {
			for _, m := range names[:i] {
				os.Rename(filepath.Join(dst, m), filepath.Join(src, m))
			}
			return fmt.Errorf("cannot move the recovered drive into %s: %w", dst, err)
		}
	}
	return nil
}
