package open

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/minio/minio-go/v7/pkg/s3utils"

	"github.com/meshdrive/meshdrive/remote"
	"github.com/meshdrive/meshdrive/remote/dirstore"
	"github.com/meshdrive/meshdrive/remote/node"
	"github.com/meshdrive/meshdrive/remote/s3store"
)

// Forms is the list of accepted URL forms, for messages.
const Forms = "/path/to/dir, file:///path/to/dir, http(s)://[TOKEN@]host:port, " +
	"s3://bucket/prefix?endpoint=host:port&region=R&secure=false&keys=NAME (keys in AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY; " +
	"with keys=NAME, in AWS_ACCESS_KEY_ID_NAME, AWS_SECRET_ACCESS_KEY_NAME)"

// ErrBadURL is wrapped by every error about the URL's form.
var ErrBadURL = errors.New("bad store URL")

// Options configure the opened store.
type Options struct {
	// Token for node URLs; it wins over a token in the URL when both are
	// set.
	Token string
	// Logger is passed to the store. Nil discards.
	Logger *slog.Logger
	// Getenv reads the S3 credentials (default os.Getenv).
	Getenv func(string) string
	// MustExist: a directory store is opened, never made
	// (dirstore.Options.MustExist).
	MustExist bool
	// ID is the node's id as the drive recorded it ("": none): a
	// directory store whose mark holds another is refused, and a node
	// server that reports another fails every call (ErrWrongNode).
	ID string
}

// Store opens the store rawURL names.
func Store(ctx context.Context, rawURL string, o Options) (remote.Store, error) {
	if o.Getenv == nil {
		o.Getenv = os.Getenv
	}
	if err := CheckForm(rawURL); err != nil {
		return nil, err
	}
	s := strings.TrimSpace(rawURL)
	scheme, _, hasScheme := strings.Cut(s, "://")
	if !hasScheme {
		return openDir(s, o)
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, bad(rawURL, "does not parse")
	}
	switch strings.ToLower(scheme) {
	case "file":
		if u.Host != "" && u.Host != "localhost" {
			return nil, bad(rawURL, "file URLs take an absolute path: file:///path/to/dir")
		}
		if u.Path == "" || u.RawQuery != "" || u.Fragment != "" {
			return nil, bad(rawURL, "file URLs take an absolute path and nothing else")
		}
		return openDir(u.Path, o)
	case "http", "https":
		if u.Host == "" {
			return nil, bad(rawURL, "no host")
		}
		if p := u.Port(); p != "" {
			if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
				return nil, bad(rawURL, "port "+p+" is not a port (1 to 65535)")
			}
		}
		c, err := node.NewClient(s, node.ClientOptions{Token: o.Token, Logger: o.Logger})
		if err != nil {
			return nil, fmt.Errorf("%w %q: %w; accepted: %s", ErrBadURL, redact(rawURL), err, Forms)
		}
		// The client tries each call once; retries wrap it here.
		st := remote.WithRetry(c, remote.RetryOptions{
			Retries: remote.DefaultRetry.Retries, Backoff: remote.DefaultRetry.Backoff, Logger: o.Logger,
		})
		if o.ID != "" {
			st = &identity{Store: st, url: s, want: o.ID}
		}
		return st, nil
	case "s3":
		return openS3(ctx, rawURL, u, o)
	}
	return nil, bad(rawURL, "unknown scheme "+strconv.Quote(scheme))
}

var hostPort = regexp.MustCompile(`^[A-Za-z0-9.\-]+:[0-9]+$`)

// keysName is an S3 URL's keys=NAME: it ends environment variable names.
var keysName = regexp.MustCompile(`^[A-Za-z0-9_]{1,64}$`)

// LocalPath returns the directory rawURL names when it names one (a path,
// or a file URL), as Store would open it. Store makes a local node's
// directory; a caller that must not make one checks it first.
func LocalPath(rawURL string) (string, bool) {
	s := strings.TrimSpace(rawURL)
	scheme, _, hasScheme := strings.Cut(s, "://")
	switch {
	case s == "":
		return "", false
	case !hasScheme:
		return s, !hostPort.MatchString(s)
	case strings.EqualFold(scheme, "file"):
		u, err := url.Parse(s)
		if err != nil || u.Path == "" {
			return "", false
		}
		return u.Path, true
	}
	return "", false
}

// CheckForm reports what Store would refuse in rawURL's form alone (empty,
// host:port without a scheme), without opening anything.
func CheckForm(rawURL string) error {
	s := strings.TrimSpace(rawURL)
	if s == "" {
		return bad(rawURL, "empty")
	}
	if !strings.Contains(s, "://") && hostPort.MatchString(s) {
		return bad(rawURL, "looks like host:port; write http://"+s+" for a node")
	}
	return nil
}

func bad(rawURL, why string) error {
	return fmt.Errorf("%w %q: %s; accepted: %s", ErrBadURL, redact(rawURL), why, Forms)
}

// redact hides a token (userinfo) in a URL.
func redact(s string) string {
	i := strings.Index(s, "://")
	if i < 0 {
		return s
	}
	rest := s[i+3:]
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	if at := strings.LastIndex(rest[:end], "@"); at >= 0 {
		return s[:i+3] + "REDACTED" + rest[at:]
	}
	return s
}

func openDir(path string, o Options) (remote.Store, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("open store %q: %w", path, err)
	}
	return dirstore.New(abs, dirstore.Options{Logger: o.Logger, MustExist: o.MustExist, ID: o.ID})
}

