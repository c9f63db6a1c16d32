package fs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/meshdrive/meshdrive/journal"
	"github.com/meshdrive/meshdrive/remote"
)

// PinXattr marks a file or folder pinned: kept on this machine, its blocks
// fetched in the background and never evicted from the disk cache. A
// folder's pin covers everything under it, files added later included.
// Setting it (any value but "0") pins through Pinner.Pin, so a pin over
// the budget is refused with ENOSPC; removing it (or setting "0") unpins.
// It is an ordinary stored xattr, so pins survive a remount and travel with
// the metadata to the grid; listxattr leaves it out, so that copying tools
// do not pin the copies.
const PinXattr = "user.meshdrive.pinned"

// ErrPinBudget is a pin refused because the pinned data would not fit the
// pin budget.
var ErrPinBudget = errors.New("not enough room left in the pin budget")

// pinJournal is what the pinner needs from the journal.
type pinJournal interface {
	GetAttr(ctx context.Context, ino journal.Ino) (journal.Attr, error)
	GetXattr(ctx context.Context, ino journal.Ino, name string) ([]byte, error)
	journal.DirReader
	SetXattr(ctx context.Context, ino journal.Ino, name string, value []byte, flags uint32) error
	RemoveXattr(ctx context.Context, ino journal.Ino, name string) error
	XattrInodes(ctx context.Context, name string) ([]journal.Ino, error)
	GridRefs(ctx context.Context, ino journal.Ino) ([]remote.BlockRef, error)
}

// pinCache is what the pinner needs from the block cache (*cache.Cache).
type pinCache interface {
	Keep(ctx context.Context, ref remote.BlockRef) error
	Pin(id remote.BlockID)
	Unpin(id remote.BlockID)
	OnDisk(id remote.BlockID) bool
}

// Pins is how the file system pins and unpins (the xattr); *Pinner
// satisfies it.
type Pins interface {
	Pin(ctx context.Context, ino journal.Ino) error
	Unpin(ctx context.Context, ino journal.Ino) error
	// SetXattr is setxattr(2) of PinXattr: pin (on) or unpin, with its
	// XATTR_CREATE and XATTR_REPLACE flags.
	SetXattr(ctx context.Context, ino journal.Ino, on bool, flags uint32) error
}

const (
	// pinPassEvery: the pinner looks again this often without being
	// asked, for files added under pinned folders and blocks uploaded
	// since (a pin or an unpin starts a pass at once).
	pinPassEvery = 5 * time.Second
	// pinFetchers fetch pinned blocks in parallel.
	pinFetchers = 4
	// maxPinWalk bounds the entries one pin (or a pass) visits.
	maxPinWalk = 1_000_000
)

// PinStats is what the pinner found at its last pass.
type PinStats struct {
	Budget      int64     `json:"budget"`       // bytes
	Files       int       `json:"files"`        // pinned files
	Bytes       int64     `json:"bytes"`        // their size
	Blocks      int       `json:"blocks"`       // their blocks on the grid
	LocalBlocks int       `json:"local_blocks"` // of those, on this machine's disk cache
	LastPass    time.Time `json:"last_pass"`
	LastError   string    `json:"last_error,omitempty"`
}

// Pinner keeps pinned files on this machine: a pass walks every pinned
// folder, pins the blocks of every file under it in the cache, fetches the
// ones not on disk, and unpins blocks no pinned file uses any more. One
// goroutine runs the passes (Run); Pin and Unpin only change the xattr and
// start a pass.
type Pinner struct {
	j      pinJournal
	c      pinCache
	budget int64
	log    *slog.Logger
	kick   chan struct{}

	pinMu sync.Mutex // serializes Pin (check, set, count); taken before mu
	// countMu serializes a pass's walk and count with Hold, so a pass that
	// read the journal before a Hold does not drop the blocks it added
	// from blocks (their pins would never be let go). Taken before mu.
	countMu sync.Mutex

	mu     sync.Mutex // mu guards the fields below
	files  map[journal.Ino]int64
	blocks map[remote.BlockID]struct{}
	stats  PinStats
	// counts numbers the counts that set the totals (a pass's, or
	// WaitPass's): a pass sets LocalBlocks after its fetches only when
	// no count came after its own.
	counts uint64
}

// NewPinner makes a pinner over j and c whose pinned files may add up to
// budget bytes. Start it with Run.
func NewPinner(j pinJournal, c pinCache, budget int64, log *slog.Logger) *Pinner {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Pinner{j: j, c: c, budget: budget, log: log, kick: make(chan struct{}, 1),
		files: map[journal.Ino]int64{}, blocks: map[remote.BlockID]struct{}{},
		stats: PinStats{Budget: budget}}
}

