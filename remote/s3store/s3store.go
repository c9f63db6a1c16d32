package s3store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/meshdrive/meshdrive/remote"
	"github.com/meshdrive/meshdrive/remote/shard"
)

// Version is reported in NodeInfo.Version.
const Version = "meshdrive-s3/1"

// Defaults.
const (
	DefaultListLimit = 1000
	MaxListLimit     = 1000 // one S3 page
	// DefaultCountLimit bounds the objects Info counts.
	DefaultCountLimit = 1_000_000
)

// Options configure a Store.
type Options struct {
	// Endpoint is host:port of the S3 server (no scheme).
	Endpoint string
	// Bucket holds the objects; it is created when missing.
	Bucket string
	// Prefix is prepended (with a "/") to every object name, so several
	// "nodes" can share one bucket.
	Prefix string
	// AccessKey and SecretKey sign requests (SigV4).
	AccessKey, SecretKey string
	// Region of the bucket (default "us-east-1").
	Region string
	// Secure selects https.
	Secure bool
	// MaxRetries is minio-go's retry count for one call (default 3; 1 means
	// no retry).
	MaxRetries int
	// CountLimit bounds how many objects Info counts before it stops
	// (default DefaultCountLimit); a larger bucket reports the bound.
	CountLimit int64
	// Transport replaces the default pooled transport.
	Transport http.RoundTripper
	// Logger receives warnings. Nil discards.
	Logger *slog.Logger
}

// Store is a remote.Store over an S3 bucket and prefix.
type Store struct {
	c          *minio.Client
	core       minio.Core
	bucket     string
	prefix     string // "" or ends in "/"
	endpoint   string
	countLimit int64
	log        *slog.Logger
	cnt        objCount
}

var _ remote.Store = (*Store)(nil)

// New connects to the S3 server and makes sure the bucket exists.
func New(ctx context.Context, o Options) (*Store, error) {
	c, o, err := newClient(o)
	if err != nil {
		return nil, err
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	prefix := strings.Trim(o.Prefix, "/")
	if prefix != "" {
		prefix += "/"
	}
	s := &Store{c: c, core: minio.Core{Client: c}, bucket: o.Bucket, prefix: prefix,
		endpoint: o.Endpoint, countLimit: o.CountLimit, log: log}
	ok, err := c.BucketExists(ctx, o.Bucket)
	if err != nil {
		return nil, s.mapErr("check bucket", "", err)
	}
	if !ok {
		err := c.MakeBucket(ctx, o.Bucket, minio.MakeBucketOptions{Region: o.Region})
		if err != nil {
			code := minio.ToErrorResponse(err).Code
			if code != "BucketAlreadyOwnedByYou" && code != "BucketAlreadyExists" {
				return nil, s.mapErr("create bucket", "", err)
			}
		}
		log.Info("s3store: created bucket", "endpoint", o.Endpoint, "bucket", o.Bucket)
	}
	return s, nil
}

// newClient checks o, fills its defaults and makes its client.
func newClient(o Options) (*minio.Client, Options, error) {
	if o.Endpoint == "" || strings.Contains(o.Endpoint, "://") {
		return nil, o, fmt.Errorf("s3store: endpoint %q: want host:port without a scheme", o.Endpoint)
	}
	if o.Bucket == "" {
		return nil, o, errors.New("s3store: no bucket given")
	}
	if o.Region == "" {
		o.Region = "us-east-1"
	}
	if o.MaxRetries == 0 {
		o.MaxRetries = 3
	}
	if o.CountLimit <= 0 {
		o.CountLimit = DefaultCountLimit
	}
	tr := o.Transport
	if tr == nil {
		d := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
		tr = &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           d.DialContext,
			MaxIdleConns:          64,
			MaxIdleConnsPerHost:   32,
			IdleConnTimeout:       90 * time.Second,
			TLSHandshakeTimeout:   10 * time.Second,
			ExpectContinueTimeout: time.Second,
		}
	}
	c, err := minio.New(o.Endpoint, &minio.Options{
		Creds:        credentials.NewStaticV4(o.AccessKey, o.SecretKey, ""),
		Secure:       o.Secure,
		Region:       o.Region,
		Transport:    tr,
		BucketLookup: minio.BucketLookupPath,
		MaxRetries:   o.MaxRetries,
	})
	if err != nil {
		return nil, o, fmt.Errorf("s3store: endpoint %s: %w", o.Endpoint, err)
	}
	return c, o, nil
}

