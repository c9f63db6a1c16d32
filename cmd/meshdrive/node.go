package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/meshdrive/meshdrive/remote/node"
	remoteopen "github.com/meshdrive/meshdrive/remote/open"
	"github.com/meshdrive/meshdrive/web"
)

const nodeUsage = `Usage: meshdrive node SUBCOMMAND

  node serve --dir DIR --listen ADDR [flags]   run a storage node
  node list [--json]                           the drive's nodes: health, latency, capacity, shards
  node add URL [--zone Z]                      add a node; shards rebalance onto it in the background
  node drain NODE                              move every shard off a node, then remove it
  node remove NODE                             forget a dead node; repair regenerates its shards

NODE is a node's name (node list) or URL. list, add, drain and remove talk to
the running mount. Run "meshdrive node SUBCOMMAND --help" for the flags.
`

func runNode(e *env) error {
	if len(e.args) == 0 {
		fmt.Fprint(e.stderr, nodeUsage)
		return usageError("node needs a subcommand: serve, list, add, drain or remove")
	}
	switch e.args[0] {
	case "-h", "--help", "help":
		fmt.Fprint(e.stdout, nodeUsage)
		return nil
	case "serve":
	case "list", "add", "drain", "remove":
		return runNodeAdmin(e, e.args[0], e.args[1:])
	default:
		fmt.Fprint(e.stderr, nodeUsage)
		return usageError("unknown node subcommand %q: want serve, list, add, drain or remove", e.args[0])
	}
	fl := newFlagSet(e, "node serve", "node serve --dir DIR --listen ADDR [--new] [--id ID] [--token-file F] [--tls-cert F --tls-key F] [--scrub-rate R] [--max-object SIZE] [--quarantine-max SIZE] [--addr-file F] [--insecure] [--log-level L]", `
Serve a storage node: shards are kept in DIR and served over HTTP (the node
API, /v1/...). The node sees only encrypted shards, never a file name or a
plaintext byte. The first run of a new node takes --new: it makes DIR when
missing and leaves the mark every node directory carries (.meshdrive-node).
Without --new a missing DIR, or an empty one without the mark, is refused:
that is a disk's mount point with the disk not mounted, and serving it would
fill the file system under the disk. For a replaced disk, start the node
once with --new --id ID, ID being the node's id that its drives recorded
(when they refuse the node as another one, their status names it): the new
disk's mark takes it, and the drives' repair (meshdrive check --repair)
fills it. Without --id a new disk gets a new id, and the drives refuse it.
Keep --new out of a service unit: a start with --new of a directory that is
already a node's warns, as it gets none of this protection.
With --token-file, every request must carry that token (give drives the URL
http://TOKEN@host:port). A node listening on anything but a
loopback address needs a token (it would be open to anyone who can reach
it); --insecure serves without one anyway. With --scrub-rate the node reads
every stored shard again and again at about that many bytes per second,
moves the ones that fail their checksums aside and reports them in
/v1/info (meshdrive node list shows them; the drive's repair regenerates
them). SIGTERM or Ctrl-C stop accepting, finish the requests in flight and
exit 0. The bound address is printed on stdout ("listening on HOST:PORT"),
so --listen 127.0.0.1:0 picks a free port.`)
	dir := fl.String("dir", "", "directory to keep shards in (a node's directory, made by the first run with --new)")
	fresh := fl.Bool("new", false, "a new node (or a replaced disk, with --id): make DIR if missing and mark it as a node's directory; without it DIR must be one already")
	id := fl.String("id", "", "the node's id as its drives recorded it (32 hex digits): a mark without an id (a replaced disk's) takes it, and a directory of another id is refused")
	listen := fl.String("listen", "", "address to listen on, host:port (port 0 picks a free one)")
	tokenFile := fl.String("token-file", "", "file holding the access token clients must send")
	certFile := fl.String("tls-cert", "", "TLS certificate file (PEM); with --tls-key serves HTTPS")
	keyFile := fl.String("tls-key", "", "TLS private key file (PEM)")
	addrFile := fl.String("addr-file", "", "also write the bound address to this file")
	logLevel := fl.String("log-level", "info", "log level: debug, info, warn, error")
	scrubRate := fl.String("scrub-rate", "0", "verify every stored shard at about this many bytes/s (suffixes K, M, G, KiB, MiB, GiB; 0 = no scrub)")
	maxObject := fl.String("max-object", "64MiB", "largest object a client may upload (shards of a drive's 16 MiB segments fit the default; at most 1GiB)")
	quarantineMax := fl.String("quarantine-max", "1GiB", "bytes of corrupt shards the scrubber keeps in DIR/.quarantine for inspection; past it the oldest are removed (0 keeps none, \"all\" keeps every one)")
	insecure := fl.Bool("insecure", false, "serve a non-loopback address without a token: anyone who reaches it may read, replace or delete shards")
	pos, err := parseFlags(e, fl, e.args[1:])
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageError("node serve takes no arguments")
	}
	if *dir == "" || *listen == "" {
		return usageError("node serve needs --dir DIR and --listen ADDR")
	}
	nodeID := strings.ToLower(*id)
	if nodeID != "" && !validNodeID(nodeID) {
		return usageError("--id %q: want the node's id as its drives recorded it, 32 hex digits (a drive that refuses the node as another one names it)", *id)
	}
	if (*certFile == "") != (*keyFile == "") {
		return usageError("--tls-cert and --tls-key go together")
	}
	rate, err := parseBytes(*scrubRate)
	if err != nil || rate < 0 {
		return usageError("--scrub-rate %q: want bytes per second like 8MiB, or 0", *scrubRate)
	}
	maxObj, err := parseBytes(*maxObject)
	if err != nil || maxObj < 1<<20 || maxObj > 1<<30 {
		return usageError("--max-object %q: want a size from 1MiB to 1GiB, like 64MiB", *maxObject)
	}
	qmax := int64(-1) // "all"
	if *quarantineMax != "all" {
		q, err := parseBytes(*quarantineMax)
		if err != nil || q < 0 {
			return usageError("--quarantine-max %q: want a size like 1GiB, 0 to keep none, or all", *quarantineMax)
		}
		qmax = max(q, 1) // dirstore's 0 is its default; 1 byte keeps no shard
	}
	if _, _, err := net.SplitHostPort(*listen); err != nil {
		return usageError("--listen %q does not parse as an address: want host:port, like 127.0.0.1:7070, :7070 or [::1]:7070", *listen)
	}
	if *tokenFile == "" && !loopbackAddr(*listen) {
		if !*insecure {
			return usageError("refusing to serve %s without a token: anyone who can reach it could read, replace or delete shards; "+
				"give --token-file F (and the drive the URL http://TOKEN@host:port), listen on 127.0.0.1, or pass --insecure", *listen)
		}
		fmt.Fprintf(e.stderr, "meshdrive: WARNING: serving %s with no token (--insecure): anyone who can reach this address can read, replace or delete every shard\n", *listen)
	}
	log, err := newLogger(e.stderr, *logLevel)
	if err != nil {
		return err
	}
	token := ""
	if *tokenFile != "" {
		if token, err = readTokenFile(*tokenFile); err != nil {
			return err
		}
	}
	// Signals are caught before the address is printed, so a supervisor
	// that stops the node as soon as it listens gets a clean exit.
	ctx, stop := signalContext()
	defer stop()
	// The metrics ask the server, which is made after them.
	var srv *node.Server
	metrics := web.NewNodeMetrics(func(ctx context.Context) (remoteopen.NodeInfo, error) { return srv.Info(ctx) })
	// Listen first: a bad address should not leave a node directory made.
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("cannot listen on %s: %w; stop what listens there, or give another --listen address (port 0 picks a free one)", *listen, err)
	}
	if *fresh {
		if held := nodeDirObjects(*dir); len(held) > 0 {
			fmt.Fprintf(e.stderr, "meshdrive: warning: --new given, but %s is already a node's directory (it has the mark %s and holds objects: %s); "+
				"--new is for a node's first start only: drop --new from the service unit or script that starts this node, "+
				"or a start with its disk not mounted will serve and fill the empty mount point instead of refusing\n",
				*dir, node.MarkName, strings.Join(held, ", "))
		}
	}
	srv, err = node.NewServer(node.ServerOptions{Dir: *dir, Token: token, Logger: log, ScrubRate: rate, MaxObject: node.MaxObjectFor(maxObj),
		DirOptions: node.DirOptions{QuarantineMax: qmax, MustExist: !*fresh, ID: nodeID}, Observe: metrics.Observe, Metrics: metrics.Handler()})
	if err != nil {
		ln.Close()
		if errors.Is(err, node.ErrNoDir) {
			return notANodeDir(*dir)
		}
		return nodeDirError(err)
	}
	unlock, err := lockNodeDir(*dir)
	if err != nil {
		ln.Close()
		return err
	}
	defer unlock()
	if *certFile != "" {
		cert, err := tls.LoadX509KeyPair(*certFile, *keyFile)
		if err != nil {
			ln.Close()
			return fmt.Errorf("TLS certificate: %w", err)
		}
		ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	}
	addr := ln.Addr().String()
	if *addrFile != "" {
		if err := writeFileAtomic(*addrFile, []byte(addr+"\n"), 0o644); err != nil {
			ln.Close()
			return fmt.Errorf("addr file: %w", err)
		}
	}
	fmt.Fprintf(e.stdout, "listening on %s\n", addr)
	return srv.Serve(ctx, ln)
}

