// Package href writes a path of the drive as its bytes, for JSON and
// addresses.
//
// Linux names are bytes; a JSON string is Unicode, and encoding/json
// writes each byte that is not part of valid UTF-8 as U+FFFD, so a name
// in Latin-1 ("\xe9t\xe9") comes out as one that names another file, or
// none. Escape %-encodes a path segment by segment from its bytes
// ("%E9t%E9"), which any byte survives and which the web API's addresses
// take as they are. Everywhere the drive puts a path in JSON (the web
// API, status --json, check --json), a path that is not valid UTF-8 gets
// a companion field named FIELD_href holding Escape of it (IfNotUTF8,
// List); a valid UTF-8 path gets none, and its JSON is as it always was.
// docs/API.md describes the convention for the people who read it.
package href
