package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/term"
)

// passphraseSource says where a passphrase comes from, in order: a file,
// an environment variable, a prompt on the terminal.
type passphraseSource struct {
	file   string // --passphrase-file
	envVar string // MESHDRIVE_PASSPHRASE
	flag   string // the file's flag in errors ("" is --passphrase-file)
}

// errNoPassphrase: no file, no variable, and stdin is not a terminal.
var errNoPassphrase = errors.New("no passphrase: give --passphrase-file FILE, set MESHDRIVE_PASSPHRASE, or run on a terminal")

// unreadableFile is the error for a file a flag names that cannot be
// read.
func unreadableFile(flag, path string, err error) error {
	if pe := (*os.PathError)(nil); errors.As(err, &pe) {
		err = pe.Err // the path is in the message already
	}
	return fmt.Errorf("cannot read %s %s: %w; check the path and that this user may read it", flag, path, err)
}

// read returns the passphrase. With confirm set, a prompted passphrase is
// asked twice and must match (for init and passwd).
func (s passphraseSource) read(e *env, prompt string, confirm bool) ([]byte, error) {
	if s.file != "" {
		b, err := os.ReadFile(s.file)
		if err != nil {
			flag := s.flag
			if flag == "" {
				flag = "--passphrase-file"
			}
			return nil, unreadableFile(flag, s.file, err)
		}
		b = bytes.TrimRight(b, "\r\n")
		if len(b) == 0 {
			return nil, fmt.Errorf("passphrase file %s is empty", s.file)
		}
		return b, nil
	}
	if v := e.getenv(s.envVar); v != "" {
		return []byte(v), nil
	}
	if e.stdin == nil || !term.IsTerminal(int(e.stdin.Fd())) {
		if s.envVar != "MESHDRIVE_PASSPHRASE" {
			return nil, fmt.Errorf("no passphrase: give a file, set %s, or run on a terminal", s.envVar)
		}
		return nil, errNoPassphrase
	}
	fd := int(e.stdin.Fd())
	fmt.Fprintf(e.stderr, "%s: ", prompt)
	p, err := term.ReadPassword(fd)
	fmt.Fprintln(e.stderr)
	if err != nil {
		return nil, fmt.Errorf("reading passphrase: %w", err)
	}
	if len(p) == 0 {
		return nil, errors.New("empty passphrase")
	}
	if confirm {
		fmt.Fprintf(e.stderr, "%s (again): ", prompt)
		q, err := term.ReadPassword(fd)
		fmt.Fprintln(e.stderr)
		if err != nil {
			return nil, fmt.Errorf("reading passphrase: %w", err)
		}
		if !bytes.Equal(p, q) {
			return nil, errors.New("the two passphrases differ; nothing was changed")
		}
	}
	return p, nil
}

// origin says where read took the passphrase from, for an error about it:
// a stale MESHDRIVE_PASSPHRASE or an old file is the usual wrong one.
func (s passphraseSource) origin(e *env) string {
	flag := s.flag
	if flag == "" {
		flag = "--passphrase-file"
	}
	switch {
	case s.file != "":
		return "read from " + flag + " " + s.file
	case e.getenv(s.envVar) != "":
		return "taken from $" + s.envVar
	}
	return "typed at the prompt"
}

// isTerminal reports whether w is a terminal (progress bars go there;
// plain lines elsewhere).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