// readTokenFile reads an access token from path (--token-file): one line
// of printable characters without spaces, what a client can send in an
// Authorization header and a URL. A token with a space or a line break
// inside was taken, and every client then failed with "unreachable
// (invalid header field value)".
func readTokenFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", unreadableFile("--token-file", path, err)
	}
	token := strings.TrimSpace(string(b))
	if token == "" {
		return "", fmt.Errorf("token file %s is empty; put one line in it, like the output of: head -c 32 /dev/urandom | base64", path)
	}
	for _, r := range token {
		if r <= ' ' || r > '~' {
			return "", fmt.Errorf("token file %s holds %q inside the token: a token is one line of printable characters without spaces (clients send it in a header); make one with: head -c 32 /dev/urandom | base64", path, r)
		}
	}
	return token, nil
}

// nodeDirError is err (the node's directory could not be made or used)
// with what to do: a directory this user may not write, or on a read-only
// file system, needs another --dir or its permissions changed.
func nodeDirError(err error) error {
	switch {
	case errors.Is(err, os.ErrPermission):
		return fmt.Errorf("%w; this user (uid %d) cannot write there: give --dir a directory it can write (chown or chmod it), or another one", err, os.Getuid())
	case errors.Is(err, syscall.EROFS):
		return fmt.Errorf("%w; that file system is mounted read-only: give --dir a directory on a writable one", err)
	}
	return fmt.Errorf("%w; --dir takes the node's directory (--new makes it when missing)", err)
}

