package rest

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/streamhouse/streamhouse/internal/metadata"
	"github.com/streamhouse/streamhouse/internal/objstore"
)

// A transient storage failure is 503 with Retry-After, not a 500.
func TestUnavailableIs503(t *testing.T) {
	t.Parallel()
	s := &server{log: slog.New(slog.DiscardHandler)}
	for _, err := range []error{
		fmt.Errorf("produce: %w: connection refused", metadata.ErrUnavailable),
		fmt.Errorf("consume: %w", objstore.ErrInjected),
	} {
		rec := httptest.NewRecorder()
		s.writeError(rec, httptest.NewRequest(http.MethodPost, "/api/v1/produce", nil), err)
		var body errorBody
		_ = json.Unmarshal(rec.Body.Bytes(), &body)
		if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" || body.Error != codeUnavailable {
			t.Errorf("%v: status %d, Retry-After %q, code %q", err, rec.Code, rec.Header().Get("Retry-After"), body.Error)
		}
	}
}