// errNoDiskTier: the drive is mounted without a disk cache, where pinned
// blocks are kept.
var errNoDiskTier = errors.New("the drive is mounted without a disk cache (--cache-size 0), where pinned files are kept; mount it with one to keep them")

// Run runs passes until ctx ends: one at once, then every pinPassEvery and
// whenever Kick asks.
func (p *Pinner) Run(ctx context.Context) {
	t := time.NewTicker(pinPassEvery)
	defer t.Stop()
	failing := false
	for {
		err := p.pass(ctx)
		switch {
		case errors.Is(err, errNoDiskTier) && !failing:
			p.log.Warn("pins: pinned files are not kept here", "err", err)
		case err != nil && ctx.Err() == nil && !failing && !errors.Is(err, errNoDiskTier):
			p.log.Warn("pins: not every pinned block is on this machine yet; retrying every few seconds", "err", err)
		case err == nil && failing:
			p.log.Info("pins: every pinned block is on this machine")
		}
		failing = err != nil
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-p.kick:
		}
	}
}

// Kick starts a pass soon (a cache clear, nodes back).
func (p *Pinner) Kick() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// Stats returns what the last pass found.
func (p *Pinner) Stats() PinStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stats
}

// Pin pins ino (a file or a folder, recursively). It is refused with
// ErrPinBudget, changing nothing, when the files it adds to the pinned set
// would take the pinned bytes over the budget.
func (p *Pinner) Pin(ctx context.Context, ino journal.Ino) error {
	// Two Pins at once could each fit alone and not together; pinMu
	// makes the check and the count one step.
	p.pinMu.Lock()
	defer p.pinMu.Unlock()
	return p.pinLocked(ctx, ino)
}

// SetXattr is a setxattr(2) of PinXattr on ino: pin (on) or unpin, with
// XATTR_CREATE (journal.XattrCreate: the pin must not be there yet) and
// XATTR_REPLACE (it must be) decided in the same step as the change, so
// two creates at once do not both succeed. Unpinning what is not pinned
// succeeds.
func (p *Pinner) SetXattr(ctx context.Context, ino journal.Ino, on bool, flags uint32) error {
	p.pinMu.Lock()
	defer p.pinMu.Unlock()
	if flags != 0 {
		_, err := p.j.GetXattr(ctx, ino, PinXattr)
		switch {
		case err == nil && flags&journal.XattrCreate != 0:
			return journal.ErrExist
		case errors.Is(err, journal.ErrNoXattr) && flags&journal.XattrReplace != 0:
			return err
		case err != nil && !errors.Is(err, journal.ErrNoXattr):
			return err
		}
	}
	if on {
		return p.pinLocked(ctx, ino)
	}
	// Setting the pin to 0 says "not pinned": already so is success, as
	// meshdrive unpin has it (XATTR_REPLACE asked above for one to be
	// there). A removexattr of it keeps ENODATA, as for any attribute.
	if err := p.unpinLocked(ctx, ino); err != nil && !errors.Is(err, journal.ErrNoXattr) {
		return err
	}
	return nil
}

// pinLocked is Pin with pinMu held.
func (p *Pinner) pinLocked(ctx context.Context, ino journal.Ino) error {
	p.mu.Lock()
	pinned := make(map[journal.Ino]bool, len(p.files))
	for f := range p.files {
		pinned[f] = true
	}
	used := p.stats.Bytes
	p.mu.Unlock()
	add := map[journal.Ino]int64{}
	if err := p.walk(ctx, ino, add); err != nil {
		return err
	}
	var need int64
	for f, size := range add {
		if !pinned[f] {
			need = addSat(need, size)
		}
	}
	if p.budget == 0 && need > 0 {
		return fmt.Errorf("%w: the drive is mounted without a disk cache (--cache-size 0), where pinned files would be kept; mount it with one to pin", ErrPinBudget)
	}
	if addSat(used, need) > p.budget {
		return fmt.Errorf("%w: pinning it needs %s more, and %s of the %s pin budget is in use; unpin something, or mount with a larger --pin-budget",
			ErrPinBudget, humanSize(need), humanSize(used), humanSize(p.budget))
	}
	if err := p.j.SetXattr(ctx, ino, PinXattr, []byte("1"), 0); err != nil {
		return err
	}
	// Counted now, so the next Pin sees it; the pass recounts.
	p.mu.Lock()
	for f, size := range add {
		if _, ok := p.files[f]; !ok {
			p.files[f] = size
			p.stats.Files++
			p.stats.Bytes += size
		}
	}
	p.mu.Unlock()
	p.Kick()
	return nil
}