// BucketExists reports whether o's bucket exists, without making it.
func BucketExists(ctx context.Context, o Options) (bool, error) {
	c, o, err := newClient(o)
	if err != nil {
		return false, err
	}
	ok, err := c.BucketExists(ctx, o.Bucket)
	if err != nil {
		return false, (&Store{bucket: o.Bucket, endpoint: o.Endpoint}).mapErr("check bucket", "", err)
	}
	return ok, nil
}

// RemoveBucket deletes o's bucket with every object in it, whatever its
// prefix: it undoes a bucket that New made for a caller that then gave up
// (a failed init). A bucket that is already gone is no error.
func RemoveBucket(ctx context.Context, o Options) error {
	c, o, err := newClient(o)
	if err != nil {
		return err
	}
	s := &Store{bucket: o.Bucket, endpoint: o.Endpoint}
	lctx, cancel := context.WithCancel(ctx) // ends the listing on a return
	defer cancel()
	for obj := range c.ListObjects(lctx, o.Bucket, minio.ListObjectsOptions{Recursive: true}) {
		if obj.Err != nil {
			if minio.ToErrorResponse(obj.Err).Code == "NoSuchBucket" {
				return nil
			}
			return s.mapErr("remove bucket: list it", "", obj.Err)
		}
		if err := c.RemoveObject(ctx, o.Bucket, obj.Key, minio.RemoveObjectOptions{}); err != nil {
			return s.mapErr("remove bucket: empty it", obj.Key, err)
		}
	}
	if err := c.RemoveBucket(ctx, o.Bucket); err != nil && minio.ToErrorResponse(err).Code != "NoSuchBucket" {
		return s.mapErr("remove bucket", "", err)
	}
	return nil
}

func (s *Store) String() string {
	return fmt.Sprintf("s3 %s/%s/%s", s.endpoint, s.bucket, strings.TrimSuffix(s.prefix, "/"))
}

// mapErr maps a minio-go error to the remote sentinels, naming the store
// and the object.
func (s *Store) mapErr(op, name string, err error) error {
	where := fmt.Sprintf("%s: %s", s, op)
	if name != "" {
		where += " " + name
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s: %w", where, err)
	}
	er := minio.ToErrorResponse(err)
	var sentinel error
	switch er.Code {
	case "NoSuchKey", "NotFound":
		sentinel = remote.ErrNotFound
	case "NoSuchBucket":
		return fmt.Errorf("%s: bucket %s is gone: %w (%v)", where, s.bucket, remote.ErrUnavailable, err)
	case "InvalidRange":
		sentinel = remote.ErrRange
	case "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken", "AllAccessDisabled",
		"XAdminUserNotFound": // versitygw's answer to an unknown access key, with status 404
		sentinel = remote.ErrUnauthorized
	case "XMinioStorageFull", "StorageFull", "QuotaExceeded", "XAmzQuotaExceeded", "EntityTooLarge":
		sentinel = remote.ErrFull
	case "InvalidObjectName", "KeyTooLongError", "XMinioInvalidObjectName":
		sentinel = remote.ErrInvalidName
	case "BadDigest", "InvalidDigest", "XAmzContentSHA256Mismatch", "XAmzContentChecksumMismatch":
		sentinel = remote.ErrCorrupt
	}
	if sentinel == nil {
		switch {
		case er.StatusCode == http.StatusNotFound:
			sentinel = remote.ErrNotFound
		case er.StatusCode == http.StatusForbidden || er.StatusCode == http.StatusUnauthorized:
			sentinel = remote.ErrUnauthorized
		case er.StatusCode == http.StatusRequestedRangeNotSatisfiable:
			sentinel = remote.ErrRange
		case er.StatusCode == http.StatusInsufficientStorage:
			sentinel = remote.ErrFull
		case er.StatusCode >= 500 || er.StatusCode == 0:
			// 5xx, or no answer at all (connection refused, reset, DNS).
			sentinel = remote.ErrUnavailable
		}
	}
	if sentinel == nil {
		return fmt.Errorf("%s: %w", where, remote.Permanent(err))
	}
	return fmt.Errorf("%s: %w (%v)", where, sentinel, err)
}

