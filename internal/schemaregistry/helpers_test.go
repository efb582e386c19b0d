package schemaregistry

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/sr"

	"github.com/streamhouse/streamhouse/internal/metadata"
	"github.com/streamhouse/streamhouse/internal/metadata/metadatatest"
)

// testAPI is an httptest server over a real Registry and store.
type testAPI struct {
	url   string
	store metadata.Store
	reg   *Registry
}

func newAPI(t *testing.T, store metadata.Store) *testAPI {
	t.Helper()
	if store == nil {
		store = metadatatest.OpenSQLite(t)
	}
	reg := New(Config{Store: store})
	srv := httptest.NewServer(reg)
	t.Cleanup(srv.Close)
	return &testAPI{url: srv.URL, store: store, reg: reg}
}

// call sends body (a string is sent as is, anything else as JSON) and
// decodes the answer into out when out is not nil.
func (a *testAPI) call(t *testing.T, method, path string, body any, out any) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		if s, ok := body.(string); ok {
			rd = strings.NewReader(s)
		} else {
			b, err := json.Marshal(body)
			if err != nil {
				t.Fatal(err)
			}
			rd = bytes.NewReader(b)
		}
	}
	req, err := http.NewRequestWithContext(t.Context(), method, a.url+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/vnd.schemaregistry.v1+json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); ct != ContentType {
		t.Errorf("%s %s: Content-Type %q", method, path, ct)
	}
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: decode %s: %v", method, path, raw, err)
		}
	}
	return resp.StatusCode, string(raw)
}

// ok calls and requires a 200.
func (a *testAPI) ok(t *testing.T, method, path string, body any, out any) string {
	t.Helper()
	status, raw := a.call(t, method, path, body, out)
	if status != http.StatusOK {
		t.Fatalf("%s %s: %d %s", method, path, status, raw)
	}
	return raw
}

// fails calls and requires a Confluent error with the status and code.
func (a *testAPI) fails(t *testing.T, status, code int, method, path string, body any) string {
	t.Helper()
	got, raw := a.call(t, method, path, body, nil)
	var e struct {
		Code    int    `json:"error_code"`
		Message string `json:"message"`
	}
	if err := json.Unmarshal([]byte(raw), &e); err != nil || got != status || e.Code != code || e.Message == "" {
		t.Fatalf("%s %s: %d %s; want %d with error_code %d", method, path, got, raw, status, code)
	}
	return e.Message
}

// register registers a schema and returns its id.
func (a *testAPI) register(t *testing.T, subject, typ, schema string) int64 {
	t.Helper()
	var out struct {
		ID int64 `json:"id"`
	}
	a.ok(t, "POST", "/subjects/"+subject+"/versions", map[string]any{"schema": schema, "schemaType": typ}, &out)
	if out.ID <= 0 {
		t.Fatalf("register: id %d", out.ID)
	}
	return out.ID
}

func body(typ, schema string) map[string]any {
	return map[string]any{"schema": schema, "schemaType": typ}
}

func asResponseError(err error, target **sr.ResponseError) bool { return errors.As(err, target) }