// Unpin removes ino's own pin (a file pinned through its folder stays
// pinned until the folder is unpinned: journal.ErrNoXattr then).
func (p *Pinner) Unpin(ctx context.Context, ino journal.Ino) error {
	p.pinMu.Lock()
	defer p.pinMu.Unlock()
	return p.unpinLocked(ctx, ino)
}

// unpinLocked is Unpin with pinMu held.
func (p *Pinner) unpinLocked(ctx context.Context, ino journal.Ino) error {
	if err := p.j.RemoveXattr(ctx, ino, PinXattr); err != nil {
		return err
	}
	p.Kick()
	return nil
}

// WaitPass counts the pinned files now and sets the totals (Stats) from
// them, so they count every pin and unpin made before the call, and
// starts a pass for the fetches. It does not wait for a pass: one may be
// fetching for hours (a big folder, or the nodes away), and an unpin's
// totals would only have come after it. An error (ctx, the journal) leaves
// the totals as they were.
func (p *Pinner) WaitPass(ctx context.Context) error {
	p.countMu.Lock()
	_, _, err := p.countLocked(ctx)
	p.countMu.Unlock()
	p.Kick()
	return err
}

// walk adds every regular file under ino (ino itself when it is one) to
// files, with its size.
func (p *Pinner) walk(ctx context.Context, ino journal.Ino, files map[journal.Ino]int64) error {
	a, err := p.j.GetAttr(ctx, ino)
	if err != nil {
		return err
	}
	walk := func(dir journal.Ino) error {
		return journal.WalkFiles(ctx, p.j, dir, "", maxPinWalk, func(_ string, e journal.DirEntry) error {
			f := e.Ino
			fa, err := p.j.GetAttr(ctx, f)
			if errors.Is(err, journal.ErrNotFound) {
				return nil // deleted meanwhile
			}
			if err != nil {
				return err
			}
			files[f] = pinSize(fa)
			return nil
		})
	}
	switch a.Mode & syscall.S_IFMT {
	case syscall.S_IFREG:
		files[ino] = pinSize(a)
		return nil
	case syscall.S_IFDIR:
		return walk(ino)
	}
	return nil // symlinks and devices have no blocks
}

// pinSize is what a pinned file holds on this machine: its stored bytes
// (st_blocks), not its apparent size, which a sparse file (a disk image)
// can take far past them; never more than its size.
func pinSize(a journal.Attr) int64 {
	return min(int64(min(a.Size, 1<<62)), int64(min(a.Blocks, 1<<53))*512)
}

// pass brings the cache in line with the pins.
func (p *Pinner) pass(ctx context.Context) (err error) {
	defer func() {
		p.mu.Lock()
		p.stats.LastPass = time.Now()
		p.stats.LastError = ""
		if err != nil {
			p.stats.LastError = err.Error()
		}
		p.mu.Unlock()
	}()
	p.countMu.Lock() // until the count is in (not through the fetches)
	c, n, err := p.countLocked(ctx)
	if err != nil {
		p.countMu.Unlock()
		return err
	}
	files, bytes, refs, blocks := c.files, c.bytes, c.refs, c.blocks
	// The pins follow this pass's count, the one whose blocks it keeps
	// (not WaitPass's, made while a pass may still be fetching).
	p.mu.Lock()
	old := p.blocks
	p.blocks = blocks
	p.mu.Unlock()
	for id := range old {
		if _, ok := blocks[id]; !ok {
			p.c.Unpin(id)
		}
	}
	p.countMu.Unlock()
	if bytes > p.budget {
		p.log.Warn("pins: pinned files outgrew the pin budget (files were added under pinned folders); they are all kept, unpin something or raise --pin-budget",
			"pinned", bytes, "budget", p.budget)
	}
	if p.budget == 0 && len(refs) > 0 {
		return fmt.Errorf("%w: %d pinned files are not kept on this machine", errNoDiskTier, len(files))
	}
	// Keep every block (pins it; fetches those not on disk).
	var g errgroup.Group
	g.SetLimit(pinFetchers)
	var fmu sync.Mutex
	var failed int
	var first error
	for _, r := range refs {
		g.Go(func() error {
			if err := p.c.Keep(ctx, r); err != nil {
				fmu.Lock()
				failed++
				if first == nil {
					first = err
				}
				fmu.Unlock()
			}
			return nil
		})
	}
	g.Wait()
	local := 0
	for _, r := range refs {
		if p.c.OnDisk(r.ID) {
			local++
		}
	}
	p.mu.Lock()
	if p.counts == n { // else a later count's totals stand
		p.stats.LocalBlocks = local
	}
	p.mu.Unlock()
	if first != nil {
		return fmt.Errorf("%d of %d pinned blocks could not be fetched (offline?); the next pass tries again: %w", failed, len(refs), first)
	}
	return nil
}

