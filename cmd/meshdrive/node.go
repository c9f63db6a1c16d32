package main

import (
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"strings"

	"github.com/meshdrive/meshdrive/remote/node"
)

func runNode(e *env) error {
	if len(e.args) == 0 || e.args[0] != "serve" {
		if len(e.args) > 0 && (e.args[0] == "-h" || e.args[0] == "--help" || e.args[0] == "help") {
			fmt.Fprintf(e.stdout, "Usage: meshdrive node serve --dir DIR --listen ADDR [flags]\n\nRun \"meshdrive node serve --help\" for the flags.\n")
			return nil
		}
		return usageError("node needs the subcommand serve: meshdrive node serve --dir DIR --listen ADDR")
	}
	fl := newFlagSet(e, "node serve", "node serve --dir DIR --listen ADDR [--token-file F] [--tls-cert F --tls-key F]", `
Serve a storage node: shards are kept in DIR and served over HTTP (the node
API, /v1/...). The node sees only encrypted shards, never a file name or a
plaintext byte. With --token-file, every request must carry that token (give
drives the URL http://TOKEN@host:port). SIGTERM or Ctrl-C stop accepting,
finish the requests in flight and exit 0. The bound address is printed on
stdout ("listening on HOST:PORT"), so --listen 127.0.0.1:0 picks a free port.`)
	dir := fl.String("dir", "", "directory to keep shards in (created if missing)")
	listen := fl.String("listen", "", "address to listen on, host:port (port 0 picks a free one)")
	tokenFile := fl.String("token-file", "", "file holding the access token clients must send")
	certFile := fl.String("tls-cert", "", "TLS certificate file (PEM); with --tls-key serves HTTPS")
	keyFile := fl.String("tls-key", "", "TLS private key file (PEM)")
	addrFile := fl.String("addr-file", "", "also write the bound address to this file")
	logLevel := fl.String("log-level", "info", "log level: debug, info, warn, error")
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
	if (*certFile == "") != (*keyFile == "") {
		return usageError("--tls-cert and --tls-key go together")
	}
	log, err := newLogger(e.stderr, *logLevel)
	if err != nil {
		return err
	}
	token := ""
	if *tokenFile != "" {
		b, err := os.ReadFile(*tokenFile)
		if err != nil {
			return fmt.Errorf("token file: %w", err)
		}
		token = strings.TrimSpace(string(b))
		if token == "" {
			return fmt.Errorf("token file %s is empty", *tokenFile)
		}
	}
	// Signals are caught before the address is printed, so a supervisor
	// that stops the node as soon as it listens gets a clean exit.
	ctx, stop := signalContext()
	defer stop()
	srv, err := node.NewServer(node.ServerOptions{Dir: *dir, Token: token, Logger: log})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("cannot listen on %s: %w", *listen, err)
	}
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
