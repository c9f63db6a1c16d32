package href

import (
	"net/url"
	"strings"
	"unicode/utf8"
)

// Escape is p with each segment %-encoded from its bytes: "/" stays the
// separator (a leading one too), every byte that is not a letter, a
// digit or one of a few marks becomes %XX. url.PathUnescape of each
// segment gives the bytes back.
func Escape(p string) string {
	segs := strings.Split(p, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return strings.Join(segs, "/")
}

// IfNotUTF8 is Escape(p) when p is not valid UTF-8, else "": the value of
// a FIELD_href companion (omitempty).
func IfNotUTF8(p string) string {
	if utf8.ValidString(p) {
		return ""
	}
	return Escape(p)
}

// List is the companion of a list of paths: every one of ps escaped, in
// order, when any of them is not valid UTF-8; else nil.
func List(ps []string) []string {
	all := true
	for _, p := range ps {
		all = all && utf8.ValidString(p)
	}
	if all {
		return nil
	}
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = Escape(p)
	}
	return out
}
