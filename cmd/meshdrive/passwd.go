package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	remoteopen "github.com/meshdrive/meshdrive/remote/open"
)

func runPasswd(e *env) error {
	fl := newFlagSet(e, "passwd", "passwd [--data DIR] [--passphrase-file F] [--new-passphrase-file F] [--log-level L]", `
Change the drive's passphrase. The master key stays the same, so no data is
rewritten: only the wrapped key changes, in DATA/key.json and on every node
that is up. The current passphrase comes from --passphrase-file, else
$MESHDRIVE_PASSPHRASE, else a prompt; the new one from --new-passphrase-file,
else $MESHDRIVE_NEW_PASSPHRASE, else a prompt (asked twice).`)
	dataDir := dataDirFlag(e, fl)
	passFile := fl.String("passphrase-file", "", "read the current passphrase from this file")
	newFile := fl.String("new-passphrase-file", "", "read the new passphrase from this file")
	logLevel := fl.String("log-level", "warn", "log level: debug, info, warn, error")
	pos, err := parseFlags(e, fl, e.args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageError("passwd takes no arguments")
	}
	dir, err := dataDir()
	if err != nil {
		return err
	}
	log, err := newLogger(e.stderr, *logLevel)
	if err != nil {
		return err
	}
	cfg, err := loadConfig(dir)
	if err != nil {
		return err
	}
	kp := filepath.Join(dir, keyFile)
	wrapped, err := os.ReadFile(kp)
	if err != nil {
		return fmt.Errorf("cannot read the drive key %s: %w", kp, err)
	}
	master, err := unlock(e, dir, passphraseSource{file: *passFile, envVar: "MESHDRIVE_PASSPHRASE"})
	if err != nil {
		return err
	}
	defer clear(master)
	newPass, err := passphraseSource{file: *newFile, envVar: "MESHDRIVE_NEW_PASSPHRASE", flag: "--new-passphrase-file"}.read(e, "New passphrase for the drive at "+dir, true)
	if err != nil {
		return err
	}
	b, err := remoteopen.DecodeKey(wrapped)
	if err != nil {
		return err
	}
	// Each step can take seconds (key derivation, nodes far away, an S3
	// bucket): say which one is running.
	st := newSteps(e.stderr)
	defer st.clear()
	params := b.Params()
	if def := kdfParams(e); params.MemoryKiB < def.MemoryKiB || params.Time < def.Time {
		params = def // raise the cost of an old or weak key
	}
	st.say("passwd: wrapping the key under the new passphrase")
	nw, err := remoteopen.WrapKey(master, newPass, params)
	if err != nil {
		return err
	}
	// Local first: it is what mount reads.
	if err := writeFileAtomic(kp, nw, 0o600); err != nil {
		return fmt.Errorf("cannot write %s: %w; the old passphrase still works", kp, err)
	}
	ctx, stop := signalContext()
	defer stop()
	st.say("passwd: changed in %s; opening the %d nodes", kp, len(cfg.Nodes))
	grid, _, err := openGrid(ctx, dir, cfg, master, log, false)
	if err != nil {
		return fmt.Errorf("passphrase changed in %s, but the nodes were not updated: %w", kp, err)
	}
	answered := 0
	n, err := grid.PutMetaEach(ctx, metaKey, nw, func(node string, err error) {
		answered++
		if err != nil {
			st.say("passwd: %d of %d nodes answered; %s did not take the new key: %v", answered, len(cfg.Nodes), node, err)
			return
		}
		st.say("passwd: %d of %d nodes answered; %s took the new key", answered, len(cfg.Nodes), node)
	})
	if err != nil && !errors.Is(err, ctx.Err()) && n == 0 {
		return fmt.Errorf("passphrase changed in %s, but no node took the new key (%v); run meshdrive passwd again when the nodes are up (the new passphrase is then the current one)", kp, err)
	}
	st.say("passwd: removing copies of the key kept under an older name")
	grid.DeleteLegacyMeta(ctx, metaKey) // a pre-2026-12 copy would still open with the old passphrase
	st.clear()
	if n < len(cfg.Nodes) {
		fmt.Fprintf(e.stdout, "passphrase changed locally and on %d of %d nodes; the others still hold the key under the old passphrase: run meshdrive passwd again (current = new) when they are up\n", n, len(cfg.Nodes))
		return nil
	}
	fmt.Fprintf(e.stdout, "passphrase changed for the drive at %s (locally and on all %d nodes)\n", dir, n)
	return nil
}
