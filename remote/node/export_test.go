package node

import "time"

// SetUploadPace sets how long an upload may take (uploadGrace, then
// uploadMinRate bytes a second) until restore.
func SetUploadPace(grace time.Duration, minRate int64) (restore func()) {
	g, r := uploadGrace, uploadMinRate
	uploadGrace, uploadMinRate = grace, minRate
	return func() { uploadGrace, uploadMinRate = g, r }
}

// UploadBytes is the upload budget s has taken now.
func UploadBytes(s *Server) int64 {
	s.upMu.Lock()
	defer s.upMu.Unlock()
	return s.upBytes
}
