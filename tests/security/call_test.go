package security

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
)

// basicCaller returns a function that sends one HTTP request to base+path
// as user (password user+"-pw", HTTP Basic; none when user is empty),
// with a JSON body when body is not empty, and returns the status and
// the response body.
func basicCaller(t *testing.T, ctx context.Context, base string) func(user, method, path, body string) (int, string) {
	return func(user, method, path, body string) (int, string) {
		t.Helper()
		req, err := http.NewRequestWithContext(ctx, method, base+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		if user != "" {
			req.SetBasicAuth(user, user+"-pw")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(raw)
	}
}
