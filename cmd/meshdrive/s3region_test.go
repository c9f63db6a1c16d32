package main

import (
	"path/filepath"
	"strings"
	"testing"

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
