package dropin

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/streamhouse/streamhouse/internal/cli"
	"github.com/streamhouse/streamhouse/internal/e2e"
)

// The original streamctl's `-s http://host:50051 topic list` (and its
// STREAMHOUSE_ADDR) reaches the server on host: the REST API there at its
// default port, 8080. The server listens on a loopback address of its own
// (127.x.y.z:8080), so no other process's port 8080 is involved.
func TestStreamctlServerFlag(t *testing.T) {
	t.Parallel()
	host := fmt.Sprintf("127.%d.%d.%d", 1+rand.IntN(250), rand.IntN(256), 1+rand.IntN(250))
	// A process listening on *:8080 (a StreamHouse on its defaults, say)
	// takes port 8080 on every address: say so rather than fail obscurely.
	if l, err := net.Listen("tcp", host+":8080"); err != nil {
		t.Fatalf("port 8080 is taken on %s (a listener on every address? stop it): %v", host, err)
	} else {
		_ = l.Close()
	}
	dir := t.TempDir()
	p := e2e.Start(t, dir, append(e2e.Local.Env(t, dir), "HTTP_ADDR="+host+":8080"))
	if code := p.Call(http.MethodPost, "/api/v1/topics", map[string]any{"name": "orders", "partitions": 2}, nil); code != http.StatusCreated {
		t.Fatalf("create topic: %d", code)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, c := range []struct {
		env  map[string]string
		args []string
	}{
		{nil, []string{"-s", "http://" + host + ":50051", "-o", "json", "topic", "list"}},
		{nil, []string{"--server", host + ":9090", "-o", "json", "topic", "list"}},
		{map[string]string{"STREAMHOUSE_ADDR": "http://" + host + ":50051"}, []string{"-o", "json", "topic", "list"}},
	} {
		var out, errb bytes.Buffer
		code := cli.Run(ctx, c.args, strings.NewReader(""), &out, &errb, func(k string) string { return c.env[k] })
		var topics []struct {
			Name string `json:"name"`
		}
		if code != 0 || json.Unmarshal(out.Bytes(), &topics) != nil || len(topics) != 1 || topics[0].Name != "orders" {
			t.Errorf("streamctl %q (env %v): exit %d, stdout %q, stderr %q", c.args, c.env, code, out.String(), errb.String())
		}
	}
}
