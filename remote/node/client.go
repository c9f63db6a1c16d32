package node

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/meshdrive/meshdrive/remote"
)

// DefaultTimeout bounds one call of a Client.
const DefaultTimeout = 2 * time.Minute

// ClientOptions configure a Client. The zero value is usable.
type ClientOptions struct {
	// Token is sent as "Authorization: Bearer TOKEN". When empty, the
	// userinfo of the base URL (http://TOKEN@host:port) is used.
	Token string
	// Timeout bounds each call (default DefaultTimeout), within the
	// caller's ctx.
	Timeout time.Duration
	// HTTPClient replaces the client's own (one pooled transport).
	HTTPClient *http.Client
	// Logger: nil discards.
	Logger *slog.Logger
}

// Client is a remote.Store over the node HTTP API of one node. It is safe
// for concurrent use and reuses connections. It tries each call once: a
// failure worth another try wraps remote.ErrUnavailable, and
// remote.WithRetry retries those (open.Store stacks it).
type Client struct {
	base    string // scheme://host[:port][/path], no userinfo, no trailing slash
	token   string
	hc      *http.Client
	timeout time.Duration
	log     *slog.Logger
}

var _ remote.Store = (*Client)(nil)

// NewClient returns a client of the node at baseURL
// ("http(s)://[TOKEN@]host:port[/path]").
func NewClient(baseURL string, o ClientOptions) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil {
		return nil, fmt.Errorf("node: bad URL %q: %w (want http(s)://[TOKEN@]host:port)", redact(baseURL), err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("node: bad URL %q: scheme %q (want http(s)://[TOKEN@]host:port)", redact(baseURL), u.Scheme)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("node: bad URL %q: no host (want http(s)://[TOKEN@]host:port)", redact(baseURL))
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("node: bad URL %q: query or fragment not allowed (want http(s)://[TOKEN@]host:port)", redact(baseURL))
	}
	token := o.Token
	if token == "" && u.User != nil {
		token = u.User.Username()
		if pw, ok := u.User.Password(); ok && token == "" {
			token = pw
		}
	}
	u.User = nil
	c := &Client{
		base:    strings.TrimRight(u.String(), "/"),
		token:   token,
		hc:      o.HTTPClient,
		timeout: o.Timeout,
		log:     o.Logger,
	}
	if c.hc == nil {
		c.hc = &http.Client{Transport: newTransport()}
	}
	if c.timeout <= 0 {
		c.timeout = DefaultTimeout
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	return c, nil
}

func newTransport() *http.Transport {
	d := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           d.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          64,
		MaxIdleConnsPerHost:   32,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
}

// redact hides the userinfo (the token) of a URL for messages.
func redact(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		if i := strings.Index(s, "@"); i >= 0 {
			if j := strings.Index(s, "://"); j >= 0 && j < i {
				return s[:j+3] + "REDACTED" + s[i:]
			}
		}
		return s
	}
	u.User = url.User("REDACTED")
	return u.String()
}

// URL returns the node's base URL, without the token.
func (c *Client) URL() string { return c.base }

func (c *Client) String() string { return "node " + c.base }

// Close drops idle connections.
func (c *Client) Close() error {
	c.hc.CloseIdleConnections()
	return nil
}

// errf names the node, the operation and the object in an error.
func (c *Client) errf(op, name string, err error) error {
	if name == "" {
		return fmt.Errorf("node %s: %s: %w", c.base, op, err)
	}
	return fmt.Errorf("node %s: %s %s: %w", c.base, op, name, err)
}

// request is one HTTP exchange, rebuilt for each attempt.
type request struct {
	method string
	path   string // already escaped
	body   []byte // PUT only; read, never kept
	header http.Header
	// handle reads a successful answer. It runs with the attempt's ctx
	// still live, and its error is returned as is (wrapped, it may be
	// retryable: see retryable).
	handle func(*http.Response) error
	want   []int // success statuses
}

