package main

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"strings"
)

// runNodeAdmin runs node list, add, drain and remove against the mount.
func runNodeAdmin(e *env, sub string, args []string) error {
	var (
		synopsis, desc string
		nargs          int
	)
	switch sub {
	case "list":
		synopsis, desc = "node list [--data DIR] [--json]", `
List the drive's nodes: up or down, latency, capacity and free space, how
many shards each holds, whether it is draining, and what its scrubber has
found. Talks to the running mount.`
	case "add":
		synopsis, desc, nargs = "node add [--data DIR] [--zone Z] URL", `
Add a node to the drive (URL as in meshdrive init --node: http(s)://[TOKEN@]host:port,
s3://..., or an absolute directory). The node must answer and hold no other
drive. New segments use it at once; existing segments move shards onto it in
the background (the mount's repair pass, within --repair-limit). The drive's
key and config are stored on it, and the config on every node names it, so
meshdrive recover sees the new node list. Talks to the running mount.`, 1
	case "drain":
		synopsis, desc, nargs = "node drain [--data DIR] NODE", `
Move every shard off NODE (a name from node list, or its URL) onto the other
nodes, then delete what is left on it and remove it from the drive. NODE must
answer (to delete what is left). The drive needs k+m other nodes (add one
first). A drain cut short (Ctrl-C, a crash) leaves the node marked draining:
the mount's background pass goes on moving its shards, and running node
drain again finishes and removes it. The moves stay within the mount's
--repair-limit. Talks to the running mount.`, 1
	case "remove":
		synopsis, desc, nargs = "node remove [--data DIR] NODE", `
Forget NODE (a name or URL), for a node that is gone for good: its shards
count as missing and the mount's repair regenerates them on the other nodes
(meshdrive check --repair does it now). The drive needs k+m other nodes.
To retire a node that still runs, drain it instead. Talks to the running mount.`, 1
	}
	fl := newFlagSet(e, "node "+sub, synopsis, desc)
	dataDir := dataDirFlag(e, fl)
	asJSON, zone := new(bool), new(string)
	if sub == "list" {
		asJSON = fl.Bool("json", false, "print JSON")
	}
	if sub == "add" {
		zone = fl.String("zone", "", "the node's failure domain (shards of a segment go to distinct zones)")
	}
	pos, err := parseFlags(e, fl, args)
	if err != nil {
		return err
	}
	if len(pos) != nargs {
		return usageError("meshdrive %s: wrong number of arguments (%d)", synopsis, len(pos))
	}
	dir, err := dataDir()
	if err != nil {
		return err
	}
	ctx, stop := signalContext()
	defer stop()
	c := newControlClient(dir)
	switch sub {
	case "list":
		var ns []nodeStatus
		if err := c.getJSON(ctx, "GET", "/nodes", &ns); err != nil {
			return err
		}
		if *asJSON {
			return printJSON(e.stdout, ns)
		}
		printNodes(e.stdout, ns)
		return nil
	case "add":
		q := url.Values{"url": {escapeToken(pos[0])}}
		if *zone != "" {
			q.Set("zone", *zone)
		}
		var ns nodeAdded
		if err := c.getJSON(ctx, "POST", "/nodes/add?"+q.Encode(), &ns); err != nil {
			return fmt.Errorf("node add: %w", err)
		}
		fmt.Fprintf(e.stdout, "added %s (%s); existing shards rebalance onto it in the background (meshdrive status shows the repair)\n", ns.Name, ns.URL)
		for _, n := range ns.Unchecked {
			fmt.Fprintf(e.stderr, "meshdrive: warning: %s (%s) did not answer (%s), so whether %s is the same node under another address is not known; if it is, run meshdrive node remove %s (not drain: a drain would delete %s's shards)\n",
				n.Name, n.URL, n.Error, ns.Name, ns.Name, n.Name)
		}
		return nil
	case "drain":
		// Progress counts the segments tried: say they moved only once
		// the drain succeeded.
		moved := -1
		err := streamLines(ctx, e, dir, "/nodes/drain?"+url.Values{"node": {pos[0]}}.Encode(), func(l checkLine) {
			if p := l.Progress; p != nil && p.Done == p.Total {
				moved = p.Total
			}
		})
		if err != nil && ctx.Err() != nil {
			node := redactURL(pos[0])
			return fmt.Errorf("node drain: interrupted (%v); what was moved so far stays moved, and %s stays marked draining "+
				"(the mount goes on moving its shards in the background); run meshdrive node drain --data %s %s again to finish and remove it",
				context.Cause(ctx), node, dir, node)
		}
		if err != nil {
			return fmt.Errorf("node drain: %w", err)
		}
		if moved >= 0 {
			fmt.Fprintf(e.stdout, "moved the shards of %d segments\n", moved)
		}
		fmt.Fprintf(e.stdout, "drained and removed %s\n", pos[0])
		return nil
	case "remove":
		var ns nodeStatus
		if err := c.getJSON(ctx, "POST", "/nodes/remove?"+url.Values{"node": {pos[0]}}.Encode(), &ns); err != nil {
			return fmt.Errorf("node remove: %w", err)
		}
		fmt.Fprintf(e.stdout, "removed %s (%s); repair regenerates its shards in the background (meshdrive check --repair does it now)\n", ns.Name, ns.URL)
		return nil
	}
	return nil
}

