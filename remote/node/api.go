package node

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/meshdrive/meshdrive/remote"
)

// Paths of the HTTP API (see doc.go).
const (
	objectPath = "/v1/o/"
	listPath   = "/v1/list"
	infoPath   = "/v1/info"
	verifyPath = "/v1/verify/"
)

// mtimeHeader carries an object's modification time (RFC 3339, nanoseconds)
// on HEAD and GET answers; Last-Modified only has seconds.
const mtimeHeader = "X-Meshdrive-Mtime"

// Error codes in JSON error bodies. The client maps them back to the
// remote sentinels; the HTTP status alone is the fallback.
const (
	codeInvalidName  = "invalid_name"
	codeNotFound     = "not_found"
	codeRange        = "range"
	codeCorrupt      = "corrupt"
	codeFull         = "full"
	codeUnauthorized = "unauthorized"
	codeBadRequest   = "bad_request"
	codeTooLarge     = "too_large"
	codeBusy         = "busy" // 503: try again
	codeMethod       = "method_not_allowed"
	codeInternal     = "internal"
)

// apiError is the body of every error answer.
type apiError struct {
	Code  string `json:"code"`
	Error string `json:"error"`
}

// listResult is the body of GET /v1/list.
type listResult struct {
	Objects []remote.ObjectInfo `json:"objects"`
}

// maxListArg bounds the prefix and after arguments of a list request.
const maxListArg = 2 * remote.MaxNameLen

var (
	errBadRange         = errors.New("malformed Range header")
	errUnsatisfiable    = errors.New("range not satisfiable")
	errMultipleRanges   = errors.New("only a single byte range is supported")
	errBadListArguments = errors.New("bad list arguments")
)

// parseRange resolves a Range header value against an object of size
// bytes. It accepts one range in the forms "bytes=a-b", "bytes=a-" and
// "bytes=-n" (the last n bytes); b past the end is clipped, as HTTP says.
// It returns the offset and length of the range, errBadRange or
// errMultipleRanges for a header it cannot read, errUnsatisfiable for a
// range that starts past the end.
func parseRange(h string, size int64) (off, n int64, err error) {
	spec, ok := strings.CutPrefix(strings.TrimSpace(h), "bytes=")
	if !ok {
		return 0, 0, errBadRange
	}
	spec = strings.TrimSpace(spec)
	if strings.Contains(spec, ",") {
		return 0, 0, errMultipleRanges
	}
	first, last, ok := strings.Cut(spec, "-")
	if !ok {
		return 0, 0, errBadRange
	}
	first, last = strings.TrimSpace(first), strings.TrimSpace(last)
	if first == "" {
		// Suffix range: the last n bytes.
		k, err := parseUint(last)
		if err != nil {
			return 0, 0, errBadRange
		}
		if k == 0 || size == 0 {
			return 0, 0, errUnsatisfiable
		}
		k = min(k, size)
		return size - k, k, nil
	}
	a, err := parseUint(first)
	if err != nil {
		return 0, 0, errBadRange
	}
	b := int64(-1)
	if last != "" {
		if b, err = parseUint(last); err != nil || b < a {
			return 0, 0, errBadRange
		}
	}
	if a >= size {
		return 0, 0, errUnsatisfiable
	}
	if b < 0 || b >= size {
		b = size - 1
	}
	return a, b - a + 1, nil
}

// parseUint parses a non-negative decimal without sign or spaces.
func parseUint(s string) (int64, error) {
	if s == "" || len(s) > 19 {
		return 0, errBadRange
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, errBadRange
		}
	}
	return strconv.ParseInt(s, 10, 64)
}

// parseListQuery reads the prefix, after and limit arguments of a list
// request. limit 0 means the store's default.
func parseListQuery(q url.Values) (prefix, after string, limit int, err error) {
	for k, v := range q {
		switch k {
		case "prefix", "after", "limit":
			if len(v) > 1 {
				return "", "", 0, fmt.Errorf("%w: %q given %d times", errBadListArguments, k, len(v))
			}
		default:
			return "", "", 0, fmt.Errorf("%w: unknown argument %q (accepted: prefix, after, limit)", errBadListArguments, k)
		}
	}
	prefix, after = q.Get("prefix"), q.Get("after")
	if len(prefix) > maxListArg || len(after) > maxListArg {
		return "", "", 0, fmt.Errorf("%w: prefix or after longer than %d bytes", errBadListArguments, maxListArg)
	}
	if s := q.Get("limit"); s != "" {
		n, perr := parseUint(s)
		if perr != nil || n > 1<<20 {
			return "", "", 0, fmt.Errorf("%w: limit %q is not a number from 0 to %d", errBadListArguments, s, 1<<20)
		}
		limit = int(n)
	}
	return prefix, after, limit, nil
}
