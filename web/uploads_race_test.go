package web

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestUploadsEndRacesAdd: uploads that start while end waits for the ones
// it ended (a web page sending files back to back during an unmount that
// then fails as busy) never panic the mount. A review found a WaitGroup
// added to while waited on ("WaitGroup is reused before previous Wait has
// returned").
func TestUploadsEndRacesAdd(t *testing.T) {
	u := &uploads{idle: time.Minute}
	for range 5000 {
		u.mu.Lock()
		u.refuseUntil = time.Time{} // as after a failed unmount's refusal ran out
		u.mu.Unlock()
		_, done := u.add(httptest.NewRecorder(), io.NopCloser(strings.NewReader("")))
		stop := make(chan struct{})
		finished := make(chan struct{})
		go func() {
			defer close(finished)
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, d := u.add(httptest.NewRecorder(), io.NopCloser(strings.NewReader(""))); d != nil {
					d()
				}
			}
		}()
		go done()
		u.end(time.Second)
		close(stop)
		<-finished
	}
}
