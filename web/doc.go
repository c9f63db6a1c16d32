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
// Security, in the order a request meets it:
//
//   - The server listens on loopback unless told otherwise.
//   - Host must name this server (127.0.0.1, ::1 or localhost with its
//     port; any IP literal when bound to a wildcard address): a DNS
//     rebinding page on another name is refused (421).
//   - A request that carries an Origin (every POST, PUT and DELETE from a
//     browser does) must come from this server's own origin, and an API
//     request a browser marks with Sec-Fetch-Site must be same-origin (or
//     "none": a typed address) (403). Cookies are not kept apart by port,
//     so a page of another local server is same-site but not same-origin.
//   - Every request but the login page and the page's static assets needs
//     the access token as "Authorization: Bearer TOKEN" (scripts; compared
//     in constant time), or a browser session: GET /login?code=CODE trades
//     a single-use code (LoginURL, a minute) for a random secret kept in
//     memory only, in an HttpOnly SameSite=Strict cookie named after the
//     port. The token never goes into a URL or a cookie (cookies reach
//     every port of the host). Options.MetricsToken opens /metrics only.
//     401 otherwise.
//   - Paths are decoded segment by segment (DecodePath): a segment that is
//     "." or "..", holds an encoded slash or a NUL is refused (400), and
//     os.Root refuses symlinks that leave the mountpoint.
//   - Downloads are sent as attachments of type application/octet-stream
//     with a sandboxing Content-Security-Policy, so a file on the drive
//     never runs as a page of this origin.
package web
