package server

import (
	"bytes"
	"log"
	"log/slog"
	"strings"
	"testing"
)

// The HTTP server's error log goes to the logger at warn, except TLS
// handshakes that a TCP probe or a scanner ended with EOF (debug).
func TestHTTPErrorLog(t *testing.T) {
	var buf bytes.Buffer
	l := log.New(httpErrorLog{slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))}, "", 0)
	l.Print("http: TLS handshake error from 127.0.0.1:5000: EOF")
	l.Print("http: TLS handshake error from 127.0.0.1:5001: tls: client didn't provide a certificate")
	l.Print("http: Accept error: too many open files")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	want := []string{"level=DEBUG", "level=WARN", "level=WARN"}
	if len(lines) != len(want) {
		t.Fatalf("logged %q", lines)
	}
	for i, w := range want {
		if !strings.Contains(lines[i], w) || strings.HasSuffix(lines[i], `\n"`) {
			t.Errorf("line %d = %q, want %s", i, lines[i], w)
		}
	}
}
