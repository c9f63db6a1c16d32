package web

import (
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
)

// errPanic marks an error that was a recovered panic.
var errPanic = errors.New("a bug")

// safely runs fn, turning a panic into an error logged with its stack: a
// goroutine the server starts must not take the mount down with it (an
// HTTP handler's panic is recovered by net/http; a goroutine's is not).
func safely(log *slog.Logger, what string, fn func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			log.Error("web: panic", "in", what, "panic", p, "stack", string(debug.Stack()))
			err = fmt.Errorf("%s failed inside meshdrive (%w: %v); the log has the details", what, errPanic, p)
		}
	}()
	return fn()
}
