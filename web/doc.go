// Package web serves a running drive over HTTP on the local machine: a web
// app for people (browse, download, upload by drag and drop, file states,
// the upload queue, node health, snapshots and restore, check and repair),
// a JSON API under /api/v1/ for scripts, and Prometheus metrics on
// /metrics.
//
// Files are read and written through the drive's FUSE mount, opened as an
// os.Root: the kernel, the journal and the web see one namespace, and no
// path given to the server (.., encoded slashes, symlinks that point out)
// leaves the mountpoint. What the mount cannot say (a file's state, the
// queue, nodes, snapshots, check) comes from the Drive interface, which the
// mount process implements.
//
// Names are bytes. One that is not UTF-8 (Latin-1 from an old archive)
// has no JSON string, so every answer that holds such a path carries
// FIELD_href beside it, the path %-encoded from its bytes as addresses
// take it (journal/href), and every JSON body takes FIELD_href for each
// path it names (bodyPath): any file can be listed, renamed, restored,
// checked and deleted. docs/API.md describes it for clients.
//
// Security, in the order a request meets it:
//
//   - The server listens on loopback unless told otherwise.
//   - Host must name this server (127.0.0.1, ::1 or localhost with its
//     port; any IP literal when bound to a wildcard address): a DNS
//     rebinding page on another name is refused (421).
//   - A request that carries an Origin (every POST, PUT and DELETE from a
//     browser does) must come from this server's own origin, and an API
//     request a browser marks with Sec-Fetch-Site must be same-origin (or
//     "none": a typed address) (403). A page of another local server
//     is same-site but not same-origin.
//   - Every request but the login page and the page's static assets needs
//     the access token as "Authorization: Bearer TOKEN" (scripts; compared
//     in constant time), or a browser session as "Authorization: Session
//     S": GET /login?code=CODE sends the browser to /#login=CODE (a
//     fragment no server sees), the page POSTs the code to /login, once,
//     within a minute of LoginURL making it, and gets a random secret kept
//     in this process's memory only; the page keeps it in its origin's
//     localStorage. A download link carries a ticket instead (POST
//     /api/v1/ticket): GETs and HEADs of the one address it was made for,
//     for ten minutes. No cookie is set or read: cookies reach every port
//     of the host, so another local server the browser visits would get
//     it. (The session is readable by the page's scripts, which the
//     HttpOnly cookie was not; the page builds its elements from text and
//     the CSP allows only its own scripts.)
//     Options.MetricsToken opens /metrics only. 401 otherwise.
//   - Paths are decoded segment by segment (DecodePath): a segment that is
//     "." or "..", holds an encoded slash or a NUL is refused (400), and
//     os.Root refuses symlinks that leave the mountpoint.
//   - Downloads are sent as attachments of type application/octet-stream
//     with a sandboxing Content-Security-Policy, so a file on the drive
//     never runs as a page of this origin.
package web
