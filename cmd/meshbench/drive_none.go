//go:build nodrive

package main

import (
	"context"
	"errors"
	"log/slog"
)

// driveBuilt is false in a -tags nodrive build: only the loopbacks (A, B)
// are measured.
const driveBuilt = false

func mountDrive(ctx context.Context, a serveArgs, log *slog.Logger) (mounted, error) {
	return nil, errors.New("this meshbench was built with -tags nodrive: it cannot mount the drive")
}
