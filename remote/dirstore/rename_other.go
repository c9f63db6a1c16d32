//go:build !linux

package dirstore

import "errors"

func renameNoReplace(old, new string) error { return errors.ErrUnsupported }