// spaceNote says what to do about a node that is full, and why a node's
// free space is not shown ("" when there is nothing to say).
func spaceNote(n nodeStatus) string {
	switch {
	case n.Full:
		return fmt.Sprintf("%s is full: %s free, less than one shard of a segment needs (%s), so uploads that place a shard on it fail; "+
			"free space on its disk, add a node (meshdrive node add URL), or move its shards to the other nodes (meshdrive node drain %s)",
			n.Name, humanBytes(n.Free), humanBytes(n.ShardBytes), n.Name)
	case n.Free < 0 && strings.HasPrefix(n.URL, "s3://"):
		return fmt.Sprintf("%s: free n/a, as S3 does not report free space (normal for a bucket; any quota is the provider's to show)", n.Name)
	case n.Free < 0:
		return fmt.Sprintf("%s: free n/a, as the node does not report its free space", n.Name)
	}
	return ""
}

func printNodes(w io.Writer, ns []nodeStatus) {
	for _, n := range ns {
		state := "up"
		if !n.Up {
			state = "DOWN"
		}
		if n.Draining {
			state += ",draining"
		}
		if n.Full {
			state += ",FULL"
		}
		fmt.Fprintf(w, "%-10s %-13s", n.Name, state)
		if n.Up {
			space := fmt.Sprintf("%10s of %-10s", humanBytes(n.Free), humanBytes(n.Capacity))
			if n.Free < 0 {
				space = fmt.Sprintf("%-24s", "free n/a")
			}
			fmt.Fprintf(w, " %8.2f ms  %s %7s shards", n.LatencyMS, space, shardCount(n.Shards))
		}
		fmt.Fprintf(w, "  %s", n.URL)
		if n.Zone != "" {
			fmt.Fprintf(w, "  zone %s", n.Zone)
		}
		if !n.Up {
			fmt.Fprintf(w, "  (%s)", n.Error)
		}
		fmt.Fprintln(w)
		if s := spaceNote(n); s != "" && n.Up {
			fmt.Fprintf(w, "           %s\n", s)
		}
		if s := n.Scrub; s != nil {
			last := "no full pass yet"
			if !s.LastPass.IsZero() {
				last = "last pass " + s.LastPass.Local().Format("2006-01-02 15:04:05")
			}
			fmt.Fprintf(w, "           scrub: %d passes, %s, %d corrupt shards found and moved aside\n", s.Passes, last, s.CorruptSeen)
		}
	}
}
