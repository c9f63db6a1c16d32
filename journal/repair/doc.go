// Package repair keeps a drive's segments whole: it checks them (a
// listing of every node says which shards are present; with verify, each
// node checks its own shards' checksums and answers with a verdict),
// repairs the ones that lack shards (remote.Grid.RepairSegment rebuilds
// them from any k and places them like a write would), drains nodes, and
// runs the mount's background pass.
//
// # Promises
//
// A segment's new node list is committed to the journal (durably) before
// any shard it replaced is deleted, so a crash at any step leaves every
// segment with at least the shards it had; running the repair or the
// drain again finishes the job. A shard stored by a repair whose commit
// did not happen is an unreferenced object (garbage), never a loss. The
// journal's update of a segments or mlog row reaches the grid's copy of
// the metadata by itself (its triggers note it).
//
// The background pass repairs segments with fewer than Options.Below
// shards present (default k+m), fewest first, within Options.Limit bytes
// per second of shard traffic, and holds each segment back (up to 5 s)
// while an application waits for the grid, a big flush runs or an upload
// is in flight. Observe takes the mount's look at its nodes: when one
// goes down, comes back, loses half its objects or finds corrupt ones,
// the nodes are surveyed again at once (no repair), so the count of
// segments owing repair that status shows follows the grid between
// passes.
//
// # Concurrency
//
// Check, Background and Drain are safe for concurrent use; the ones that
// repair run one at a time (passMu). Stats may be read at any time.
package repair
