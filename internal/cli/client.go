package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"time"
)

// requestTimeout bounds one request that is not a long poll.
const requestTimeout = 60 * time.Second

// Content types of the Confluent schema registry API.
const (
	registryContentType = "application/vnd.schemaregistry.v1+json"
	registryAccept      = "application/vnd.schemaregistry.v1+json, application/vnd.schemaregistry+json; q=0.9, application/json; q=0.5"
)

// client calls the REST API and the schema registry.
type client struct {
	hc       *http.Client
	api      string // REST base URL, without a trailing slash
	registry string // schema registry base URL, without a trailing slash
	// user and password, when user is set, go with every request (HTTP
	// Basic).
	user, password string
}

// serverError is an error answer from the server.
type serverError struct {
	Status   int    // HTTP status
	Code     string // REST error code ("not_found"), if any
	RegCode  int    // Confluent error_code (40401), if any
	Message  string
	Registry bool // the answer came from the schema registry
}

func (e *serverError) Error() string {
	var detail string
	switch {
	case e.Code != "":
		detail = fmt.Sprintf("HTTP %d, %s", e.Status, e.Code)
	case e.RegCode != 0:
		detail = fmt.Sprintf("HTTP %d, error code %d", e.Status, e.RegCode)
	default:
		detail = fmt.Sprintf("HTTP %d %s", e.Status, http.StatusText(e.Status))
	}
	msg := e.Message
	if e.Registry && e.RegCode == 0 && e.Status == http.StatusNotFound {
		msg = "the schema registry is not available at this URL: " + msg
	}
	return fmt.Sprintf("%s (%s)", msg, detail)
}

// isStatus reports whether err is a server answer with that HTTP status.
func isStatus(err error, status int) bool {
	var se *serverError
	return errors.As(err, &se) && se.Status == status
}

// request is one call.
type request struct {
	method   string
	base     string // c.api or c.registry
	path     string // escaped path under base, with any query
	body     any    // sent as JSON when not nil
	registry bool   // Confluent content types and error shape
	timeout  time.Duration
}

// do sends r and returns the answer's body, or an error naming what went
// wrong: the server's error, or why the server could not be reached.
func (c *client) do(ctx context.Context, r request) ([]byte, error) {
	if r.timeout == 0 {
		r.timeout = requestTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	var body io.Reader
	if r.body != nil {
		b, err := json.Marshal(r.body)
		if err != nil {
			return nil, fmt.Errorf("encode request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, r.base+r.path, body)
	if err != nil {
		return nil, fmt.Errorf("bad URL %q: %w", r.base+r.path, err)
	}
	if r.registry {
		req.Header.Set("Accept", registryAccept)
		if body != nil {
			req.Header.Set("Content-Type", registryContentType)
		}
	} else {
		req.Header.Set("Accept", "application/json")
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
	}
	req.Header.Set("User-Agent", "streamctl")
	if c.user != "" {
		req.SetBasicAuth(c.user, c.password)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, reachError(ctx, r, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, reachError(ctx, r, fmt.Errorf("read answer: %w", err))
	}
	if resp.StatusCode >= 300 {
		return nil, decodeError(resp.StatusCode, raw, r.registry)
	}
	return raw, nil
}

// call is do, decoding the answer into out (when not nil).
func (c *client) call(ctx context.Context, r request, out any) ([]byte, error) {
	raw, err := c.do(ctx, r)
	if err != nil {
		return nil, err
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return nil, fmt.Errorf("unexpected answer from %s %s: %w: %.200q", r.method, r.base+r.path, err, raw)
		}
	}
	return raw, nil
}

// decodeError turns an error answer into a serverError: the REST shape
// {"error": code, "message": text}, the Confluent shape {"error_code": n,
// "message": text}, or the raw body.
func decodeError(status int, raw []byte, registry bool) error {
	se := &serverError{Status: status, Registry: registry}
	var body struct {
		Error     json.RawMessage `json:"error"`
		ErrorCode int             `json:"error_code"`
		Message   string          `json:"message"`
	}
	if json.Unmarshal(raw, &body) == nil {
		var code string
		if json.Unmarshal(body.Error, &code) != nil {
			var n int
			if json.Unmarshal(body.Error, &n) == nil && n != 0 {
				code = fmt.Sprint(n)
			}
		}
		se.Code, se.RegCode, se.Message = code, body.ErrorCode, body.Message
	}
	if se.Message == "" {
		se.Message = strings.TrimSpace(string(raw))
		if len(se.Message) > 300 {
			se.Message = se.Message[:300] + "…"
		}
		if se.Message == "" {
			se.Message = http.StatusText(status)
		}
	}
	return se
}

// reachError explains why a request got no answer.
func reachError(ctx context.Context, r request, err error) error {
	what, hint := "the StreamHouse server", "STREAMHOUSE_API_URL or --api-url"
	if r.registry {
		what, hint = "the schema registry", "SCHEMA_REGISTRY_URL or --schema-registry-url"
	}
	var dnsErr *net.DNSError
	switch {
	case errors.Is(err, context.Canceled):
		return err // interrupted: reported as such
	case errors.Is(ctx.Err(), context.DeadlineExceeded) || errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%s at %s did not answer %s %s within %s", what, r.base, r.method, r.path, r.timeout)
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("cannot connect to %s at %s: connection refused (is it running? set %s)", what, r.base, hint)
	case errors.As(err, &dnsErr):
		return fmt.Errorf("cannot connect to %s at %s: unknown host %q (set %s)", what, r.base, dnsErr.Name, hint)
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return fmt.Errorf("cannot connect to %s at %s: %v%s", what, r.base, err, tlsHint(err))
}

// normalizeURL accepts "host:port" as http://host:port and drops a
// trailing slash.
func normalizeURL(flag, raw string) (string, error) {
	raw = strings.TrimSpace(raw)
	if !strings.Contains(raw, "://") {
		raw = "http://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return "", usagef("%s %q is not an http:// or https:// URL", flag, raw)
	}
	return strings.TrimRight(raw, "/"), nil
}

// pathEscape escapes one path segment.
func pathEscape(s string) string { return url.PathEscape(s) }