// key is the S3 key of a valid name.
func (s *Store) key(op, name string) (string, error) {
	if err := remote.ValidName(name); err != nil {
		return "", fmt.Errorf("%s: %s: %w", s, op, err)
	}
	return s.prefix + name, nil
}

// Put verifies data as a shard object and uploads it in one PUT of known
// size. data is only read during the call.
func (s *Store) Put(ctx context.Context, name string, data []byte) error {
	k, err := s.key("put", name)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: put %s: %w", s, name, err)
	}
	if _, _, err := shard.Verify(data); err != nil {
		return fmt.Errorf("%s: put %s: refusing object of %d bytes: %w: %w", s, name, len(data), remote.ErrCorrupt, err)
	}
	_, err = s.c.PutObject(ctx, s.bucket, k, bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{
		ContentType:      "application/octet-stream",
		DisableMultipart: true,
		SendContentMd5:   true,
	})
	s.wrote()
	if err != nil {
		return s.mapErr("put", name, err)
	}
	return nil
}

// Get reads len(p) bytes of name at off with one ranged GET. S3 does not
// know the shard format: the bytes are not verified here (the grid checks
// AEAD tags and shard checksums above this layer).
func (s *Store) Get(ctx context.Context, name string, off int64, p []byte) error {
	k, err := s.key("get", name)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: get %s: %w", s, name, err)
	}
	if off < 0 {
		return fmt.Errorf("%s: get %s: negative offset %d: %w", s, name, off, remote.ErrRange)
	}
	if len(p) == 0 {
		oi, err := s.Stat(ctx, name)
		if err != nil {
			return err
		}
		if off > oi.Size {
			return fmt.Errorf("%s: get %s: offset %d of %d bytes: %w", s, name, off, oi.Size, remote.ErrRange)
		}
		return nil
	}
	n := int64(len(p))
	var opts minio.GetObjectOptions
	if err := opts.SetRange(off, off+n-1); err != nil {
		return fmt.Errorf("%s: get %s: %w: %w", s, name, remote.ErrRange, err)
	}
	rc, oi, _, err := s.core.GetObject(ctx, s.bucket, k, opts)
	if err != nil {
		return s.mapErr("get", name, err)
	}
	defer rc.Close()
	if oi.Size != n {
		// S3 clips a range that runs past the end.
		return fmt.Errorf("%s: get %s [%d,+%d): only %d bytes there: %w", s, name, off, n, oi.Size, remote.ErrRange)
	}
	if _, err := io.ReadFull(rc, p); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("%s: get %s: %w", s, name, ctx.Err())
		}
		return fmt.Errorf("%s: get %s: short body: %w (%v)", s, name, remote.ErrUnavailable, err)
	}
	return nil
}

// Stat returns the size and modification time of name.
func (s *Store) Stat(ctx context.Context, name string) (remote.ObjectInfo, error) {
	k, err := s.key("stat", name)
	if err != nil {
		return remote.ObjectInfo{}, err
	}
	if err := ctx.Err(); err != nil {
		return remote.ObjectInfo{}, fmt.Errorf("%s: stat %s: %w", s, name, err)
	}
	oi, err := s.c.StatObject(ctx, s.bucket, k, minio.StatObjectOptions{})
	if err != nil {
		return remote.ObjectInfo{}, s.mapErr("stat", name, err)
	}
	if oi.Size < 0 {
		// minio-go's -1 for an answer without a Content-Length: not a
		// size, and read as one it makes every object look corrupt.
		return remote.ObjectInfo{}, remote.Permanent(fmt.Errorf("%s: stat %s: the server answered HEAD without a Content-Length; "+
			"is %s an S3 server, and not a proxy that drops it?", s, name, s.endpoint))
	}
	return remote.ObjectInfo{Name: name, Size: oi.Size, ModTime: oi.LastModified}, nil
}

// Delete removes name; a missing name is not an error.
func (s *Store) Delete(ctx context.Context, name string) error {
	k, err := s.key("delete", name)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: delete %s: %w", s, name, err)
	}
	s.wrote()
	if err := s.c.RemoveObject(ctx, s.bucket, k, minio.RemoveObjectOptions{}); err != nil {
		err = s.mapErr("delete", name, err)
		if errors.Is(err, remote.ErrNotFound) {
			return nil
		}
		return err
	}
	return nil
}

