package compat

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/streamhouse/streamhouse/internal/e2e"
	"github.com/streamhouse/streamhouse/internal/testutil/testcerts"
)

// server is one streamhouse process on a fixed Kafka port, so that clients
// can reconnect to the same address after a restart.
type server struct {
	*e2e.Proc
	t   *testing.T
	dir string
	env []string
	// ca signed the server's certificate when its listeners serve TLS
	// (startAuthServer with TLS); caFile is its PEM file. Nil: plaintext.
	ca     *testcerts.CA
	caFile string
}

// startServer runs streamhouse on be in a fresh folder, with topic
// auto-creation left at its default.
func startServer(t *testing.T, be e2e.Backend) *server {
	t.Helper()
	dir := t.TempDir()
	env := append(be.Env(t, dir), "KAFKA_ADDR="+freeAddr(t))
	return &server{Proc: e2e.Start(t, dir, env), t: t, dir: dir, env: env}
}

// restart stops the process with sig and starts it again on the same
// folder, backends and ports.
func (s *server) restart(sig syscall.Signal) {
	s.t.Helper()
	s.Stop(sig)
	s.Proc = e2e.Start(s.t, s.dir, s.env)
}

// createTopic creates a topic through the REST API, so tests of one Kafka
// client do not depend on its admin API.
func (s *server) createTopic(name string, partitions int) {
	s.t.Helper()
	if code := s.Call("POST", "/api/v1/topics", map[string]any{"name": name, "partitions": partitions}, nil); code != 201 {
		s.t.Fatalf("create topic %s: HTTP %d", name, code)
	}
}

// freeAddr returns a 127.0.0.1 address with a port that was free a moment
// ago, for a server that must keep its port across restarts. The server
// binds it with SO_REUSEADDR, so it can rebind after a kill.
//
// The port is picked at random below the kernel's ephemeral range
// (ip_local_port_range), never from it: an ephemeral port that was free a
// moment ago can become the local port of any outgoing connection on the
// machine (the tests make many) before the server binds it.
func freeAddr(t *testing.T) string {
	t.Helper()
	low := ephemeralLow()
	for range 100 {
		port := 10000 + rand.IntN(low-10000)
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue // taken: try another
		}
		addr := ln.Addr().String()
		_ = ln.Close()
		return addr
	}
	t.Fatal("no free port below the ephemeral range")
	return ""
}

// ephemeralLow is the first port of the kernel's ephemeral range (32768
// when it cannot be read).
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil && n > 11000 {
				return n
			}
		}
	}
	return 32768
}

// needTool fails (never skips: CI must run these) when a client program is
// not installed.
func needTool(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found (%v): run scripts/install-test-tools.sh", name, err)
	}
	return path
}

// eventually polls cond every 50 ms until it returns nil or timeout passes,
// then fails with the last error.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v: %v", what, timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// run executes a client program with a deadline and returns its stdout; a
// non-zero exit fails the test with stderr.
func run(t *testing.T, timeout time.Duration, stdin string, name string, args ...string) []byte {
	t.Helper()
	out, err := runErr(timeout, stdin, name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v", name, strings.Join(args, " "), err)
	}
	return out
}

func runErr(timeout time.Duration, stdin string, name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.Output()
	if ctx.Err() != nil {
		err = errors.Join(err, fmt.Errorf("killed after %v", timeout))
	}
	if err != nil {
		return out, fmt.Errorf("%w\nstderr:\n%s", err, stderr.String())
	}
	return out, nil
}
