package main

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/streamhouse/streamhouse/internal/config"
)

func TestHealthcheck(t *testing.T) {
	t.Parallel()
	var ready atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/ready" {
			http.NotFound(w, r)
			return
		}
		if !ready.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(srv.URL, "http://"))
	ctx := context.Background()
	if err := healthcheck(ctx, &config.Config{HTTPAddr: "0.0.0.0:" + port}); err == nil || !strings.Contains(err.Error(), "503") {
		t.Fatalf("not ready: %v, want a 503 error", err)
	}
	ready.Store(true)
	for _, addr := range []string{"0.0.0.0:" + port, ":" + port, "127.0.0.1:" + port} {
		if err := healthcheck(ctx, &config.Config{HTTPAddr: addr}); err != nil {
			t.Errorf("%s: %v", addr, err)
		}
	}
	if err := healthcheck(ctx, &config.Config{HTTPAddr: "no-port"}); err == nil {
		t.Error("bad HTTP_ADDR accepted")
	}
}