// List returns up to limit objects whose names start with prefix and sort
// after `after`, in name order. Keys under the store's prefix that are not
// valid names (written by something else) are skipped.
func (s *Store) List(ctx context.Context, prefix, after string, limit int) ([]remote.ObjectInfo, error) {
	if limit <= 0 {
		limit = DefaultListLimit
	}
	limit = min(limit, MaxListLimit)
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%s: list: %w", s, err)
	}
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	opts := minio.ListObjectsOptions{Prefix: s.prefix + prefix, Recursive: true, MaxKeys: limit}
	if after != "" {
		opts.StartAfter = s.prefix + after
	}
	var out []remote.ObjectInfo
	for o := range s.c.ListObjectsIter(lctx, s.bucket, opts) {
		if o.Err != nil {
			return nil, s.mapErr("list", fmt.Sprintf("prefix %q", prefix), o.Err)
		}
		name, ok := strings.CutPrefix(o.Key, s.prefix)
		if !ok || name <= after || !strings.HasPrefix(name, prefix) || remote.ValidName(name) != nil {
			continue
		}
		out = append(out, remote.ObjectInfo{Name: name, Size: o.Size, ModTime: o.LastModified})
		if len(out) >= limit {
			break
		}
	}
	return out, nil
}

// Info reports Capacity and Free as -1 (S3 does not say) and the objects
// under the prefix, up to CountLimit. It asks S3 for one page of one key
// (the health check every few seconds must stay cheap and quick); the
// count is a listing of the whole prefix, which for a large bucket takes
// many pages, so it runs in the background, one at a time, and Info waits
// for it at most countWait: past that it reports the last count, or -1
// before the first. A count is kept countFresh after a write, and
// countKept otherwise, when it took longer than countWait; a quick one
// is made again after every write.
func (s *Store) Info(ctx context.Context) (remote.NodeInfo, error) {
	if err := ctx.Err(); err != nil {
		return remote.NodeInfo{}, fmt.Errorf("%s: info: %w", s, err)
	}
	if _, err := s.List(ctx, "", "", 1); err != nil {
		return remote.NodeInfo{}, err
	}
	return remote.NodeInfo{Capacity: -1, Free: -1, Objects: s.objects(ctx), Version: Version}, nil
}

const (
	countWait  = time.Second
	countFresh = time.Minute
	countKept  = 10 * time.Minute
	countMax   = 10 * time.Minute // one count's own time limit
)

// objCount is Info's count of the objects.
type objCount struct {
	mu      sync.Mutex
	n       int64         // the last count; valid when at is set
	at      time.Time     // when it started
	took    time.Duration // how long it took
	dirty   bool          // written since it started
	running chan struct{} // closed when the count running ends; nil: none
}

// wrote marks the count as behind the bucket.
func (s *Store) wrote() {
	s.cnt.mu.Lock()
	s.cnt.dirty = true
	s.cnt.mu.Unlock()
}

// objects is the object count for Info (-1 before the first one ends).
func (s *Store) objects(ctx context.Context) int64 {
	c := &s.cnt
	c.mu.Lock()
	age := time.Since(c.at)
	if !c.at.IsZero() && ((!c.dirty && age < countKept) || (c.took > countWait && age < countFresh)) {
		defer c.mu.Unlock()
		return c.n
	}
	if c.running == nil {
		c.running = make(chan struct{})
		c.dirty = false
		go s.count(c.running)
	}
	done := c.running
	c.mu.Unlock()
	t := time.NewTimer(countWait)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	case <-ctx.Done():
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.at.IsZero() {
		return -1
	}
	return c.n
}

// count lists the prefix and keeps the count, then closes done.
func (s *Store) count(done chan struct{}) {
	ctx, cancel := context.WithTimeout(context.Background(), countMax)
	defer cancel()
	start := time.Now()
	var n int64
	var err error
	for o := range s.c.ListObjectsIter(ctx, s.bucket, minio.ListObjectsOptions{Prefix: s.prefix, Recursive: true}) {
		if o.Err != nil {
			err = o.Err
			break
		}
		n++
		if n >= s.countLimit {
			break
		}
	}
	c := &s.cnt
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		c.dirty = true // count again next time
		s.log.Warn("s3store: counting the objects failed", "store", s.String(), "err", s.mapErr("info (counting objects)", "", err))
	} else {
		c.n, c.at, c.took = n, start, time.Since(start)
	}
	close(done)
	c.running = nil
}