// s3Options are the options of the S3 store rawURL (parsed: u) names.
func s3Options(rawURL string, u *url.URL, o Options) (s3store.Options, error) {
	var so s3store.Options
	if u.User != nil {
		return so, bad(rawURL, "put S3 keys in AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, not in the URL")
	}
	if u.Host == "" {
		return so, bad(rawURL, "no bucket")
	}
	so = s3store.Options{
		Bucket:   u.Host,
		Prefix:   strings.Trim(u.Path, "/"),
		Endpoint: "s3.amazonaws.com",
		Secure:   true,
		Region:   o.Getenv("AWS_REGION"),
		Logger:   o.Logger,
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return so, bad(rawURL, "bad query")
	}
	keys := ""
	for k, v := range q {
		if len(v) != 1 {
			return so, bad(rawURL, k+" given more than once")
		}
		switch k {
		case "endpoint":
			so.Endpoint = v[0]
		case "region":
			so.Region = v[0]
		case "keys":
			if !keysName.MatchString(v[0]) {
				return so, bad(rawURL, "keys names the credentials' variables (AWS_ACCESS_KEY_ID_NAME): letters, digits and _")
			}
			keys = v[0]
		case "secure":
			b, err := strconv.ParseBool(v[0])
			if err != nil {
				return so, bad(rawURL, "secure must be true or false")
			}
			so.Secure = b
		default:
			return so, bad(rawURL, "unknown parameter "+strconv.Quote(k)+" (endpoint, region, secure, keys)")
		}
	}
	if so.Endpoint == "" || strings.Contains(so.Endpoint, "/") {
		return so, bad(rawURL, "endpoint must be host:port")
	}
	if err := s3utils.CheckValidBucketName(so.Bucket); err != nil {
		// minio-go checks it on every call, as an error without a status,
		// which would read as a node that does not answer.
		return so, bad(rawURL, "bucket "+strconv.Quote(so.Bucket)+": "+err.Error())
	}
	// Nodes on different accounts or providers each name their pair
	// (keys=NAME); the others share the default one.
	idVar, secretVar := "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"
	if keys != "" {
		idVar, secretVar = idVar+"_"+strings.ToUpper(keys), secretVar+"_"+strings.ToUpper(keys)
	}
	so.AccessKey, so.SecretKey = o.Getenv(idVar), o.Getenv(secretVar)
	if so.AccessKey == "" || so.SecretKey == "" {
		return so, fmt.Errorf("open store %q: no S3 credentials: set %s and %s", rawURL, idVar, secretVar)
	}
	return so, nil
}

func openS3(ctx context.Context, rawURL string, u *url.URL, o Options) (remote.Store, error) {
	so, err := s3Options(rawURL, u, o)
	if err != nil {
		return nil, err
	}
	st, err := s3store.New(ctx, so)
	if err != nil {
		return nil, fmt.Errorf("open store %q: %w", rawURL, err)
	}
	return st, nil
}

// s3URL parses rawURL when it is an s3:// URL (ok false otherwise) into
// its store's options.
func s3URL(rawURL string, o Options) (so s3store.Options, ok bool, err error) {
	if o.Getenv == nil {
		o.Getenv = os.Getenv
	}
	s := strings.TrimSpace(rawURL)
	scheme, _, hasScheme := strings.Cut(s, "://")
	if !hasScheme || !strings.EqualFold(scheme, "s3") {
		return so, false, nil
	}
	u, err := url.Parse(s)
	if err != nil {
		return so, true, bad(rawURL, "does not parse")
	}
	so, err = s3Options(rawURL, u, o)
	return so, true, err
}

// Bucket names the bucket of an s3:// URL, as endpoint/bucket (ok false
// for any other URL), and says whether it exists now, without making it:
// what a caller that may give up after Store (init) notes first, to know
// which buckets RemoveBucket may undo.
func Bucket(ctx context.Context, rawURL string, o Options) (id string, exists, ok bool, err error) {
	so, ok, err := s3URL(rawURL, o)
	if !ok || err != nil {
		return "", false, ok, err
	}
	exists, err = s3store.BucketExists(ctx, so)
	return so.Endpoint + "/" + so.Bucket, exists, true, err
}

// RemoveBucket deletes the bucket of an s3:// URL and every object in it
// (s3store.RemoveBucket): only for a bucket Bucket found missing and Store
// then made.
func RemoveBucket(ctx context.Context, rawURL string, o Options) error {
	so, ok, err := s3URL(rawURL, o)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%w %q: not an S3 URL", ErrBadURL, redact(rawURL))
	}
	return s3store.RemoveBucket(ctx, so)
}

// Down returns a store that stands in for a node whose store could not be
// opened (a mount never waits for the grid): every call fails with
// remote.ErrUnavailable and says why.
func Down(cause error) remote.Store { return downStore{cause: cause} }

type downStore struct{ cause error }

func (d downStore) err() error { return fmt.Errorf("%w: %v", remote.ErrUnavailable, d.cause) }

func (d downStore) Put(context.Context, string, []byte) error        { return d.err() }
func (d downStore) Get(context.Context, string, int64, []byte) error { return d.err() }
func (d downStore) Stat(context.Context, string) (remote.ObjectInfo, error) {
	return remote.ObjectInfo{}, d.err()
}
func (d downStore) Delete(context.Context, string) error { return d.err() }
func (d downStore) List(context.Context, string, string, int) ([]remote.ObjectInfo, error) {
	return nil, d.err()
}
func (d downStore) Info(context.Context) (remote.NodeInfo, error) { return remote.NodeInfo{}, d.err() }