// notANodeDir says why node serve (without --new) refuses dir: it is
// missing, or empty without the node's mark, as a disk's mount point is
// when the disk is not mounted; and what to do either way.
func notANodeDir(dir string) error {
	what := "does not exist"
	if _, err := os.Stat(dir); err == nil {
		what = "is empty, without the mark a node's directory carries (" + node.MarkName + ")"
	}
	return fmt.Errorf("node directory %s %s: if it is on a disk that is not mounted, mount the disk and start the node again; "+
		"if this is a new node, start it once with --new; if its disk was replaced, start it once with --new --id ID, ID being the node's id "+
		"that its drives recorded (their status names it when they refuse the node), and the drives' repair fills it again (meshdrive check --repair)", dir, what)
}

// nodeDirObjects names the folders of objects ("meta/", "shards/") dir
// holds when it carries a node's mark: none for a new node's directory,
// some for one that has served (node serve --new on every start).
func nodeDirObjects(dir string) []string {
	if _, err := os.Lstat(filepath.Join(dir, node.MarkName)); err != nil {
		return nil
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var held []string
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), ".") {
			held = append(held, e.Name()+"/")
		}
	}
	return held
}

// nodeLock is the file in a node's directory that the process serving it
// holds locked (flock), so a second node serve of the directory is
// refused: two processes serving one directory would each count, scrub
// and quarantine its objects behind the other's back.
const nodeLock = ".node.lock"

// lockNodeDir locks dir for this process until unlock, or says which
// process serves it.
func lockNodeDir(dir string) (unlock func(), err error) {
	path := filepath.Join(dir, nodeLock)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, nodeDirError(fmt.Errorf("cannot lock the node directory: %w", err))
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		pid, _ := os.ReadFile(path)
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%s is already served by another meshdrive node process (pid %s); one process serves a directory: stop that one first, or give another --dir",
				dir, strings.TrimSpace(string(pid)))
		}
		return nil, fmt.Errorf("cannot lock the node directory %s: %w", dir, err)
	}
	f.Truncate(0)
	f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return func() { f.Close() }, nil
}

// loopbackAddr reports whether a listen address (host:port) is on a
// loopback interface only: 127.0.0.0/8, ::1 or localhost. An empty host
// listens everywhere.
func loopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