// retryErr marks a failure worth another attempt (it wraps
// remote.ErrUnavailable).
type retryErr struct{ err error }

func (e retryErr) Error() string { return e.err.Error() }
func (e retryErr) Unwrap() error { return e.err }

// do runs req once. op and name go into error messages.
func (c *Client) do(ctx context.Context, op, name string, req request) error {
	if err := ctx.Err(); err != nil {
		return c.errf(op, name, err)
	}
	err := c.attempt(ctx, req)
	if err == nil {
		return nil
	}
	var re retryErr
	if errors.As(err, &re) {
		if ctx.Err() != nil {
			return c.errf(op, name, fmt.Errorf("%w (last failure: %w)", ctx.Err(), re.err))
		}
		return c.errf(op, name, re.err)
	}
	return c.errf(op, name, err)
}

// attempt runs one exchange with its own timeout.
func (c *Client) attempt(ctx context.Context, req request) error {
	actx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	var body io.Reader
	if req.body != nil {
		body = bytes.NewReader(req.body)
	}
	hr, err := http.NewRequestWithContext(actx, req.method, c.base+req.path, body)
	if err != nil {
		return remote.Permanent(err)
	}
	if req.body != nil {
		hr.ContentLength = int64(len(req.body))
		b := req.body
		hr.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
	}
	for k, v := range req.header {
		hr.Header[k] = v
	}
	if c.token != "" {
		hr.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(hr)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return retryErr{fmt.Errorf("%w: %w", remote.ErrUnavailable, unwrapURLError(err))}
	}
	defer func() {
		// Drain a little so the connection can be reused.
		_, _ = io.CopyN(io.Discard, resp.Body, 64<<10)
		resp.Body.Close()
	}()
	for _, s := range req.want {
		if resp.StatusCode == s {
			if req.handle == nil {
				return nil
			}
			err := req.handle(resp)
			if err != nil && ctx.Err() != nil {
				return ctx.Err()
			}
			return err
		}
	}
	return statusError(resp)
}

// unwrapURLError drops the *url.Error layer, whose message repeats the URL
// (and would repeat the method); the caller names the node and object.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// statusError maps an error answer to the remote sentinels.
func statusError(resp *http.Response) error {
	var ae apiError
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	if json.Unmarshal(b, &ae) != nil || ae.Error == "" {
		ae.Error = strings.TrimSpace(string(b))
	}
	msg := fmt.Sprintf("HTTP %d", resp.StatusCode)
	if ae.Error != "" {
		msg += ": " + ae.Error
	}
	var sentinel error
	switch {
	case ae.Code == codeInvalidName || ae.Code == "" && resp.StatusCode == http.StatusBadRequest:
		sentinel = remote.ErrInvalidName
	case ae.Code == codeNotFound || ae.Code == "" && resp.StatusCode == http.StatusNotFound:
		sentinel = remote.ErrNotFound
	case ae.Code == codeRange || resp.StatusCode == http.StatusRequestedRangeNotSatisfiable:
		sentinel = remote.ErrRange
	case ae.Code == codeCorrupt || resp.StatusCode == http.StatusConflict:
		sentinel = remote.ErrCorrupt
	case ae.Code == codeFull || resp.StatusCode == http.StatusInsufficientStorage:
		sentinel = remote.ErrFull
	case ae.Code == codeUnauthorized || resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		sentinel = remote.ErrUnauthorized
	}
	if sentinel != nil {
		return fmt.Errorf("%w (%s)", sentinel, msg)
	}
	if resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusRequestTimeout {
		return retryErr{fmt.Errorf("%w (%s)", remote.ErrUnavailable, msg)}
	}
	if resp.StatusCode == http.StatusNotFound {
		// A 404 with another code: not a meshdrive node, or a wrong path.
		return remote.Permanent(fmt.Errorf("%s; is this a meshdrive node URL?", msg))
	}
	return remote.Permanent(errors.New(msg))
}

