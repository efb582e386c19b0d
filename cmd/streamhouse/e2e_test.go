package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/streamhouse/streamhouse/internal/metadata/metadatatest"
	"github.com/streamhouse/streamhouse/internal/objstore/objstoretest"
)

// These tests build the real streamhouse binary and drive it over HTTP, on
// the embedded defaults (local folder + SQLite) and on S3 (versitygw) +
// PostgreSQL when scripts/services.sh has started them.

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

func binary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "streamhouse-e2e")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "streamhouse")
		out, err := exec.Command("go", "build", "-race", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// backend is the environment of one server setup.
type backend struct {
	name string
	env  func(t *testing.T, dir string) []string
}

func backends(t *testing.T) []backend {
	local := backend{"local-sqlite", func(t *testing.T, dir string) []string {
		return []string{
			"LOCAL_STORAGE_PATH=" + filepath.Join(dir, "storage"),
			"STREAMHOUSE_METADATA_PATH=" + filepath.Join(dir, "metadata.db"),
		}
	}}
	s3pg := backend{"s3-postgres", func(t *testing.T, dir string) []string {
		env := objstoretest.ReadS3Env(t)
		bucket := objstoretest.S3(t, nil).Bucket()
		return []string{
			"S3_ENDPOINT=" + env.Endpoint,
			"STREAMHOUSE_BUCKET=" + bucket,
			"AWS_ACCESS_KEY_ID=" + env.AccessKey,
			"AWS_SECRET_ACCESS_KEY=" + env.SecretKey,
			"DATABASE_URL=" + metadatatest.PostgresDatabase(t),
			"FLUSH_MIN_INTERVAL_MS=0",
		}
	}}
	return []backend{local, s3pg}
}

// proc is one running streamhouse process.
type proc struct {
	t    *testing.T
	cmd  *exec.Cmd
	url  string
	logs *bytes.Buffer
	mu   *sync.Mutex
	done chan struct{}
}

// start runs the binary with env (plus random ports and JSON logs) in dir
// and waits until it is ready.
func start(t *testing.T, dir string, env []string) *proc {
	t.Helper()
	cmd := exec.Command(binary(t))
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"HTTP_ADDR=127.0.0.1:0", "GRPC_ADDR=127.0.0.1:0", "KAFKA_ADDR=127.0.0.1:0",
		"STREAMHOUSE_AGENT_ID=e2e", "LOG_FORMAT=json", "STREAMHOUSE_CACHE="+filepath.Join(dir, "cache"))
	cmd.Env = append(cmd.Env, env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &proc{t: t, cmd: cmd, logs: &bytes.Buffer{}, mu: &sync.Mutex{}, done: make(chan struct{})}
	addr := make(chan string, 1)
	go func() {
		defer close(s.done)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			s.mu.Lock()
			s.logs.WriteString(line + "\n")
			s.mu.Unlock()
			var rec struct {
				Msg  string `json:"msg"`
				HTTP string `json:"http"`
			}
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "streamhouse ready to serve" {
				addr <- rec.HTTP
			}
		}
	}()
	t.Cleanup(func() {
		if s.cmd.ProcessState == nil {
			_ = s.cmd.Process.Kill()
			_ = s.cmd.Wait()
		}
		if t.Failed() {
			t.Logf("server logs:\n%s", s.Logs())
		}
	})
	select {
	case a := <-addr:
		s.url = "http://" + a
	case <-s.done:
		_ = cmd.Wait()
		t.Fatalf("server exited before ready:\n%s", s.Logs())
	case <-time.After(60 * time.Second):
		t.Fatalf("server not ready in 60s:\n%s", s.Logs())
	}
	return s
}

func (s *proc) Logs() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.logs.String()
}

// stop sends sig and waits for the process to exit.
func (s *proc) stop(sig syscall.Signal) {
	s.t.Helper()
	if err := s.cmd.Process.Signal(sig); err != nil {
		s.t.Fatal(err)
	}
	<-s.done
	err := s.cmd.Wait()
	if sig == syscall.SIGTERM && err != nil {
		s.t.Fatalf("graceful stop: %v\n%s", err, s.Logs())
	}
}

// call does one JSON request and decodes the answer into out (if not nil).
func (s *proc) call(method, path string, body any, out any) int {
	s.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			s.t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, s.url+path, rd)
	if err != nil {
		s.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			s.t.Fatalf("%s %s: decode %q: %v", method, path, raw, err)
		}
	}
	return resp.StatusCode
}

type produceResp struct {
	Offset    int64 `json:"offset"`
	Partition int32 `json:"partition"`
}

type consumeResp struct {
	Records []struct {
		Partition int32   `json:"partition"`
		Offset    int64   `json:"offset"`
		Key       *string `json:"key"`
		Value     *string `json:"value"`
	} `json:"records"`
	NextOffset int64 `json:"nextOffset"`
}

func (s *proc) consumeAll(topic string, partition int32) map[int64]string {
	s.t.Helper()
	got := map[int64]string{}
	off := int64(0)
	for {
		var c consumeResp
		path := fmt.Sprintf("/api/v1/consume?topic=%s&partition=%d&offset=%d&maxRecords=1000", topic, partition, off)
		if code := s.call("GET", path, nil, &c); code != 200 {
			s.t.Fatalf("consume: status %d", code)
		}
		if len(c.Records) == 0 {
			return got
		}
		for _, r := range c.Records {
			if r.Offset != off {
				s.t.Fatalf("partition %d: offset %d, want dense %d", partition, r.Offset, off)
			}
			got[r.Offset] = *r.Value
			off++
		}
	}
}

