package sqltest

import (
	"net/http"
	"syscall"
	"testing"

	"github.com/streamhouse/streamhouse/internal/e2e"
)

// A build without cgo has no SQL engine: it starts and serves everything
// else, and POST /api/v1/sql answers 501 not_implemented (SPEC.md).
func TestSQLWithoutCgoAnswers501(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := e2e.StartBinary(t, e2e.BinaryNoCgo(t), dir, e2e.Local.Env(t, dir))
	defer p.Stop(syscall.SIGTERM)
	var topics any
	if code := p.Call(http.MethodGet, "/api/v1/topics", nil, &topics); code != http.StatusOK {
		t.Fatalf("GET /api/v1/topics: %d", code)
	}
	var ans struct {
		Error   string `json:"error"`
		Message string `json:"message"`
	}
	if code := p.Call(http.MethodPost, "/api/v1/sql", map[string]any{"query": "SHOW TOPICS"}, &ans); code != http.StatusNotImplemented || ans.Error != "not_implemented" {
		t.Fatalf("POST /api/v1/sql without cgo: %d %+v, want 501 not_implemented", code, ans)
	}
}