func objectURLPath(name string) string { return objectPath + name }

// Put stores data (a shard-format object) under name. data is only read
// during the call.
func (c *Client) Put(ctx context.Context, name string, data []byte) error {
	if err := remote.ValidName(name); err != nil {
		return c.errf("put", name, err)
	}
	if data == nil {
		data = []byte{}
	}
	return c.do(ctx, "put", name, request{
		method: http.MethodPut,
		path:   objectURLPath(name),
		body:   data,
		header: http.Header{"Content-Type": {"application/octet-stream"}},
		want:   []int{http.StatusCreated, http.StatusOK, http.StatusNoContent},
	})
}

// Get reads len(p) bytes of name at off into p; the node verified the
// chunks it sent.
func (c *Client) Get(ctx context.Context, name string, off int64, p []byte) error {
	if err := remote.ValidName(name); err != nil {
		return c.errf("get", name, err)
	}
	if off < 0 {
		return c.errf("get", name, fmt.Errorf("%w: negative offset %d", remote.ErrRange, off))
	}
	if len(p) == 0 {
		oi, err := c.Stat(ctx, name)
		if err != nil {
			return err
		}
		if off > oi.Size {
			return c.errf("get", name, fmt.Errorf("%w: offset %d of %d bytes", remote.ErrRange, off, oi.Size))
		}
		return nil
	}
	n := int64(len(p))
	last := off + n - 1
	return c.do(ctx, "get", name, request{
		method: http.MethodGet,
		path:   objectURLPath(name),
		header: http.Header{"Range": {fmt.Sprintf("bytes=%d-%d", off, last)}},
		want:   []int{http.StatusPartialContent},
		handle: func(resp *http.Response) error {
			start, end, size, err := parseContentRange(resp.Header.Get("Content-Range"))
			if err != nil {
				return remote.Permanent(fmt.Errorf("node answered a bad Content-Range: %w", err))
			}
			if start != off || end != last {
				if start == off && end == size-1 && end < last {
					return fmt.Errorf("%w: [%d,+%d) of %d bytes", remote.ErrRange, off, n, size)
				}
				return remote.Permanent(fmt.Errorf("node answered range %d-%d, asked %d-%d", start, end, off, last))
			}
			if _, err := io.ReadFull(resp.Body, p); err != nil {
				// A cut connection: the node stopped because a piece
				// failed its checksum, or the network failed.
				return retryErr{fmt.Errorf("%w: short body: %w", remote.ErrUnavailable, err)}
			}
			return nil
		},
	})
}

// parseContentRange reads "bytes a-b/size".
func parseContentRange(s string) (start, end, size int64, err error) {
	spec, ok := strings.CutPrefix(s, "bytes ")
	if !ok {
		return 0, 0, 0, fmt.Errorf("%q", s)
	}
	rng, total, ok := strings.Cut(spec, "/")
	if !ok {
		return 0, 0, 0, fmt.Errorf("%q", s)
	}
	a, b, ok := strings.Cut(rng, "-")
	if !ok {
		return 0, 0, 0, fmt.Errorf("%q", s)
	}
	if start, err = parseUint(a); err != nil {
		return 0, 0, 0, fmt.Errorf("%q", s)
	}
	if end, err = parseUint(b); err != nil {
		return 0, 0, 0, fmt.Errorf("%q", s)
	}
	if size, err = parseUint(total); err != nil || end < start || end >= size {
		return 0, 0, 0, fmt.Errorf("%q", s)
	}
	return start, end, size, nil
}

