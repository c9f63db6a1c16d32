// Command meshdrive creates, unlocks, mounts and watches a meshdrive drive,
// and serves a storage node.
//
//	meshdrive init      create a drive (data dir, wrapped key, node list)
//	meshdrive mount     mount it (foreground, or --daemon)
//	meshdrive unmount   unmount it
//	meshdrive status    the drive, its nodes, the upload queue, the cache
//	meshdrive sync      wait until everything written is grid-durable
//	meshdrive cache clear
//	meshdrive passwd    change the passphrase (the data is not touched)
//	meshdrive check     count (--verify: verify) every file's shards; --repair
//	meshdrive node serve | list | add | drain | remove
//
// Flags are parsed only here. Everything else lives in the packages fs,
// journal, cache and remote; this command wires them together, keeps the
// drive config (config.json) and the control socket (control.sock) that
// status, sync, cache clear, check and node list|add|drain|remove talk to
// while a mount runs. It reaches the journal, the cache and repair only
// through fs (fs.Drive), and the grid only through remote/open (and
// remote/node, to serve a node): TestImportsThin holds it there.
package main