// pinCount is one count of the pinned files (Pinner.pinned).
type pinCount struct {
	files  map[journal.Ino]int64
	bytes  int64
	refs   []remote.BlockRef
	blocks map[remote.BlockID]struct{}
}

// countLocked walks the pinned files and sets the totals (Stats) and the
// files from them; it returns the count and its number. The blocks
// already on disk are counted with the pinned ones, so the totals never
// say more are local than are pinned while a pass fetches (it counts
// again when the fetches end). countMu held.
func (p *Pinner) countLocked(ctx context.Context) (pinCount, uint64, error) {
	var c pinCount
	var err error
	c.files, c.bytes, c.refs, c.blocks, err = p.pinned(ctx)
	if err != nil {
		return c, 0, err
	}
	local := 0
	for _, r := range c.refs {
		if p.c.OnDisk(r.ID) {
			local++
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.files = c.files
	p.stats.Files, p.stats.Bytes, p.stats.Blocks, p.stats.LocalBlocks = len(c.files), c.bytes, len(c.blocks), local
	p.counts++
	return c, p.counts, nil
}

// pinned walks the pinned folders and files: every pinned file with its
// size, their total, and their blocks on the grid (as a list and a set).
func (p *Pinner) pinned(ctx context.Context) (files map[journal.Ino]int64, bytes int64, refs []remote.BlockRef, blocks map[remote.BlockID]struct{}, err error) {
	roots, err := p.j.XattrInodes(ctx, PinXattr)
	if err != nil {
		return nil, 0, nil, nil, err
	}
	files = map[journal.Ino]int64{}
	for _, r := range roots {
		v, err := p.j.GetXattr(ctx, r, PinXattr)
		if err != nil || string(v) == "0" {
			continue
		}
		if err := p.walk(ctx, r, files); err != nil && !errors.Is(err, journal.ErrNotFound) {
			return nil, 0, nil, nil, err
		}
	}
	blocks = map[remote.BlockID]struct{}{}
	for f, size := range files {
		bytes += size
		rs, err := p.j.GridRefs(ctx, f)
		if err != nil {
			if errors.Is(err, journal.ErrNotFound) {
				continue
			}
			return nil, 0, nil, nil, err
		}
		for _, r := range rs {
			if _, ok := blocks[r.ID]; !ok {
				blocks[r.ID] = struct{}{}
				refs = append(refs, r)
			}
		}
	}
	return files, bytes, refs, blocks, nil
}

// Hold pins in the cache, without fetching, every block of every pinned
// file as the journal has it now, files uploaded under a pinned folder
// since the last pass included, so a cache clear after it keeps them. (An
// upload puts a file's blocks in the disk cache at once, unpinned until
// the next pass: a clear in between dropped them, and a pinned file was
// not local until the pinner fetched it back, or at all offline.) It only
// adds pins; the next pass lets go of the ones no pinned file uses.
func (p *Pinner) Hold(ctx context.Context) error {
	if p.budget == 0 {
		return nil // no disk tier: nothing is kept
	}
	p.countMu.Lock()
	defer p.countMu.Unlock()
	_, _, refs, _, err := p.pinned(ctx)
	if err != nil {
		return err
	}
	for _, r := range refs {
		p.c.Pin(r.ID)
	}
	p.mu.Lock()
	for _, r := range refs {
		p.blocks[r.ID] = struct{}{}
	}
	p.mu.Unlock()
	return nil
}

// humanSize is n in KiB, MiB, GiB.
func humanSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	f := float64(n)
	for _, u := range []string{"KiB", "MiB", "GiB", "TiB"} {
		f /= unit
		if f < unit {
			return fmt.Sprintf("%.1f %s", f, u)
		}
	}
	return fmt.Sprintf("%.1f PiB", f/unit)
}