// Stat returns name's size and modification time.
func (c *Client) Stat(ctx context.Context, name string) (remote.ObjectInfo, error) {
	if err := remote.ValidName(name); err != nil {
		return remote.ObjectInfo{}, c.errf("stat", name, err)
	}
	oi := remote.ObjectInfo{Name: name}
	err := c.do(ctx, "stat", name, request{
		method: http.MethodHead,
		path:   objectURLPath(name),
		want:   []int{http.StatusOK},
		handle: func(resp *http.Response) error {
			if resp.ContentLength < 0 {
				return remote.Permanent(errors.New("node answered HEAD without a Content-Length"))
			}
			oi.Size = resp.ContentLength
			if t, err := time.Parse(time.RFC3339Nano, resp.Header.Get(mtimeHeader)); err == nil {
				oi.ModTime = t
			} else if t, err := http.ParseTime(resp.Header.Get("Last-Modified")); err == nil {
				oi.ModTime = t
			}
			return nil
		},
	})
	if err != nil {
		return remote.ObjectInfo{}, err
	}
	return oi, nil
}

// Delete removes name; a missing name is not an error.
func (c *Client) Delete(ctx context.Context, name string) error {
	if err := remote.ValidName(name); err != nil {
		return c.errf("delete", name, err)
	}
	err := c.do(ctx, "delete", name, request{
		method: http.MethodDelete,
		path:   objectURLPath(name),
		want:   []int{http.StatusNoContent, http.StatusOK},
	})
	if errors.Is(err, remote.ErrNotFound) {
		return nil
	}
	return err
}

// List returns up to limit objects with the prefix after `after`.
func (c *Client) List(ctx context.Context, prefix, after string, limit int) ([]remote.ObjectInfo, error) {
	q := url.Values{}
	if prefix != "" {
		q.Set("prefix", prefix)
	}
	if after != "" {
		q.Set("after", after)
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	path := listPath
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var res listResult
	err := c.do(ctx, "list", fmt.Sprintf("prefix %q after %q", prefix, after), request{
		method: http.MethodGet,
		path:   path,
		want:   []int{http.StatusOK},
		handle: func(resp *http.Response) error { return decodeJSON(resp, &res) },
	})
	if err != nil {
		return nil, err
	}
	return res.Objects, nil
}

// Info reports the node's capacity, free bytes, object count and version.
func (c *Client) Info(ctx context.Context) (remote.NodeInfo, error) {
	var ni remote.NodeInfo
	err := c.do(ctx, "info", "", request{
		method: http.MethodGet,
		path:   infoPath,
		want:   []int{http.StatusOK},
		handle: func(resp *http.Response) error { return decodeJSON(resp, &ni) },
	})
	return ni, err
}

var _ remote.Verifier = (*Client)(nil)

// Verify asks the node to check name's checksums where it is stored, so
// only the verdict crosses the network: nil when intact, ErrCorrupt,
// ErrNotFound. A node too old to know the request is verified by reading
// the whole object.
func (c *Client) Verify(ctx context.Context, name string) error {
	if err := remote.ValidName(name); err != nil {
		return c.errf("verify", name, err)
	}
	old := false
	err := c.do(ctx, "verify", name, request{
		method: http.MethodPost,
		path:   verifyPath + name,
		want:   []int{http.StatusNoContent, http.StatusOK, http.StatusNotFound},
		handle: func(resp *http.Response) error {
			if resp.StatusCode != http.StatusNotFound {
				return nil
			}
			if err := statusError(resp); !errors.Is(err, remote.ErrNotFound) {
				old = true // "no such endpoint": a node from before verify
				return nil
			}
			return remote.ErrNotFound
		},
	})
	if old {
		return remote.VerifyObject(ctx, c, name)
	}
	return err
}

// maxJSON bounds a JSON answer (a list page of MaxListLimit objects fits).
const maxJSON = 16 << 20

func decodeJSON(resp *http.Response, v any) error {
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxJSON))
	if err != nil {
		return retryErr{fmt.Errorf("%w: reading answer: %w", remote.ErrUnavailable, err)}
	}
	if err := json.Unmarshal(b, v); err != nil {
		return remote.Permanent(fmt.Errorf("node answered bad JSON: %w", err))
	}
	return nil
}
