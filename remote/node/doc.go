// Package node is the storage node of a meshdrive grid: the HTTP server
// behind `meshdrive node serve` (Server, keeping objects in a dirstore) and
// its client (Client, a remote.Store).
//
// # HTTP API
//
//	PUT    /v1/o/{name}   body = the whole object (shard format); 201 once verified and durable.
//	       The fixed header is read first: a body that is not an object, whose
//	       header says more than MaxObject (413), or whose length is not its
//	       header's (422) is refused before it is buffered. The bytes of uploads
//	       read at once are bounded by UploadBudget (503 busy, Retry-After: the
//	       client tries again), and a body must keep arriving (60 s, then at
//	       least 32 KiB/s) or the connection is cut.
//	GET    /v1/o/{name}   optional "Range: bytes=a-b" (also a- and -n; one range only); 200 or 206
//	HEAD   /v1/o/{name}   size in Content-Length, mtime in X-Meshdrive-Mtime
//	DELETE /v1/o/{name}   204, also for a missing name
//	GET    /v1/list?prefix=P&after=A&limit=N   {"objects":[{"name","size","mtime"}...]} in name order
//	GET    /v1/info       remote.NodeInfo as JSON (capacity, free, objects, version, id, scrub report)
//	POST   /v1/verify/{name}  the node checks every checksum of the object: 204 intact, 409 corrupt, 404 missing
//
// When the server has a token every request needs "Authorization: Bearer
// TOKEN" (compared in constant time), else 401. Errors answer a JSON body
// {"code": ..., "error": ...} whose message says what happened:
//
//	400 invalid_name (names are checked with remote.ValidName before the
//	    disk is touched) or bad_request (bad Range, bad list arguments,
//	    truncated upload)
//	401 unauthorized   404 not_found   413 too_large   416 range
//	409 corrupt: a stored object failed its checksum on GET (never bad bytes)
//	422 corrupt: an uploaded object failed verification (nothing stored)
//	503 busy: other uploads fill the upload budget; try again
//	507 full: the node's disk is full (no partial file is left)
//	5xx internal: anything else
//
// GET reads are verified chunk by chunk before a byte is sent. Ranges over
// 8 MiB are streamed in verified 4 MiB pieces, all read from the version
// of the object the GET opened (a Put of the name meanwhile does not mix
// in); if a later piece fails its checksum the server cuts the
// connection, so the client sees a short body, never unverified bytes.
//
// # Client
//
// Client maps the answers back to the remote sentinels (ErrNotFound,
// ErrUnauthorized, ErrFull, ErrRange, ErrInvalidName, ErrCorrupt; network
// failures and 5xx become ErrUnavailable wrapping the cause). It tries each
// call once, bounded by ClientOptions.Timeout; what can succeed on retry
// (network errors, 5xx except 507, 408, 429) wraps ErrUnavailable, and
// remote.WithRetry, stacked on the client by open.Store, retries it with
// capped exponential backoff and full jitter, honouring ctx. Errors name the node
// URL (never the token) and the object. One http.Transport per client
// keeps connections alive.
//
// # Scrub
//
// With ServerOptions.ScrubRate, Serve also runs a scrubber: it lists the
// store and verifies every object, pass after pass, paced by a token
// bucket of ScrubRate bytes per second; a corrupt object is moved aside
// (Quarantiner; the dirstore renames it into .quarantine/) and named in
// /v1/info, so the drive's next check or repair regenerates it.
//
// # Shutdown
//
// Server.Serve returns when its ctx is cancelled, after http.Server.Shutdown
// lets requests in flight finish (bounded by ShutdownTimeout).
package node