func TestEndToEnd(t *testing.T) {
	t.Parallel()
	for _, be := range backends(t) {
		t.Run(be.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			s := start(t, dir, be.env(t, dir))
			var health map[string]string
			if code := s.call("GET", "/health", nil, &health); code != 200 || health["status"] != "ok" {
				t.Fatalf("/health: %d %v", code, health)
			}
			if code := s.call("GET", "/ready", nil, nil); code != 200 {
				t.Fatalf("/ready: %d", code)
			}
			// The README's examples.
			if code := s.call("POST", "/api/v1/topics", map[string]any{"name": "events", "partitions": 4}, nil); code != 201 {
				t.Fatalf("create topic: %d", code)
			}
			var p produceResp
			if code := s.call("POST", "/api/v1/produce", map[string]any{"topic": "events", "key": "user-1", "value": `{"event": "signup"}`}, &p); code != 200 {
				t.Fatalf("produce: %d", code)
			}
			got := s.consumeAll("events", p.Partition)
			if got[p.Offset] != `{"event": "signup"}` {
				t.Fatalf("consumed %v", got)
			}
			var errBody struct{ Error, Message string }
			if code := s.call("POST", "/api/v1/produce", map[string]any{"topic": "nope", "value": "x"}, &errBody); code != 404 || errBody.Error == "" {
				t.Fatalf("produce to unknown topic: %d %+v", code, errBody)
			}
			resp, err := http.Get(s.url + "/metrics")
			if err != nil {
				t.Fatal(err)
			}
			metrics, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			for _, m := range []string{"streamhouse_log_flushes_total", "streamhouse_object_store_requests_total", "streamhouse_metadata_commit_duration_seconds"} {
				if !strings.Contains(string(metrics), m) {
					t.Errorf("/metrics lacks %s", m)
				}
			}
		})
	}
}

// Every durably acknowledged record survives SIGKILL, at its offset, with
// dense offsets; BUFFERED data survives a graceful stop.
func TestRestart(t *testing.T) {
	t.Parallel()
	for _, be := range backends(t) {
		t.Run(be.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			env := be.env(t, dir)
			s := start(t, dir, env)
			if code := s.call("POST", "/api/v1/topics", map[string]any{"name": "orders", "partitions": 3}, nil); code != 201 {
				t.Fatalf("create: %d", code)
			}
			acked := map[int32]map[int64]string{}
			produce := func(s *proc, n int, mode string) {
				for i := 0; i < n; i++ {
					v := fmt.Sprintf("%s-%d-%d", mode, time.Now().UnixNano(), i)
					var p produceResp
					if code := s.call("POST", "/api/v1/produce", map[string]any{"topic": "orders", "key": fmt.Sprint(i), "value": v, "ack_mode": mode}, &p); code != 200 {
						t.Fatalf("produce: %d", code)
					}
					if acked[p.Partition] == nil {
						acked[p.Partition] = map[int64]string{}
					}
					acked[p.Partition][p.Offset] = v
				}
			}
			produce(s, 40, "durable")
			s.stop(syscall.SIGKILL)

			s = start(t, dir, env)
			produce(s, 20, "durable")
			produce(s, 20, "buffered")
			s.stop(syscall.SIGTERM)

			s = start(t, dir, env)
			for p := int32(0); p < 3; p++ {
				got := s.consumeAll("orders", p)
				for off, v := range acked[p] {
					if got[off] != v {
						t.Fatalf("partition %d offset %d: got %q, want %q", p, off, got[off], v)
					}
				}
				if len(got) != len(acked[p]) {
					t.Fatalf("partition %d: %d records, want %d", p, len(got), len(acked[p]))
				}
			}
		})
	}
}

// TestReadmeExamples runs the README's REST examples, as written, against a
// real server: each curl must succeed (HTTP status below 400).
func TestReadmeExamples(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("curl"); err != nil {
		t.Fatal("curl is needed to run the README's examples")
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	const startMark, endMark = "<!-- readme-examples:start -->", "<!-- readme-examples:end -->"
	s := string(readme)
	i, j := strings.Index(s, startMark), strings.Index(s, endMark)
	if i < 0 || j < i {
		t.Fatal("README.md lacks the readme-examples markers")
	}
	script := strings.TrimSpace(s[i+len(startMark) : j])
	script = strings.TrimPrefix(script, "```bash")
	script = strings.TrimSuffix(script, "```")
	if strings.Count(script, "curl ") < 5 {
		t.Fatalf("found too few examples in:\n%s", script)
	}
	dir := t.TempDir()
	srv := start(t, dir, backends(t)[0].env(t, dir))
	script = strings.ReplaceAll(script, "http://localhost:8080", srv.url)
	script = strings.ReplaceAll(script, "curl -sS", "curl -sS --fail-with-body")
	cmd := exec.Command("bash", "-euo", "pipefail", "-c", script)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("README examples failed: %v\n%s", err, out)
	}
	for _, want := range []string{`"name":"events"`, `"value":"b"`, `"source":"readme"`, `"group_id":"billing"`, `"lag":1`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("README examples' output lacks %s:\n%s", want, out)
		}
	}
}
