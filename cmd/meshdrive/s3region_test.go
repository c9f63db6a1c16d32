package main

import (
	"bytes"
	"net"
	"path/filepath"
	"strings"
	"testing"

	remoteopen "github.com/meshdrive/meshdrive/remote/open"
	"github.com/meshdrive/meshdrive/remote/remotetest"
)

// TestInitKeepsS3Region: an S3 node opened with the region of $AWS_REGION
// keeps that region in the drive's config, so a mount, recover or node add
// without $AWS_REGION opens it the same way.
func TestInitKeepsS3Region(t *testing.T) {
	addr := remotetest.StartVersitygw(t)
	base := t.TempDir()
	dir := filepath.Join(base, "data")
	env := cmdEnv("MESHDRIVE_PASSPHRASE=correct horse battery staple",
		"AWS_ACCESS_KEY_ID="+remotetest.VersitygwAccess, "AWS_SECRET_ACCESS_KEY="+remotetest.VersitygwSecret,
		"AWS_REGION=us-east-1")
	s3 := "s3://regionbkt/n?endpoint=" + addr + "&secure=false"
	mustRun(t, env, "init", "--data", dir, "--node", s3, "--node", filepath.Join(base, "node"))
	cfg, err := loadConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := cfg.Nodes[0].URL, s3+"&region=us-east-1"; got != want {
		t.Errorf("the S3 node in the config: %s, want %s", got, want)
	}
	if got := cfg.Nodes[1].URL; strings.Contains(got, "region") {
		t.Errorf("the directory node in the config: %s", got)
	}
}

// TestFailedInitRemovesItsBuckets: an init that fails after it opened its
// S3 nodes (another node does not answer) removes the buckets it made,
// one shared by two nodes included, with what it put in them, and leaves
// a bucket that was there before as it was. It left them all behind.
func TestFailedInitRemovesItsBuckets(t *testing.T) {
	addr := remotetest.StartVersitygw(t)
	creds := map[string]string{"AWS_ACCESS_KEY_ID": remotetest.VersitygwAccess, "AWS_SECRET_ACCESS_KEY": remotetest.VersitygwSecret}
	ro := remoteopen.Options{Getenv: func(k string) string { return creds[k] }}
	env := cmdEnv("MESHDRIVE_PASSPHRASE=correct horse battery staple",
		"AWS_ACCESS_KEY_ID="+remotetest.VersitygwAccess, "AWS_SECRET_ACCESS_KEY="+remotetest.VersitygwSecret)
	s3 := func(bucket, prefix string) string {
		return "s3://" + bucket + "/" + prefix + "?endpoint=" + addr + "&secure=false"
	}
	// A bucket that exists, with someone else's object in it.
	old, err := remoteopen.Store(t.Context(), s3("existing", "other"), ro)
	if err != nil {
		t.Fatal(err)
	}
	theirs := remotetest.Object(t, 1, 100, 0)
	if err := old.Put(t.Context(), "theirs", theirs); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String()
	ln.Close()

	dir := filepath.Join(t.TempDir(), "data")
	assertRefusal(t, runBin(t, env, "init", "--data", dir, "--node", s3("made", "a"), "--node", s3("made", "b"),
		"--node", s3("existing", "n"), "--node", dead, "--k", "2", "--m", "2"), "", "", dead, "unreachable")
	bucket := func(u string) bool {
		t.Helper()
		_, exists, ok, err := remoteopen.Bucket(t.Context(), u, ro)
		if !ok || err != nil {
			t.Fatalf("bucket of %s: ok %v, %v", u, ok, err)
		}
		return exists
	}
	if bucket(s3("made", "a")) {
		t.Errorf("the failed init left the bucket it made behind")
	}
	if !bucket(s3("existing", "n")) {
		t.Fatalf("the failed init removed a bucket that was there before it")
	}
	buf := make([]byte, len(theirs))
	if err := old.Get(t.Context(), "theirs", 0, buf); err != nil || !bytes.Equal(buf, theirs) {
		t.Errorf("the object in the bucket that was there before: %v, %v", bytes.Equal(buf, theirs), err)
	}
}

func TestWithS3Region(t *testing.T) {
	for _, c := range []struct{ u, region, want string }{
		{"s3://b/p", "eu-west-1", "s3://b/p?region=eu-west-1"},
		{"s3://b/p?", "eu-west-1", "s3://b/p?region=eu-west-1"},
		{"s3://b/p?endpoint=h:1", "eu-west-1", "s3://b/p?endpoint=h:1&region=eu-west-1"},
		{"S3://b/p?endpoint=h:1&region=us-west-2", "eu-west-1", "S3://b/p?endpoint=h:1&region=us-west-2"},
		{"s3://b/p", "", "s3://b/p"},
		{"http://h:1", "eu-west-1", "http://h:1"},
		{"/srv/node", "eu-west-1", "/srv/node"},
	} {
		if got := withS3Region(c.u, c.region); got != c.want {
			t.Errorf("withS3Region(%q, %q) = %q, want %q", c.u, c.region, got, c.want)
		}
	}
}
