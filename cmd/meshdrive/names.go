package main

import (
	"fmt"
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"
)

// showName is a file name or path (or a snapshot's name) as the commands
// print it. Names are bytes chosen by whoever made the file: printed raw,
// one holding ESC, a newline or a carriage return rewrites the terminal or
// forges lines of output, and one in Latin-1 prints as mojibake. A name
// that is printable UTF-8 prints as it is, byte for byte; any other is
// quoted as bash, zsh and ksh read it, $'...', with \xHH for a byte that
// is not UTF-8 or a control character (\n, \r, \t... by their letters),
// \uHHHH for an invisible or unassigned character (a right-to-left
// override), and \' and \\: café.txt named in Latin-1 (the byte 0xE9)
// prints as $'caf\xe9.txt', which pasted into a shell names the file
// again. A name that begins with $' is quoted too, so a printed name is
// never ambiguous.
func showName(s string) string {
	if plainName(s) {
		return s
	}
	var b strings.Builder
	b.WriteString("$'")
	escapeTo(&b, s, true)
	b.WriteByte('\'')
	return b.String()
}

// plainText is a message for the terminal with what showName escapes in a
// name escaped the same way, but not quoted: the last guard of a line the
// commands print, for a name that reached it from elsewhere (an error of
// the mount that names the path it was given).
func plainText(s string) string {
	if printable(s) {
		return s
	}
	var b strings.Builder
	escapeTo(&b, s, false)
	return b.String()
}

// utf8Text is s with each byte that is not UTF-8 written \xHH, as
// plainText writes it: for a message that goes through JSON, which would
// show such a byte as U+FFFD.
func utf8Text(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			fmt.Fprintf(&b, `\x%02x`, s[i])
		} else {
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

// escapeTo writes s to b with each byte that is not UTF-8, each control
// character and each character that prints nothing escaped as $'...'
// reads them; quote escapes ' and \ too.
func escapeTo(b *strings.Builder, s string, quote bool) {
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			fmt.Fprintf(b, `\x%02x`, s[i])
		case quote && (r == '\'' || r == '\\'):
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x80 && ctlLetters[r] != 0:
			b.WriteByte('\\')
			b.WriteByte(ctlLetters[r])
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(b, `\x%02x`, r)
		case !printableRune(r) && r <= 0xffff:
			fmt.Fprintf(b, `\u%04x`, r)
		case !printableRune(r):
			fmt.Fprintf(b, `\U%08x`, r)
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
}

// ctlLetters are the control characters $'...' spells by a letter.
var ctlLetters = [0x80]byte{'\a': 'a', '\b': 'b', '\t': 't', '\n': 'n', '\v': 'v', '\f': 'f', '\r': 'r'}

// plainName reports whether showName prints s as it is.
func plainName(s string) bool { return printable(s) && !strings.HasPrefix(s, "$'") }

// printable reports whether s is UTF-8 of printableRune only.
func printable(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsFunc(s, func(r rune) bool { return !printableRune(r) })
}

// printableRune: a letter, mark, number, punctuation, symbol or space,
// and the zero-width joiners that emoji and some scripts need; not a
// control, format (bidi overrides), separator of lines, private or
// unassigned character.
func printableRune(r rune) bool {
	return unicode.IsGraphic(r) || r == '\u200c' || r == '\u200d'
}

// showNames is showName of each of names.
func showNames(names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = showName(n)
	}
	return out
}

// pathOf is a path the mount sent in JSON, with its bytes: JSON shows a
// byte that is not UTF-8 as U+FFFD, and the FIELD_href companion the
// mount adds for such a path (docs/API.md) has them %-encoded. text is
// used when there is no companion, or it does not decode.
func pathOf(text, escaped string) string {
	if escaped == "" {
		return text
	}
	segs := strings.Split(escaped, "/")
	for i, s := range segs {
		d, err := url.PathUnescape(s)
		if err != nil {
			return text
		}
		segs[i] = d
	}
	return strings.Join(segs, "/")
}

// pathsOf is pathOf of each of texts, escaped being their companion
// list (nil, or one for each).
func pathsOf(texts, escaped []string) []string {
	if len(escaped) != len(texts) {
		return texts
	}
	out := make([]string, len(texts))
	for i := range texts {
		out[i] = pathOf(texts[i], escaped[i])
	}
	return out
}
